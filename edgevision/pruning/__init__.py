"""Structured (channel) pruning with torch-pruning's DepGraph: criteria, targets, schedules.

``config`` and ``importance`` import no torch (recipes validate without it); ``prune_model``
and the structure helpers are loaded on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"prune_model": "edgevision.pruning.prune", "PruneResult": "edgevision.pruning.prune",
         "capture_structure": "edgevision.pruning.structure",
         "apply_structure": "edgevision.pruning.structure"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevision.pruning' has no attribute {name!r}")
