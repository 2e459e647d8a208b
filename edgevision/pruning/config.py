"""The ``prune`` stage's recipe section (a strict pydantic model; imports no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgevision.config import StageConfig
from edgevision.pruning.importance import IMPORTANCES
from edgevision.training.spec import TrainSpec

#: the fields that only channel pruning reads
CHANNEL_ONLY = ("importance", "scope", "round_to", "layer_ratios", "max_layer_ratio",
                "taylor_batches")


class PruneConfig(StageConfig):
    """Structured pruning of channels or of whole residual blocks: what to rank by, how much to
    remove, in how many steps."""

    kind: Literal["prune"] = Field("prune", description="selects this stage")
    granularity: Literal["channel", "block"] = Field(
        "channel", description="channel: remove channels with torch-pruning's dependency "
        "graph; block: remove whole residual blocks whose shortcut is the identity (depth "
        "pruning), least harmful first by the KL divergence their removal causes")
    importance: str = Field("l2", description="channel ranking: l1, l2, bn_scale, taylor, "
                            "lamp, fpgm or random")
    scope: Literal["uniform", "global"] = Field(
        "uniform", description="uniform: every layer loses the same fraction; global: channels "
        "ranked across layers (use with lamp or bn_scale)")
    ratio: float | None = Field(None, description="fraction of channels (block: of removable "
                                "blocks) to remove, in (0, 1)")
    target_macs: float | None = Field(
        None, description="prune until MACs ≤ this fraction of the unpruned model's, in (0, 1)")
    target_latency_ms: float | None = Field(
        None, gt=0, description="prune until the p50 latency on latency_backend at "
        "latency_batch is ≤ this (measured on this machine, so noisy)")
    latency_backend: str = Field("onnxruntime", description="backend timing the latency target")
    latency_batch: int = Field(1, ge=1, description="batch size of the latency target")
    latency_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="precision the latency target and the block timings are measured "
        "in: int8 quantizes every timed trial (Q/DQ for the cpu target, ranges from 32 "
        "calibration images: the graph is only timed); needs a latency_backend that runs ONNX")
    steps: int = Field(1, ge=1, description="iterative schedule: prune in this many steps, "
                       "fine-tuning between them")
    finetune: TrainSpec = Field(default_factory=TrainSpec, description="training between steps "
                                "(epochs 0: none)")
    finetune_loss: Literal["cross_entropy", "distill"] = Field(
        "cross_entropy", description="fine-tuning loss: cross-entropy with the labels, or "
        "distillation from the unpruned model (T=4, alpha=0.9)")
    finetune_after_last: bool = Field(False, description="fine-tune after the last step too "
                                      "(leave false when a distill stage follows)")
    round_to: int | None = Field(8, ge=1, description="keep channel counts multiples of this")
    ignore: list[str] = Field(default_factory=list, description="layer names whose output "
                              "channels are kept (the classifier always is)")
    layer_ratios: dict[str, float] = Field(default_factory=dict, description="per-layer channel "
                                           "ratio overriding `ratio` for the named layers")
    max_layer_ratio: float = Field(0.9, gt=0, lt=1, description="no layer loses more than "
                                   "this fraction of its channels")
    taylor_batches: int = Field(4, ge=1, description="labelled training batches whose gradients "
                                "rank channels for taylor")
    block_samples: int = Field(256, ge=8, description="block granularity: calibration images "
                               "(training split) the removals are ranked on")
    block_rank: Literal["accuracy", "latency"] = Field(
        "accuracy", description="block granularity: accuracy removes the block whose removal "
        "changes the predictions least (KL divergence); latency the one with the least KL per "
        "millisecond its removal saves on latency_backend at latency_batch (each block timed "
        "once and cached: see docs/pruning.md)")
    compare: bool = Field(True, description="also export and benchmark the unpruned model and "
                          "the pruned model before any fine-tuning")

    @field_validator("importance")
    @classmethod
    def _known_importance(cls, value: str) -> str:
        if value not in IMPORTANCES:
            raise ValueError(IMPORTANCES.unknown_message(value))
        return value

    @field_validator("ratio", "target_macs")
    @classmethod
    def _open_unit_interval(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 1:
            raise ValueError(f"must be between 0 and 1 (exclusive), got {value}")
        return value

    @field_validator("layer_ratios")
    @classmethod
    def _layer_ratios_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ratio in value.items():
            if not 0 <= ratio < 1:
                raise ValueError(f"ratio for {name!r} must be in [0, 1), got {ratio}")
        return value

    @field_validator("latency_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from edgevision.backends import BACKENDS

        BACKENDS.get(value)  # raises with close-name suggestions
        return value

    @model_validator(mode="after")
    def _channel_options_need_channel_granularity(self) -> PruneConfig:
        given = [key for key in CHANNEL_ONLY if key in self.model_fields_set]
        if self.granularity == "block" and given:
            raise ValueError(f"prune.{given[0]} applies to channel pruning only; block pruning "
                             "ranks blocks by the KL divergence their removal causes")
        for key in ("block_samples", "block_rank"):
            if self.granularity == "channel" and key in self.model_fields_set:
                raise ValueError(f"prune.{key} applies to granularity: block only")
        return self

    @model_validator(mode="after")
    def _int8_timing_needs_onnx(self) -> PruneConfig:
        from pathlib import Path

        from edgevision.backends import BACKENDS

        if self.latency_precision == "int8" and not BACKENDS.get(self.latency_backend).accepts(
                Path("trial.onnx")):
            raise ValueError(f"prune.latency_precision: int8 times quantized ONNX graphs; "
                             f"latency_backend {self.latency_backend!r} does not run them (use "
                             "onnxruntime or openvino)")
        return self

    @model_validator(mode="after")
    def _one_target(self) -> PruneConfig:
        given = [v for v in (self.ratio, self.target_macs, self.target_latency_ms)
                 if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of prune.ratio (fraction of channels, or of "
                             "blocks, removed), "
                             "prune.target_macs (fraction of MACs kept) or "
                             "prune.target_latency_ms")
        return self
