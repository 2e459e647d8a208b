"""The recipe schema: one strict pydantic model composing each package's own spec (unknown
keys are errors). The recipe imports downward only: every section's type lives in the package
that uses it (``data.spec``, ``models.spec``, ``training.spec``, ``export.spec``,
``benchmarking.spec``, ``backends.tensorrt.spec``; the stages' in their technique packages,
listed in ``recipe.stages``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field, SerializeAsAny, field_validator, model_validator

from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.benchmarking.spec import BenchmarkSpec
from edgevision.config import StageConfig, Strict
from edgevision.data.spec import DataSpec
from edgevision.export.spec import ExportSpec
from edgevision.models.native import native_input
from edgevision.models.spec import ModelSpec
from edgevision.recipe.search import SearchSpec
from edgevision.recipe.stages import parse_stages
from edgevision.training.spec import TrainSpec

__all__ = ["BenchmarkSpec", "DataSpec", "EngineSpec", "ExportSpec", "ModelSpec", "Recipe",
           "SearchSpec", "TrainSpec"]


class Recipe(Strict):
    """A whole recipe: model → data → train → stages → export → benchmark."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the run's name: the "
                      "default run directory is runs/<name>")
    description: str = Field("", description="free text; its first line is what `edgevision list "
                             "recipes` shows")
    seed: int = Field(0, description="seeds the splits, the calibration subset, weight "
                      "initialisation and training order")
    model: ModelSpec = Field(description="the network and its starting weights")
    data: DataSpec = Field(description="the images, their preprocessing and splits")
    train: TrainSpec = Field(default_factory=TrainSpec, description="training or fine-tuning "
                             "before the stages (epochs: 0 skips it)")
    stages: list[SerializeAsAny[StageConfig]] = Field(
        default_factory=list, description="compression stages, each a mapping with `kind` "
        "(prune, distill, quantize), at most once each and in that order")
    search: SearchSpec | None = Field(None, description="optional search over pruning levels × "
                                      "precisions × backends; replaces `stages`")
    export: ExportSpec = Field(default_factory=ExportSpec, description="ONNX export and its "
                               "check against PyTorch")
    engine: EngineSpec | None = Field(None, description="TensorRT engines to build (skipped, "
                                      "with the reason, where TensorRT is unavailable)")
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec, description="how every "
                                     "artifact is measured")

    def train_specs(self) -> list[TrainSpec]:
        """Every train section: the model's, the stages' (fine-tuning, distillation, QAT) and
        the search's distillation."""
        found = list(_train_specs(self))
        if self.search is not None and (distill := self.search.distill_config()) is not None:
            found += _train_specs(distill)
        return found

    @model_validator(mode="after")
    def _model_normalisation_unless_given(self) -> Recipe:
        """A data section without mean/std gets the model's own (EfficientNet-Lite:
        TensorFlow's 127/255 and 128/255); other models keep torchvision's ImageNet values."""
        native = native_input(self.model.name)
        if native is None:
            return self
        own = {"mean": [native.mean] * self.data.channels,
               "std": [native.std] * self.data.channels}
        missing = {key: value for key, value in own.items()
                   if key not in self.data.model_fields_set}
        if missing:  # a copy: the DataSpec given may be shared
            self.data = DataSpec.model_validate({**self.data.model_dump(exclude_unset=True),
                                                 **missing})
        return self

    @model_validator(mode="after")
    def _engine_profile_covers_benchmark(self) -> Recipe:
        engine = self.engine
        if engine is not None and "tensorrt" in self.benchmark.backends:
            outside = [b for b in self.benchmark.batch_sizes
                       if not engine.min_batch <= b <= engine.max_batch]
            if outside:
                raise ValueError(f"benchmark.batch_sizes {outside} are outside the engine "
                                 f"profile {engine.min_batch}..{engine.max_batch} "
                                 "(engine.min_batch/max_batch)")
        return self

    @model_validator(mode="after")
    def _search_selection_images_exist(self) -> Recipe:
        if self.search is None or self.search.select_on != "validation":
            return self
        if self.data.val_size == 0:
            raise ValueError("search.select_on: validation chooses on the validation hold-out, "
                             "and data.val_size is 0: set data.val_size, or select_on: eval_half")
        if self.data.eval_split == self.data.train_split:
            raise ValueError("search.select_on: validation needs an evaluation split apart from "
                             "the training split (data.eval_split is the training split); use "
                             "select_on: eval_half")
        return self

    @model_validator(mode="after")
    def _search_replaces_stages(self) -> Recipe:
        if self.search is not None and self.stages:
            raise ValueError("a recipe with `search` builds its own prune/distill/quantize "
                             "variants: leave `stages` empty")
        return self

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> list[StageConfig]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError("stages must be a list")
        if all(isinstance(v, StageConfig) for v in value):
            return value
        return parse_stages(value)


def _train_specs(node: Any) -> Iterator[TrainSpec]:
    """The TrainSpec sections inside a config model (depth first, lists included)."""
    if isinstance(node, TrainSpec):
        yield node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _train_specs(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _train_specs(item)
