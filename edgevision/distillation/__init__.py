"""Knowledge distillation: a teacher's softened logits (and optionally features) guide a
student, usually the pruned model. ``config`` imports no torch; ``distill`` loads on use."""

from __future__ import annotations

from typing import Any

#: names loaded on first use, from ``distillation.run``
_LAZY = ("distill",)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from edgevision.distillation import run

        return getattr(run, name)
    raise AttributeError(f"module 'edgevision.distillation' has no attribute {name!r}")
