"""Structured pruning: channels with torch-pruning's DepGraph (``prune_model``: criteria,
targets, schedules) or whole residual blocks (``prune_blocks``: depth pruning).

``config`` and ``importance`` import no torch (recipes validate without it); ``prune_model`` and
``prune_blocks`` are loaded on first use. A pruned model's saved shapes are the model's own
business: ``edgevision.models.structure``.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"prune_model": "edgevision.pruning.prune", "PruneResult": "edgevision.pruning.prune",
         "prune_blocks": "edgevision.pruning.blocks"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevision.pruning' has no attribute {name!r}")
