"""Export stage: PyTorch → ONNX, checked by ``onnx.checker`` and against PyTorch's outputs."""

from edgevision.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    read_metadata,
    verify_onnx,
)

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_onnx", "read_metadata", "verify_onnx"]
