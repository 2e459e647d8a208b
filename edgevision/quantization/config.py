"""The ``quantize`` stage's recipe section (a strict pydantic model; imports no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgevision.config import StageConfig
from edgevision.training.spec import TrainSpec

Target = Literal["cpu", "tensorrt"]
Precision = Literal["int8", "fp16"]


class CalibrationSpec(BaseModel):
    """Which images calibrate the activation ranges, and how ranges are computed."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="activation range: min-max, entropy (KL) or percentile")
    percentile: float = Field(99.999, gt=90, lt=100, description="percentile method only")
    images: str = Field(
        "train", description="'train': the seeded data.calibration_size subset of the training "
        "split; or a list file (calibration/<name>.txt, paths relative to the training split "
        "folder) or a folder of images (see calibration/README.md)")
    batch_size: int = Field(64, ge=1, description="images per calibration batch")
    cache: bool = Field(True, description="save the ranges next to the model and re-use them "
                        "while the model and the calibration images are unchanged")


class QatSpec(BaseModel):
    """Quantization-aware training: when to run it and how to fine-tune."""

    model_config = ConfigDict(extra="forbid")
    when: Literal["never", "if_ptq_misses", "always"] = Field(
        "never", description="if_ptq_misses: only when the INT8 PTQ graph misses "
        "accuracy_budget on the check images")
    train: TrainSpec = Field(
        default_factory=lambda: TrainSpec(epochs=1, lr=0.001, weight_decay=0.0,
                                          evaluate_before=False),
        description="the fine-tuning (a short, low learning-rate schedule)")
    distill: bool = Field(True, description="distill from the FP32 model (KL at T=1, alpha=0.9) "
                          "instead of plain cross-entropy")

    @field_validator("train")
    @classmethod
    def _fp32_fake_quant(cls, value: TrainSpec) -> TrainSpec:
        if value.precision != "fp32":
            raise ValueError("qat trains in fp32 only: under bf16/fp16 autocast the fake-quantized "
                             "values would drift off the INT8 grid (set precision: fp32)")
        return value


class QuantizeConfig(StageConfig):
    """INT8 post-training quantization (QDQ ONNX) for a target, and/or an FP16 graph."""

    kind: Literal["quantize"] = Field("quantize", description="selects this stage")
    target: Target = Field(
        "cpu", description="cpu: ONNX Runtime on x86/ARM (unsigned activations, signed "
        "per-channel weights); tensorrt: symmetric signed INT8, zero point 0, QDQ on "
        "Conv/Gemm/MatMul inputs and residual adds")
    precisions: list[Precision] = Field(
        default_factory=lambda: list[Precision](["int8"]),
        description="variants to produce: int8 and/or fp16 (fp16 is for GPU targets; "
        "ONNX Runtime's CPU provider runs it slowly)")
    per_channel: bool = Field(True, description="per-output-channel weight scales")
    reduce_range: bool = Field(False, description="7-bit weights (x86 without VNNI can "
                               "saturate with U8S8)")
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec, description="the "
                                         "images and method that set activation ranges")
    sensitivity: bool = Field(False, description="measure each layer's sensitivity (only that "
                              "layer quantized) and report the sorted table")
    accuracy_budget: float | None = Field(
        None, ge=0, description="maximum top-1 drop (points) on the validation check images; "
        "the most sensitive layers stay in FP32 until the INT8 model is within it")
    max_fp32_layers: int | None = Field(None, ge=1, description="give up the budget search "
                                        "after this many layers are kept in FP32")
    check_images: int = Field(1000, ge=10, description="validation hold-out images used for "
                              "sensitivity and the budget (never the evaluation split)")
    unsupported_ops: Literal["fp32", "error"] = Field(
        "fp32", description="compute operators the quantizer cannot handle: keep them in FP32 "
        "(listed in the report) or fail")

    qat: QatSpec = Field(default_factory=QatSpec, description="quantization-aware training "
                         "after PTQ")

    @model_validator(mode="after")
    def _qat_needs_budget(self) -> QuantizeConfig:
        if self.qat.when == "if_ptq_misses" and self.accuracy_budget is None:
            raise ValueError("qat.when: if_ptq_misses needs accuracy_budget")
        if self.qat.when != "never" and "int8" not in self.precisions:
            raise ValueError("qat needs int8 in precisions")
        if self.qat.when != "never" and (not self.per_channel or self.reduce_range):
            raise ValueError("qat trains on per-channel 8-bit weights: it needs per_channel: "
                             "true and reduce_range: false")
        return self

    @field_validator("precisions")
    @classmethod
    def _distinct_precisions(cls, value: list[Precision]) -> list[Precision]:
        if not value or len(set(value)) != len(value):
            raise ValueError("precisions must be a non-empty list of distinct values "
                             "(int8, fp16)")
        return value
