"""The recipe's ``stages:`` list: which stage kinds exist, their configs and their legal order.

Each stage kind is a typed config owned by its technique package (a strict pydantic model with
``kind``); its handler is registered in ``edgevision.stages``, above the recipe. A recipe's
stages are validated here, before any handler is loaded.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import ValidationError

from edgevision.config import StageConfig
from edgevision.distillation.config import DistillConfig
from edgevision.errors import RecipeError
from edgevision.pruning.config import PruneConfig
from edgevision.quantization.config import QuantizeConfig
from edgevision.registry import suggest
from edgevision.validation import format_validation_error

#: every stage kind's config, in the legal order of a recipe's stages
STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "prune": PruneConfig,
    "distill": DistillConfig,
    "quantize": QuantizeConfig,
}
#: The legal order of stage kinds in a recipe; a kind may appear at most once.
STAGE_ORDER: tuple[str, ...] = tuple(STAGE_CONFIGS)


def stage_config(kind: str) -> type[StageConfig]:
    """The config class of stage ``kind``, or a ``RecipeError`` suggesting close names."""
    if kind not in STAGE_CONFIGS:
        raise RecipeError(f"unknown stage kind {kind!r}{suggest(kind, list(STAGE_ORDER))} "
                          f"(stage kinds: {', '.join(STAGE_ORDER)})")
    return STAGE_CONFIGS[kind]


def parse_stages(raw: list[Any]) -> list[StageConfig]:
    """Validate a recipe's ``stages`` list: known kinds, each once, in legal order."""
    configs: list[StageConfig] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or "kind" not in entry:
            raise RecipeError(f"stages[{index}] must be a mapping with a 'kind' key "
                              f"(one of: {', '.join(STAGE_ORDER)})")
        kind = str(entry["kind"])
        config = stage_config(kind)
        try:
            configs.append(config.model_validate(entry))
        except ValidationError as exc:
            message = format_validation_error(exc, config, prefix=f"stages.{index}.")
            raise RecipeError(f"{kind} stage: {message}") from None
    check_stage_order([c.kind for c in configs])
    return configs


def check_stage_order(kinds: list[str]) -> None:
    """Raise if ``kinds`` repeats a kind or breaks ``STAGE_ORDER``."""
    positions = [STAGE_ORDER.index(k) for k in kinds]
    for earlier, later in itertools.pairwise(positions):
        if later <= earlier:
            raise RecipeError(
                f"stages must appear at most once each, in the order {' → '.join(STAGE_ORDER)}; "
                f"got {' → '.join(kinds)}"
            )
