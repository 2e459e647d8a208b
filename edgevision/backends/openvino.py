"""OpenVINO's own runtime (the ``openvino`` package) on the CPU: reads our ONNX files directly,
FP32, FP16 and the ``cpu`` target's Q/DQ INT8 graphs (which it runs with INT8 kernels).

It installs beside ``onnxruntime`` (unlike ``onnxruntime-openvino``, which replaces it). Each
batch size gets its own compiled model with that static shape (compiled on the first batch of
that size, or by ``prepare`` before a timing): a static shape lets the CPU plugin choose its
kernels for it, as ONNX Runtime's OpenVINO provider does. An accuracy run's last, smaller batch
gets a compiled model of its own; at most ``MAX_COMPILED`` are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from edgevision.backends.base import (
    Availability,
    Backend,
    InputSpec,
    SessionInfo,
    import_availability,
)
from edgevision.errors import ArtifactError, BackendUnavailableError, first_line

#: the precision the CPU plugin computes in: f32, like the model (its default is bf16 on CPUs
#: with bf16 instructions, which would change the accuracy measured)
INFERENCE_PRECISION = "f32"
#: one synchronous request at a time, as the timing loop runs (fixed: the report records it)
PERFORMANCE_HINT = "LATENCY"
#: compiled models kept per session (one per batch shape, the least recently used dropped)
MAX_COMPILED = 4


class OpenVinoBackend(Backend):
    """Runs ``.onnx`` files with the OpenVINO runtime on the CPU."""

    name = "openvino"
    suffixes = (".onnx",)
    install_hint: ClassVar[str] = "pip install 'edgevision[openvino]' (or pip install openvino)"

    @classmethod
    def availability(cls) -> Availability:
        return import_availability("openvino", cls.install_hint)

    @classmethod
    def runtime(cls) -> str:
        import openvino as ov

        return f"openvino {ov.__version__.split('-')[0]} (CPU plugin)"

    def _open_impl(self) -> None:
        import openvino as ov

        if self.device not in ("cpu", "auto"):
            raise BackendUnavailableError(f"{self.name}: runs on the CPU only (device "
                                          f"{self.device!r} requested)")
        self.device = "cpu"
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.artifact))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ArtifactError(f"{self.artifact}: OpenVINO cannot read it "
                                f"({first_line(exc)})") from None
        if len(self._model.inputs) != 1:
            raise ArtifactError(f"{self.artifact}: the openvino backend runs models with one "
                                f"input (this one has {len(self._model.inputs)})")
        port = self._model.inputs[0]
        shape = port.get_partial_shape()
        element = port.get_element_type().get_type_name()
        if element not in _OV_TYPES:
            raise ArtifactError(f"{self.artifact}: the openvino backend feeds float32/float16 "
                                f"inputs, this model's input is {element}")
        self._input = InputSpec(port.get_any_name(),
                                tuple(d.get_length() if d.is_static else None for d in shape),
                                _OV_TYPES[element])
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._compile(self._static_shape(1 if self._input.shape[0] is None
                                         else self._input.shape[0]))

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION,
                                  "PERFORMANCE_HINT": PERFORMANCE_HINT}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return config

    def _static_shape(self, batch: int) -> tuple[int, ...]:
        rest = self._input.shape[1:]
        if any(d is None for d in rest):
            raise ArtifactError(f"{self.artifact}: the openvino backend needs fixed input "
                                f"dimensions besides the batch, got {self._input.shape}")
        return (batch, *(int(d) for d in rest if d is not None))

    def prepare(self, batch: np.ndarray) -> None:
        super().prepare(batch)
        self._compile(tuple(batch.shape))

    def _compile(self, shape: tuple[int, ...]) -> Any:
        """The infer request of a model compiled for ``shape`` (cached per shape)."""
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        model = self._model.clone()
        try:
            model.reshape({model.inputs[0]: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config())
        except Exception as exc:  # OpenVINO's own RuntimeError subclasses
            raise ArtifactError(f"{self.artifact}: OpenVINO cannot compile it for the CPU at "
                                f"input shape {shape} ({first_line(exc)})") from None
        self._compiled[shape] = compiled.create_infer_request()
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return self._compiled[shape]

    def _close_impl(self) -> None:
        self._compiled.clear()
        del self._model, self._core

    def _input_spec_impl(self) -> InputSpec:
        return self._input

    def _info_impl(self) -> SessionInfo:
        """What the CPU plugin compiled (its thread count, not the one asked for)."""
        compiled = next(reversed(self._compiled.values())).get_compiled_model()
        return SessionInfo(
            device="cpu", precision=self._precision(),
            threads=int(compiled.get_property("INFERENCE_NUM_THREADS")) or None,
            details={"runtime": self.runtime(),
                     "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
                     "inference_precision": compiled.get_property(
                         "INFERENCE_PRECISION_HINT").get_type_name(),
                     "streams": int(compiled.get_property("NUM_STREAMS")),
                     "hyper_threading": bool(compiled.get_property("ENABLE_HYPER_THREADING"))})

    def _precision(self) -> str:
        from edgevision.onnxmeta import read_metadata

        return str(read_metadata(self.artifact).get("precision", "fp32"))

    def _run_impl(self, batch: np.ndarray) -> np.ndarray:
        request = self._compile(tuple(batch.shape))
        try:  # no copy in; one copy out (the output buffer is the request's own)
            request.infer({0: batch}, share_inputs=True, share_outputs=True)
        except Exception as exc:
            raise ArtifactError(f"{self.artifact}: OpenVINO failed to run a batch of "
                                f"{len(batch)} ({first_line(exc)})") from None
        return np.array(request.get_output_tensor(0).data)


_OV_TYPES = {"f32": "float32", "f16": "float16"}
