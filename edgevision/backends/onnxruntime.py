"""ONNX Runtime backend: CPU execution provider, or CUDA when asked for and present."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from edgevision.backends.base import Availability, Backend, InputSpec, SessionInfo
from edgevision.errors import ArtifactError, BackendUnavailableError


class OnnxRuntimeBackend(Backend):
    """Runs ``.onnx`` files with ONNX Runtime (all graph optimisations enabled)."""

    name = "onnxruntime"
    suffixes = (".onnx",)

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("onnxruntime") is None:
            return Availability(False, "onnxruntime is not installed (pip install onnxruntime)")
        return Availability(True)

    def _open_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        providers = self._providers(ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(self.artifact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{self.artifact}: ONNX Runtime cannot load it ({first})") from None
        model_input = self._session.get_inputs()[0]
        self._input = InputSpec(
            model_input.name,
            tuple(d if isinstance(d, int) else None for d in model_input.shape),
            _ORT_TYPES.get(model_input.type, "float32"))

    def _providers(self, available: list[str]) -> list[str]:
        if self.device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailableError(
                    "onnxruntime: device 'cuda' requested but CUDAExecutionProvider is not "
                    "available (install onnxruntime-gpu)")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

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
        from edgevision.export.onnx import read_metadata

        meta: dict[str, Any] = read_metadata(self.artifact)
        return str(meta.get("precision", "fp32"))

    def _run_impl(self, batch: np.ndarray) -> np.ndarray:
        outputs = self._session.run(None, {self._input.name: batch})
        return np.asarray(outputs[0])


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
