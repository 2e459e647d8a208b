"""Compression stages: the handlers that run a recipe's ``stages:`` on the pipeline's state.

Each stage kind is a typed config (owned by its technique package and listed, in legal order,
in ``edgevision.recipe.stages``) plus a handler registered here, as in torchao. Importing this
package registers the built-in handlers (they import no torch at module level).
"""

from edgevision.stages import distill, prune, quantize  # noqa: F401  (registers them)
from edgevision.stages.registry import (
    StageKind,
    check_implemented,
    get_stage,
    implemented_stages,
    register_stage,
)

__all__ = ["StageKind", "check_implemented", "get_stage", "implemented_stages",
           "register_stage"]
