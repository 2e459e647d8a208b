"""ONNX Runtime backend: CPU execution provider, or CUDA when asked for and present."""

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

    def _open_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.device = resolve_device(
            self.device, "CUDAExecutionProvider" in ort.get_available_providers(),
            f"{self.name} (CUDA needs onnxruntime-gpu)")
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device == "cuda"
                     else ["CPUExecutionProvider"])
        try:
            self._session = ort.InferenceSession(str(self.artifact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ArtifactError(f"{self.artifact}: ONNX Runtime cannot load it "
                                f"({first_line(exc)})") from None
        if self._session.get_providers()[0] != providers[0]:
            raise BackendUnavailableError(
                f"{self.name}: {providers[0]} failed to start (running on "
                f"{self._session.get_providers()[0]} instead); check the CUDA/cuDNN install")
        model_input = self._session.get_inputs()[0]
        self._input = InputSpec(
            model_input.name,
            tuple(d if isinstance(d, int) else None for d in model_input.shape),
            _ORT_TYPES.get(model_input.type, "float32"))

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
