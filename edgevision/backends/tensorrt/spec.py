"""TensorRT engine settings (the recipe's ``engine:``, and ``edgevision build``'s options)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgevision.backends.tensorrt.versions import TensorRTVersionError, supported_release
from edgevision.config import Strict

EnginePrecision = Literal["fp32", "tf32", "fp16", "int8", "int8+fp16"]


class EngineSpec(Strict):
    """TensorRT engines built from the run's ONNX graphs (``edgevision build`` takes the same
    settings as options)."""

    precisions: list[EnginePrecision] = Field(
        default_factory=lambda: list[EnginePrecision](["fp16"]),
        description="fp32 (TF32 off), tf32 (FP32 graph, TF32 allowed), fp16 (an FP16 graph "
        "made from model.onnx, FP32 kept where FP16 would overflow), int8 (the quantize stage's "
        "tensorrt-target Q/DQ graph), int8+fp16 (that graph with its unquantized compute in "
        "FP16); engines are strongly typed: the graph's types set the precision")
    min_batch: int = Field(1, ge=1, description="optimization profile: smallest batch")
    opt_batch: int | None = Field(None, ge=1, description="batch TensorRT tunes for (default: "
                                  "the largest benchmark batch size)")
    max_batch: int = Field(64, ge=1, description="optimization profile: largest batch")
    workspace_mb: int = Field(1024, ge=1, description="builder workspace memory limit (MiB)")
    optimization_level: int = Field(3, ge=0, le=5, description="builder optimization level "
                                    "(0-5; higher builds slower, may run faster)")
    timing_cache: Path | None = Field(
        None, description="timing cache file re-used between builds (default: one file per "
        "TensorRT release and GPU under tensorrt/ in the edgevision cache, replaced when "
        "TensorRT refuses it); a named file TensorRT refuses (another GPU or release) is not "
        "used and not overwritten")
    hardware_compatibility: Literal["none", "same_compute_capability", "ampere_plus"] = Field(
        "none", description="none: the GPU model it was built on; same_compute_capability "
        "(TensorRT 10.13+): any GPU of that compute capability; ampere_plus: any Ampere-or-newer "
        "GPU (slower kernels may be chosen)")
    tensorrt_version: str | None = Field(
        None, description="the TensorRT release the engines are for (10.3 = JetPack 6, 10.13 = "
        "JetPack 7.0, 11.4 = desktop pip / JetPack 7.2.2+): a build refuses another installed "
        "release; without TensorRT, the trtexec commands are written for it (default: the "
        "installed TensorRT, else 11.4)")
    version_compatible: bool = Field(False, description="runs on later TensorRT versions too "
                                     "(embeds the lean runtime; larger, can be slower)")
    dla_core: int | None = Field(None, ge=0, description="Jetson Orin: run on this DLA core "
                                 "(fp16; one static batch: min_batch = opt_batch = max_batch)")
    gpu_fallback: bool = Field(True, description="with dla_core: layers DLA cannot run go to "
                               "the GPU")
    sparsity: bool = Field(False, description="allow 2:4 structured-sparse kernels (weights "
                           "must already be 2:4 sparse)")
    builder: Literal["python", "trtexec"] = Field(
        "python", description="build with the TensorRT Python API or with trtexec (on PATH)")

    @field_validator("tensorrt_version")
    @classmethod
    def _known_release(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                supported_release(value)
            except TensorRTVersionError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _profile_order(self) -> EngineSpec:
        opt = self.opt_batch if self.opt_batch is not None else self.max_batch
        if not self.min_batch <= opt <= self.max_batch:
            raise ValueError(f"engine batches must satisfy min_batch ≤ opt_batch ≤ max_batch "
                             f"(got {self.min_batch}, {opt}, {self.max_batch})")
        if not self.precisions or len(set(self.precisions)) != len(self.precisions):
            raise ValueError("engine.precisions must be a non-empty list of distinct values")
        return self
