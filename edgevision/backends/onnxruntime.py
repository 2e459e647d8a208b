"""ONNX Runtime backends: the CPU execution provider (or CUDA when asked for and present), and
OpenVINO's execution provider on the CPU (the onnxruntime-openvino build)."""

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
        apart (onnxruntime-openvino's CPU provider is not onnxruntime's of the same version)."""
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"

    def _open_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        providers = self._providers(ort, options)
        try:
            self._session = ort.InferenceSession(str(self.artifact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ArtifactError(f"{self.artifact}: ONNX Runtime cannot load it"
                                f"{self.load_hint} ({first_line(exc)})") from None
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if self._session.get_providers()[0] != wanted:
            raise BackendUnavailableError(
                f"{self.name}: {wanted} failed to start (running on "
                f"{self._session.get_providers()[0]} instead); {self.provider_hint}")
        model_input = self._session.get_inputs()[0]
        self._input = InputSpec(
            model_input.name,
            tuple(d if isinstance(d, int) else None for d in model_input.shape),
            _ORT_TYPES.get(model_input.type, "float32"))

    #: what to check when the first execution provider fails to start
    provider_hint = "check the CUDA/cuDNN install"
    #: said when a session fails to open, after "ONNX Runtime cannot load it"
    load_hint = ""

    def _providers(self, ort: Any, options: Any) -> list[Any]:
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


class OnnxRuntimeOpenVinoBackend(OnnxRuntimeBackend):
    """Runs ``.onnx`` files with ONNX Runtime's OpenVINO execution provider on the CPU.

    On Intel CPUs OpenVINO runs INT8 QDQ graphs with oneDNN's kernels (VNNI, AMX), which can be
    several times faster than the CPU provider's. The whole graph must run on OpenVINO: falling
    back to the CPU provider for some nodes is disabled, so a session either is what it says or
    fails to open."""

    name = "onnxruntime-openvino"
    provider = "OpenVINOExecutionProvider"
    provider_hint = "check the onnxruntime-openvino install"
    load_hint = (" with OpenVINO's execution provider alone (falling back to the CPU provider "
                 "is disabled: every operator must run on OpenVINO)")

    @classmethod
    def availability(cls) -> Availability:
        hint = ("pip uninstall onnxruntime && pip install onnxruntime-openvino "
                "(x86-64 Linux/Windows wheels)")
        status = import_availability("onnxruntime", hint)
        if not status.ok:
            return status
        import onnxruntime as ort

        if cls.provider not in ort.get_available_providers():
            return Availability(False, f"this onnxruntime {ort.__version__} has no "
                                       f"{cls.provider}; {hint}")
        return Availability(True)

    def _providers(self, ort: Any, options: Any) -> list[Any]:
        """OpenVINO alone, on the CPU, in FP32 precision (INT8 where the graph is quantized)."""
        if self.device not in ("cpu", "auto"):
            raise BackendUnavailableError(f"{self.name}: runs on the CPU only (device "
                                          f"{self.device!r} requested)")
        self.device = "cpu"
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        settings = {"device_type": "CPU", "precision": "FP32"}
        if self.threads is not None:
            settings["num_of_threads"] = str(self.threads)
        return [(self.provider, settings)]


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
