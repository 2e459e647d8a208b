"""docs/recipes.md is generated from the schema and cannot drift from it."""

from __future__ import annotations

from pydantic import BaseModel

from edgevision.recipe.reference import _sections, recipe_reference
from tests.conftest import REPO


def test_committed_reference_matches_the_schema() -> None:
    committed = (REPO / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert committed == recipe_reference(), "run ./scripts/recipe-reference and commit the result"


def test_every_recipe_key_is_described() -> None:
    undescribed = [f"{s.path or 'recipe'}.{name}" for s in _sections()
                   for name, info in s.model.model_fields.items()
                   if not info.description]
    assert undescribed == []


def test_every_section_is_in_the_reference() -> None:
    text = recipe_reference()
    models: list[type[BaseModel]] = [s.model for s in _sections()]
    names = {m.__name__ for m in models}
    assert {"Recipe", "ModelSpec", "DataSpec", "TrainSpec", "PruneConfig", "DistillConfig",
            "QuantizeConfig", "CalibrationSpec", "QatSpec", "SearchSpec", "ExportSpec",
            "EngineSpec", "BenchmarkSpec", "FeaturePair"} <= names
    for key in ("`prune_levels`", "`calibration`", "`finetune`", "`dla_core`", "`batch_sizes`"):
        assert key in text
    assert "Also at: `stages[prune].finetune`" in text  # TrainSpec documented once
