"""ONNX export settings (the recipe's ``export:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgevision.config import Strict


class ExportSpec(Strict):
    """ONNX export and its numerical check against PyTorch."""

    opset: int = Field(18, ge=17, le=23, description="ONNX opset version")
    exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo", description="torch.onnx exporter: dynamo (torch.export) or the legacy "
        "TorchScript one")
    dynamic_batch: bool = Field(True, description="a dynamic batch dimension (false: the batch "
                                "of the export's example input)")
    verify_images: int = Field(64, ge=1, description="real eval images used to compare ONNX "
                               "Runtime's outputs with PyTorch's")
    atol: float = Field(1e-4, gt=0, description="absolute tolerance of the check against PyTorch")
    rtol: float = Field(1e-3, ge=0, description="relative tolerance of the check against PyTorch")
