"""Channel-importance criteria by name, each a torch-pruning ``Importance``.

The registry holds factories, so naming and validating a criterion imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgevision.registry import Registry

#: name → factory of a ``torch_pruning.importance.Importance``.
IMPORTANCES: Registry[Callable[[], Any]] = Registry("importance criterion")

#: criteria that need gradients (a few labelled batches) before each pruning step.
NEEDS_GRADIENTS = frozenset({"taylor"})


def _tp() -> Any:
    import torch_pruning

    return torch_pruning.importance


@IMPORTANCES.register("l1")
def _l1() -> Any:
    """Group L1 norm of the weights."""
    return _tp().GroupMagnitudeImportance(p=1)


@IMPORTANCES.register("l2")
def _l2() -> Any:
    """Group L2 norm of the weights."""
    return _tp().GroupMagnitudeImportance(p=2)


@IMPORTANCES.register("bn_scale")
def _bn_scale() -> Any:
    """|gamma| of the BatchNorm after each channel (network slimming)."""
    return _tp().BNScaleImportance()


@IMPORTANCES.register("taylor")
def _taylor() -> Any:
    """First-order Taylor expansion |w · dL/dw| (Molchanov et al.)."""
    return _tp().GroupTaylorImportance()


@IMPORTANCES.register("lamp")
def _lamp() -> Any:
    """Layer-adaptive magnitude (LAMP), meant for global ranking."""
    return _tp().LAMPImportance(p=2)


@IMPORTANCES.register("fpgm")
def _fpgm() -> Any:
    """Distance to the geometric median of the layer's filters (FPGM)."""
    return _tp().FPGMImportance(p=2)


@IMPORTANCES.register("random")
def _random() -> Any:
    """Random ranking: a baseline for comparing criteria."""
    return _tp().RandomImportance()


def make_importance(name: str) -> Any:
    """The importance object for ``name``; an unknown name lists the valid ones."""
    return IMPORTANCES.get(name)()
