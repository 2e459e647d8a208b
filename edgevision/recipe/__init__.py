"""Recipes: YAML files validated once at load against a strict schema."""

from edgevision.recipe.load import apply_overrides, load_recipe, parse_override, recipe_to_yaml
from edgevision.recipe.schema import (
    BenchmarkSpec,
    DataSpec,
    ExportSpec,
    ModelSpec,
    Recipe,
    TrainSpec,
)

__all__ = [
    "BenchmarkSpec",
    "DataSpec",
    "ExportSpec",
    "ModelSpec",
    "Recipe",
    "TrainSpec",
    "apply_overrides",
    "load_recipe",
    "parse_override",
    "recipe_to_yaml",
]
