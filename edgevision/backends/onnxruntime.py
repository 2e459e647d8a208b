"""ONNX Runtime backend: the CPU execution provider (or CUDA when asked for and present)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgevision.backends.base import (
    Availability,
    Backend,
    InputSpec,
    SessionInfo,
    import_availability,
)
from edgevision.devices import resolve_device
from edgevision.errors import ArtifactError, BackendUnavailableError, first_line


class OnnxRuntimeBackend(Backend):
    """Runs ``.onnx`` files with ONNX Runtime (all graph optimisations enabled)."""

    name = "onnxruntime"
    suffixes = (".onnx",)

    @classmethod
    def availability(cls) -> Availability:
        return import_availability("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu)")

    @classmethod
    def runtime(cls) -> str:
        """``onnxruntime <version> (<its execution providers>)``: the providers tell the builds
        apart (onnxruntime-gpu's CPU provider is not onnxruntime's of the same version)."""
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"

    def _open_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        providers = self._providers(ort)
        try:
            self._session = ort.InferenceSession(str(self.artifact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ArtifactError(f"{self.artifact}: ONNX Runtime cannot load it "
                                f"({first_line(exc)})") from None
        wanted = providers[0]
        if self._session.get_providers()[0] != wanted:
            raise BackendUnavailableError(
                f"{self.name}: {wanted} failed to start (running on "
                f"{self._session.get_providers()[0]} instead); check the CUDA/cuDNN install")
        model_input = self._session.get_inputs()[0]
        self._input = InputSpec(
            model_input.name,
            tuple(d if isinstance(d, int) else None for d in model_input.shape),
            _ORT_TYPES.get(model_input.type, "float32"))

    def _providers(self, ort: Any) -> list[str]:
        """The execution providers, first choice first (CUDA when asked for, else the CPU)."""
        self.device = resolve_device(
            self.device, "CUDAExecutionProvider" in ort.get_available_providers(),
            f"{self.name} (CUDA needs onnxruntime-gpu)")
        return (["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device == "cuda"
                else ["CPUExecutionProvider"])

    def _close_impl(self) -> None:
        del self._session

    def _input_spec_impl(self) -> InputSpec:
        return self._input

    def _info_impl(self) -> SessionInfo:
        options = self._session.get_session_options()
        return SessionInfo(device=self.device, precision=self._precision(),
                           threads=self.threads or options.intra_op_num_threads or None,
                           details={"providers": self._session.get_providers()})

    def _precision(self) -> str:
        from edgevision.onnxmeta import read_metadata

        meta: dict[str, Any] = read_metadata(self.artifact)
        return str(meta.get("precision", "fp32"))

    def _run_impl(self, batch: np.ndarray) -> np.ndarray:
        try:
            outputs = self._session.run(None, {self._input.name: batch})
        except Exception as exc:  # onnxruntime's own error types
            raise ArtifactError(f"{self.artifact}: ONNX Runtime failed to run a batch of "
                                f"{len(batch)} ({first_line(exc)})") from None
        return np.asarray(outputs[0])


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
