"""Compression stages: the ordered slots a recipe's ``stages:`` list fills.

Each stage kind is a typed config (a strict pydantic model with ``kind``) plus a registered
handler, as in torchao. Kinds run in a declared legal order (``STAGE_ORDER``); a stage either
transforms the PyTorch model (phase ``"model"``: prune, distill) or derives a new artifact from
the exported ONNX (phase ``"artifact"``: quantize). Kinds that are declared but not implemented
yet are rejected at recipe load with a clear message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edgevision.errors import RecipeError
from edgevision.registry import suggest
from edgevision.validation import format_validation_error

if TYPE_CHECKING:
    from edgevision.pipeline import PipelineState

#: The legal order of stage kinds in a recipe; a kind may appear at most once.
STAGE_ORDER: tuple[str, ...] = ("prune", "distill", "quantize")

Phase = Literal["model", "artifact"]


class StageConfig(BaseModel):
    """Base class of every stage's config: strict, with the stage ``kind`` as discriminator."""

    model_config = ConfigDict(extra="forbid")
    kind: str


StageHandler = Callable[[Any, "PipelineState"], None]


@dataclass(frozen=True)
class StageKind:
    """A registered stage: its config class, handler and pipeline phase."""

    name: str
    config: type[StageConfig]
    handler: StageHandler
    phase: Phase


_STAGES: dict[str, StageKind] = {}


def register_stage(
    name: str, config: type[StageConfig], phase: Phase
) -> Callable[[StageHandler], StageHandler]:
    """Decorator registering ``handler(config, state)`` as the implementation of stage ``name``."""
    if name not in STAGE_ORDER:
        raise ValueError(f"stage {name!r} is not in STAGE_ORDER {STAGE_ORDER}")

    def decorator(handler: StageHandler) -> StageHandler:
        if name in _STAGES:
            raise ValueError(f"stage {name!r} is registered twice")
        _STAGES[name] = StageKind(name, config, handler, phase)
        return handler

    return decorator


def implemented_stages() -> list[str]:
    """Names of the stage kinds this version implements, in legal order."""
    _load_builtin_stages()
    return [name for name in STAGE_ORDER if name in _STAGES]


def get_stage(name: str) -> StageKind:
    """Return the registered stage ``name`` or raise a clear ``RecipeError``."""
    _load_builtin_stages()
    if name in _STAGES:
        return _STAGES[name]
    if name in STAGE_ORDER:
        done = ", ".join(implemented_stages()) or "none yet"
        raise RecipeError(
            f"stage {name!r} is not implemented in this version of edgevision "
            f"(implemented stages: {done})"
        )
    raise RecipeError(f"unknown stage kind {name!r}{suggest(name, list(STAGE_ORDER))} "
                      f"(stage kinds: {', '.join(STAGE_ORDER)})")


def parse_stages(raw: list[Any]) -> list[StageConfig]:
    """Validate a recipe's ``stages`` list: known, implemented kinds, each once, in legal order."""
    configs: list[StageConfig] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or "kind" not in entry:
            raise RecipeError(f"stages[{index}] must be a mapping with a 'kind' key "
                              f"(one of: {', '.join(STAGE_ORDER)})")
        stage = get_stage(str(entry["kind"]))
        try:
            configs.append(stage.config.model_validate(entry))
        except ValidationError as exc:
            message = format_validation_error(exc, stage.config, prefix=f"stages.{index}.")
            raise RecipeError(f"{stage.name} stage: {message}") from None
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


def _load_builtin_stages() -> None:
    """Import the modules that register the built-in stages (they import no torch)."""
    import edgevision.stages.distill
    import edgevision.stages.prune
    import edgevision.stages.quantize  # noqa: F401
