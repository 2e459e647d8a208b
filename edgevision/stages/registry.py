"""The stage-handler registry: each stage kind's handler and pipeline phase, as in torchao.

A stage either transforms the PyTorch model (phase ``"model"``: prune, distill) or derives a new
artifact from the exported ONNX (phase ``"artifact"``: quantize). The kinds, their configs and
their legal order are the recipe's (``edgevision.recipe.stages``): a handler receives the config
the recipe parsed its kind into.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edgevision.config import StageConfig
from edgevision.errors import RecipeError
from edgevision.recipe.stages import STAGE_ORDER, stage_config

if TYPE_CHECKING:
    from edgevision.stages.state import PipelineState

Phase = Literal["model", "artifact"]
StageHandler = Callable[[Any, "PipelineState"], None]


@dataclass(frozen=True)
class StageKind:
    """A registered stage: its config class, handler and pipeline phase."""

    name: str
    config: type[StageConfig]
    handler: StageHandler
    phase: Phase


_STAGES: dict[str, StageKind] = {}


def register_stage(name: str, phase: Phase) -> Callable[[StageHandler], StageHandler]:
    """Decorator registering ``handler(config, state)`` as the implementation of stage ``name``
    (``config``: the recipe's config of that kind, ``recipe.stages.STAGE_CONFIGS[name]``)."""
    if name not in STAGE_ORDER:
        raise ValueError(f"stage {name!r} is not in STAGE_ORDER {STAGE_ORDER}")

    def decorator(handler: StageHandler) -> StageHandler:
        if name in _STAGES:
            raise ValueError(f"stage {name!r} is registered twice")
        _STAGES[name] = StageKind(name, stage_config(name), handler, phase)
        return handler

    return decorator


def implemented_stages() -> list[str]:
    """Names of the stage kinds with a registered handler, in legal order."""
    return [name for name in STAGE_ORDER if name in _STAGES]


def get_stage(name: str) -> StageKind:
    """Return the registered stage ``name`` or raise a clear ``RecipeError``."""
    if name in _STAGES:
        return _STAGES[name]
    stage_config(name)  # an unknown kind: the recipe's error, with close names
    done = ", ".join(implemented_stages()) or "none yet"
    raise RecipeError(f"stage {name!r} is not implemented in this version of edgevision "
                      f"(implemented stages: {done})")


def check_implemented(configs: list[StageConfig]) -> None:
    """Raise before any work if a recipe's stage has no handler."""
    for config in configs:
        get_stage(config.kind)
