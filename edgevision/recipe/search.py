"""The recipe's ``search:`` section: which variants to build and the budget to choose under."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Precision = Literal["fp32", "fp16", "int8", "int8-mixed", "qat"]


class SearchSpec(BaseModel):
    """Pruning levels × precisions × backends, measured, then chosen under a budget."""

    model_config = ConfigDict(extra="forbid")
    prune_levels: list[float] = Field(
        default_factory=lambda: [0.0, 0.3, 0.5], description="fractions of the MACs removed "
        "(0 = the unpruned model); each level is pruned and distilled once and reused for "
        "every precision")
    prune: dict[str, Any] = Field(
        default_factory=lambda: {"importance": "l2", "round_to": 8},
        description="a prune stage without its target (target_macs is set per level)")
    distill: dict[str, Any] | None = Field(
        default_factory=lambda: {"train": {"epochs": 1}}, description="a distill stage run "
        "after pruning (null: none)")
    precisions: list[Precision] = Field(
        default_factory=lambda: list[Precision](["fp32", "int8", "int8-mixed", "qat"]),
        description="fp32, fp16, int8 (PTQ), int8-mixed (sensitive layers kept FP32 to meet "
        "the accuracy budget), qat (only when PTQ misses the budget)")
    quantize: dict[str, Any] = Field(default_factory=dict, description="a quantize stage "
                                     "template (target, calibration, check_images, qat.train)")
    backends: list[str] = Field(
        default_factory=lambda: ["onnxruntime"], description="the backends every candidate is "
        "measured on; the first is the target whose unpruned FP32 model is the baseline, the "
        "others (e.g. openvino) add variants named '<candidate>@<backend>'; one "
        "unavailable here is skipped with the reason in the report")
    batch: int = Field(64, ge=1, description="the batch size the budget and choice refer to "
                       "(batch 1 is measured too)")
    select_on: Literal["validation", "eval_half"] = Field(
        "validation", description="the images the choice and the quantize budgets are made on: "
        "'validation', the training split's hold-out (data.val_size images); 'eval_half', a "
        "seeded half of the evaluation split (the other half reports), for a checkpoint trained "
        "on the whole training split, which has seen the hold-out. Every candidate's accuracy is "
        "also reported on the evaluation split (its other half with eval_half)")
    accuracy_budget: float | None = Field(0.5, ge=0, description="maximum top-1 drop (points) "
                                          "against the unpruned FP32 model: pick the fastest")
    latency_budget_ms: float | None = Field(None, gt=0, description="maximum p50 at `batch`: "
                                            "pick the most accurate")
    rounds: int = Field(5, ge=1, description="interleaved timing rounds over all candidates")
    iterations: int = Field(20, ge=1, description="timed runs per candidate, batch and round")
    warmup: int = Field(5, ge=0, description="untimed runs per candidate and batch before each "
                        "round's timed runs")
    threads: int | None = Field(None, ge=1, description="intra-op threads (None: all cores)")

    @model_validator(mode="before")
    @classmethod
    def _renamed_backend(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backend" in data:
            raise ValueError(f"search.backend was renamed search.backends, a list (the first is "
                             f"the target): backends: [{data['backend']}]")
        return data

    @field_validator("prune_levels")
    @classmethod
    def _levels_in_range(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 <= level < 1 for level in value):
            raise ValueError("prune_levels must be fractions in [0, 1)")
        if 0.0 not in value:
            raise ValueError("prune_levels must include 0 (the unpruned baseline)")
        return sorted(set(value))

    @model_validator(mode="after")
    def _one_budget_and_valid_templates(self) -> SearchSpec:
        if self.latency_budget_ms is not None and "accuracy_budget" not in self.model_fields_set:
            self.accuracy_budget = None  # the default accuracy budget gives way
        if (self.accuracy_budget is None) == (self.latency_budget_ms is None):
            raise ValueError("give exactly one of search.accuracy_budget (points) or "
                             "search.latency_budget_ms")
        from pydantic import ValidationError

        from edgevision.backends import BACKENDS
        from edgevision.distillation.config import DistillConfig
        from edgevision.pruning.config import PruneConfig
        from edgevision.quantization.config import QuantizeConfig
        from edgevision.validation import format_validation_error

        checks: list[tuple[str, Any, type[BaseModel]]] = [
            ("prune", lambda: self.prune_config(0.5), PruneConfig),
            ("distill", self.distill_config, DistillConfig),
            ("quantize", lambda: self.quantize_config(["int8"]), QuantizeConfig)]
        for section, build, config in checks:
            try:
                build()
            except ValidationError as exc:
                raise ValueError(format_validation_error(
                    exc, config, prefix=f"search.{section}.")) from None
        if not self.backends or len(set(self.backends)) != len(self.backends):
            raise ValueError("search.backends must name at least one backend, each once")
        for name in self.backends:
            if not BACKENDS.get(name).accepts(Path("candidate.onnx")):
                raise ValueError(f"search.backends: {name!r} does not run ONNX graphs (the "
                                 "candidates); use onnxruntime or openvino")
        return self

    @property
    def target(self) -> str:
        """The first backend: the baseline's, and the one the build's accuracy checks use."""
        return self.backends[0]

    def variant_name(self, candidate: str, backend: str) -> str:
        """A candidate's name on ``backend``: plain on the target, ``<name>@<backend>`` else."""
        return candidate if backend == self.target else f"{candidate}@{backend}"

    def prune_config(self, level: float) -> Any:
        """The prune stage of one level. With ``block_rank: latency`` the blocks are timed on
        the search's target backend at its batch, in INT8 when the search builds INT8
        variants, unless the template says otherwise."""
        from edgevision.pruning.config import PruneConfig

        int8 = bool({"int8", "int8-mixed", "qat"} & set(self.precisions))
        timed_on = {"latency_backend": self.target, "latency_batch": self.batch,
                    "latency_precision": "int8" if int8 else "fp32"}
        return PruneConfig.model_validate({**timed_on, **self.prune, "kind": "prune",
                                           "target_macs": 1.0 - level, "compare": False})

    def distill_config(self) -> Any:
        """The distill stage after pruning, or None."""
        from edgevision.distillation.config import DistillConfig

        if self.distill is None:
            return None
        return DistillConfig.model_validate({**self.distill, "kind": "distill"})

    def quantize_config(self, precisions: list[str], budget: float | None = None) -> Any:
        """The quantize stage producing ``precisions`` (int8, fp16) of one level. ``budget``
        (what is left of the accuracy budget at this level) enables the FP32 fallback and QAT
        when PTQ misses it; under a latency budget QAT always runs when asked for."""
        from edgevision.quantization.config import QuantizeConfig

        wanted = set(self.precisions)
        qat = dict(self.quantize.get("qat", {}))
        qat["when"] = "never"
        if "qat" in wanted and budget is not None:
            qat["when"] = "if_ptq_misses"
        elif "qat" in wanted and self.accuracy_budget is None:
            qat["when"] = "always"
        return QuantizeConfig.model_validate({
            **self.quantize, "kind": "quantize", "precisions": precisions, "qat": qat,
            "accuracy_budget": budget if "int8-mixed" in wanted or "qat" in wanted else None})
