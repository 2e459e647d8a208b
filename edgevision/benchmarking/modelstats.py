"""Size, MACs and parameters of a model artifact.

MACs count convolutions and matrix products (Conv, Gemm, MatMul), the same definition as
torch-pruning's counter used for PyTorch models, for one image (batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from edgevision.errors import ArtifactError, first_line
from edgevision.progress import log


@dataclass(frozen=True)
class ModelStats:
    """Bytes on disk, MACs per image and parameter count (None when unknown)."""

    size_bytes: int
    macs: int | None
    params: int | None


def artifact_stats(path: Path) -> ModelStats:
    """Stats of an ``.onnx`` graph or an edgevision ``.pt`` model file."""
    if not path.is_file():
        raise ArtifactError(f"artifact {str(path)!r} not found")
    size = path.stat().st_size
    if path.suffix == ".onnx":
        from edgevision.benchmarking.onnxstats import onnx_macs_params
        from edgevision.onnxmeta import load_onnx

        proto = load_onnx(path)
        try:
            macs, params = onnx_macs_params(proto)
        except Exception as exc:  # shape inference on an unusual graph; report MACs unknown
            log(f"MACs of {escape(str(path))} unknown: shape inference failed "
                f"({escape(first_line(exc))})")
            return ModelStats(size, None, None)
        return ModelStats(size, macs, params)
    if path.suffix == ".pt":
        from edgevision.models.build import count_macs_params, load_model_file

        built, info = load_model_file(path)
        macs, params = count_macs_params(built.module, tuple(info["input_shape"]))
        return ModelStats(size, macs, params)
    return ModelStats(size, None, None)
