"""PyTorch eager backend (the baseline): runs edgevision model files (``.pt``)."""

from __future__ import annotations

import numpy as np

from edgevision.backends.base import (
    Availability,
    Backend,
    InputSpec,
    SessionInfo,
    import_availability,
)
from edgevision.devices import resolve_device


class PyTorchBackend(Backend):
    """Loads an edgevision model file and runs it in eval mode under ``inference_mode``."""

    name = "pytorch"
    suffixes = (".pt",)

    @classmethod
    def availability(cls) -> Availability:
        return import_availability("torch", "pip install torch torchvision")

    def _open_impl(self) -> None:
        import torch

        from edgevision.models.build import load_model_file

        self.device = resolve_device(self.device, torch.cuda.is_available(), self.name)
        built, info = load_model_file(self.artifact)
        self._torch = torch
        self._device = torch.device(self.device)
        self._model = built.module.to(self._device).eval()
        channels, height, width = info["input_shape"]
        self._input = InputSpec("input", (None, channels, height, width))
        self._saved_threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)

    def _close_impl(self) -> None:
        self._torch.set_num_threads(self._saved_threads)
        del self._model

    def _input_spec_impl(self) -> InputSpec:
        return self._input

    def _info_impl(self) -> SessionInfo:
        return SessionInfo(device=str(self._device), precision="fp32",
                           threads=self._torch.get_num_threads())

    def _run_impl(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            logits = self._model(self._torch.from_numpy(batch).to(self._device))
            if self._device.type == "cuda":
                self._torch.cuda.synchronize()
            return logits.cpu().numpy()  # type: ignore[no-any-return]
