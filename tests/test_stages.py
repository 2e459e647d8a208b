"""The stage slots: declared order, registration of a handler, phases."""

from __future__ import annotations

import pytest

from edgevision import stages
from edgevision.config import StageConfig
from edgevision.errors import RecipeError
from edgevision.recipe import stages as recipe_stages
from edgevision.recipe.stages import STAGE_ORDER, check_stage_order
from edgevision.stages import registry


def test_declared_order() -> None:
    assert STAGE_ORDER == ("prune", "distill", "quantize")


@pytest.mark.parametrize("kinds", [["distill", "prune"], ["quantize", "prune"],
                                   ["prune", "prune"]])
def test_illegal_orders(kinds: list[str]) -> None:
    with pytest.raises(RecipeError, match="at most once each, in the order"):
        check_stage_order(kinds)


def test_legal_orders() -> None:
    check_stage_order(["prune", "distill", "quantize"])
    check_stage_order(["prune", "quantize"])
    check_stage_order([])


def test_registered_stage_is_validated_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    class PruneConfig(StageConfig):
        ratio: float

    monkeypatch.setitem(recipe_stages.STAGE_CONFIGS, "prune", PruneConfig)
    monkeypatch.setattr(registry, "_STAGES", {})
    stages.register_stage("prune", "model")(lambda config, state: None)
    parsed = recipe_stages.parse_stages([{"kind": "prune", "ratio": 0.5}])
    assert isinstance(parsed[0], PruneConfig) and parsed[0].ratio == 0.5
    with pytest.raises(RecipeError, match=r"unknown key 'stages.0.rato'; did you mean 'ratio'"):
        recipe_stages.parse_stages([{"kind": "prune", "rato": 0.5}])
    assert stages.implemented_stages() == ["prune"]
    assert stages.get_stage("prune").config is PruneConfig


def test_register_outside_declared_order_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not in STAGE_ORDER"):
        stages.register_stage("sparsify", "model")


def test_unknown_kind_suggests_close_names() -> None:
    with pytest.raises(RecipeError, match=r"unknown stage kind 'prun'; did you mean 'prune'"):
        stages.get_stage("prun")
