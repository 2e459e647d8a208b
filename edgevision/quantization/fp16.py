"""FP16 graphs for GPU targets: the quantize stage's ``fp16`` variant, made by
``edgevision.export.precision`` (FP32 inputs and outputs; nodes FP16 would overflow stay FP32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevision.export.precision import Fp16Conversion, convert_to_fp16


def convert_fp16(fp32: Path, out: Path, samples: np.ndarray | None = None) -> Fp16Conversion:
    """Write ``fp32`` converted to FP16 to ``out``; ``samples`` (real images) let nodes whose
    activations exceed FP16's safe range stay FP32. The graph runs on ONNX Runtime too, so the
    operators its converter keeps FP32 by default stay FP32."""
    return convert_to_fp16(fp32, out, samples, for_onnxruntime=True)
