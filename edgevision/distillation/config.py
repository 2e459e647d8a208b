"""The ``distill`` stage's recipe section (a strict pydantic model; imports no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgevision.config import StageConfig
from edgevision.models.spec import ModelSpec
from edgevision.training.spec import TrainSpec


class FeaturePair(BaseModel):
    """A student layer whose output is pulled towards a teacher layer's output."""

    model_config = ConfigDict(extra="forbid")
    student: str = Field(description="student layer name, e.g. layer3")
    teacher: str | None = Field(None, description="teacher layer name (default: same name)")
    weight: float = Field(1.0, ge=0, description="weight of this pair's MSE in the loss")


class DistillConfig(StageConfig):
    """Knowledge distillation: KL divergence to a teacher's softened logits, plus cross-entropy,
    plus optional feature matching through learned 1x1 adapters."""

    kind: Literal["distill"] = Field("distill", description="selects this stage")
    teacher: ModelSpec | None = Field(
        None, description="the teacher; default: the model as it was before the first "
        "compression stage (the unpruned model)")
    temperature: float = Field(4.0, gt=0, description="softmax temperature of both models' "
                               "logits in the KL term")
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the KL term; 1 - alpha "
                         "weighs the cross-entropy with the labels")
    features: list[FeaturePair] = Field(default_factory=list, description="feature distillation "
                                        "on named layers")
    train: TrainSpec = Field(default_factory=lambda: TrainSpec(epochs=1),
                             description="optimiser and schedule of the distillation run")
