"""The ground floor of every config: the strict base class, the device choice and the base of
a stage's config. Each package owns its own spec (``data.spec.DataSpec``,
``training.spec.TrainSpec``, ...); the recipe composes them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Device = Literal["auto", "cpu", "cuda"]


class Strict(BaseModel):
    """Base for every recipe section: unknown keys are rejected, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SchemaDocument(BaseModel):
    """Base of edgevision's versioned JSON files (an engine's metadata, a bundle's model.json):
    strict; each declares ``schema_``, written as ``schema`` (``BaseModel.schema`` is a
    method)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON form, with ``schema`` under its own name."""
        return self.model_dump(mode="json", by_alias=True)


class StageConfig(BaseModel):
    """Base class of every stage's config: strict, with the stage ``kind`` as discriminator."""

    model_config = ConfigDict(extra="forbid")
    kind: str
