"""TensorRT engine settings (the recipe's ``engine:``, and ``edgevision build``'s options)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgevision.config import Strict

EnginePrecision = Literal["fp32", "fp16", "int8", "int8+fp16"]


class EngineSpec(Strict):
    """TensorRT engines built from the run's ONNX graphs (``edgevision build`` takes the same
    settings as options)."""

    precisions: list[EnginePrecision] = Field(
        default_factory=lambda: list[EnginePrecision](["fp16"]),
        description="fp32, fp16 (builder flag), int8 (from the quantize stage's tensorrt-target "
        "QDQ graph), int8+fp16 (unquantized layers in FP16)")
    min_batch: int = Field(1, ge=1, description="optimization profile: smallest batch")
    opt_batch: int | None = Field(None, ge=1, description="batch TensorRT tunes for (default: "
                                  "the largest benchmark batch size)")
    max_batch: int = Field(64, ge=1, description="optimization profile: largest batch")
    workspace_mb: int = Field(1024, ge=1, description="builder workspace memory limit (MiB)")
    optimization_level: int = Field(3, ge=0, le=5, description="builder optimization level "
                                    "(0-5; higher builds slower, may run faster)")
    timing_cache: Path | None = Field(
        None, description="timing cache file re-used between builds (default: tensorrt/"
        "timing.cache in the edgevision cache); one from another GPU or TensorRT version is "
        "replaced")
    hardware_compatibility: Literal["none", "ampere_plus"] = Field(
        "none", description="ampere_plus: the engine runs on any Ampere-or-newer GPU "
        "(slower kernels may be chosen)")
    version_compatible: bool = Field(False, description="runs on later TensorRT versions too "
                                     "(embeds the lean runtime; larger, can be slower)")
    dla_core: int | None = Field(None, ge=0, description="Jetson: run on this DLA core")
    gpu_fallback: bool = Field(True, description="with dla_core: layers DLA cannot run go to "
                               "the GPU")
    sparsity: bool = Field(False, description="allow 2:4 structured-sparse kernels (weights "
                           "must already be 2:4 sparse)")
    builder: Literal["python", "trtexec"] = Field(
        "python", description="build with the TensorRT Python API or with trtexec (on PATH)")

    @model_validator(mode="after")
    def _profile_order(self) -> EngineSpec:
        opt = self.opt_batch if self.opt_batch is not None else self.max_batch
        if not self.min_batch <= opt <= self.max_batch:
            raise ValueError(f"engine batches must satisfy min_batch ≤ opt_batch ≤ max_batch "
                             f"(got {self.min_batch}, {opt}, {self.max_batch})")
        if not self.precisions or len(set(self.precisions)) != len(self.precisions):
            raise ValueError("engine.precisions must be a non-empty list of distinct values")
        return self
