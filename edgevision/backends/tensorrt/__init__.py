"""The TensorRT backend: runs ``.engine`` files built by ``edgevision build`` (or a recipe's
``engine`` section). This package is the only place that imports ``tensorrt`` (a ruff rule
bans it elsewhere), and it does so lazily: importing this module needs neither TensorRT nor
torch, so ``--help`` and every CPU feature work without them.

Runtime needs: ``tensorrt`` (JetPack on Jetson; NVIDIA's Python index on desktops),
``cuda-python`` (the CUDA runtime bindings), NumPy and Pillow — no PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevision.backends.base import Availability, Backend, InputSpec, SessionInfo
from edgevision.errors import EdgevisionError, first_line

INSTALL_HINT = ("TensorRT: on Jetson it comes with JetPack (python3-libnvinfer), plus "
                "`pip install 'edgevision[jetpack6]'` (JetPack 6, CUDA 12.6) or "
                "'edgevision[jetpack7]' (JetPack 7, CUDA 13); on desktops "
                "`pip install 'edgevision[tensorrt-cu13]'` (driver >= 580) or "
                "'edgevision[tensorrt-cu12]'")


class TensorRTBackend(Backend):
    """Runs serialized TensorRT engines on the GPU (name-based tensor API, CUDA streams)."""

    name = "tensorrt"
    suffixes = (".engine", ".plan")
    batch_range_hint = ("; it is the engine's optimization profile: rebuild with "
                        "engine.min_batch/max_batch (--min-batch/--max-batch)")

    @classmethod
    def availability(cls) -> Availability:
        try:
            from edgevision.backends.tensorrt.runtime import gpu_info, tensorrt_version

            version = tensorrt_version()
            gpu = gpu_info()
        except ImportError as exc:
            return Availability(False, f"tensorrt or cuda-python cannot be imported "
                                       f"({first_line(exc)}); {INSTALL_HINT}")
        except (RuntimeError, EdgevisionError) as exc:  # no GPU, driver problems
            return Availability(False, f"no usable CUDA GPU ({first_line(exc)})")
        return Availability(True, f"TensorRT {version} on {gpu.name}")

    def _open_impl(self) -> None:
        from edgevision.backends.tensorrt.metadata import (
            check_compatible,
            check_source_unchanged,
            read_metadata,
        )
        from edgevision.backends.tensorrt.runtime import EngineSession, gpu_info, tensorrt_version

        self.metadata = read_metadata(self.artifact)
        check_source_unchanged(self.metadata, self.artifact)
        check_compatible(self.metadata, tensorrt_version(), gpu_info(), self.artifact)
        self.device = "cuda"
        self._session = EngineSession(self.artifact, self.metadata)

    def _close_impl(self) -> None:
        self._session.close()

    def _input_spec_impl(self) -> InputSpec:
        meta = self.metadata.input
        batch = None if meta.min_shape[0] != meta.max_shape[0] else meta.max_shape[0]
        return InputSpec(meta.name, (batch, *meta.max_shape[1:]), "float32")

    def _info_impl(self) -> SessionInfo:
        return SessionInfo(device="cuda", precision=self.metadata.precision, threads=None,
                           details={"tensorrt": self.metadata.tensorrt_version,
                                    "gpu": self.metadata.gpu.name,
                                    "mode": self.metadata.build_mode,
                                    "flags": self.metadata.flags})

    def _run_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._session.infer(batch)  # the batch is within the profile (_validate)

    def source_onnx(self) -> Path | None:
        """The ONNX file the engine was built from (its metadata's), where it is still there
        (opening checked that it has not changed since)."""
        self._require_open()
        source = Path(self.metadata.onnx_file)
        return source if source.is_file() else None

    def _batch_range(self) -> tuple[int, int | None]:
        """The optimization profile's batch range."""
        return self.metadata.input.min_shape[0], self.metadata.input.max_shape[0]

    def timing_breakdown(self) -> dict[str, Any] | None:
        """GPU compute and host↔device copy times (CUDA events) of the runs so far, in ms."""
        return self._session.breakdown()

    def reset_timing_breakdown(self) -> None:
        """Forget the device-side times so far (after warm-up)."""
        self._session.times.clear()
