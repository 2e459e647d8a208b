"""Saving and restoring the shapes of a pruned model without pickling Python objects.

A pruned network is its registry architecture with smaller layers and, after depth pruning,
some residual blocks replaced by ``RemovedBlock`` (their identity shortcut). ``capture_structure``
records each module's integer shape attributes (``out_channels``, ``groups``, ``num_features``,
...) and which residual blocks depth pruning removed; ``apply_structure`` removes those blocks
from a freshly built architecture, sets the attributes and resizes its parameters and buffers
to the saved state_dict's shapes, so the state_dict then loads strictly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

Structure = dict[str, dict[str, Any]]
#: the entry of a residual block removed by depth pruning
REMOVED = {"removed_block": True}


class RemovedBlock(nn.Identity):
    """Stands where a residual block was removed: only its identity shortcut is left."""


def remove_block(model: nn.Module, name: str) -> nn.Module:
    """Replace block ``name`` with a ``RemovedBlock``; returns the block taken out."""
    block = model.get_submodule(name)
    model.set_submodule(name, RemovedBlock())
    return block


def capture_structure(model: nn.Module) -> Structure:
    """Integer (and tuple-of-integer) public attributes of every module, by module name;
    ``REMOVED`` for removed residual blocks."""
    return {name: dict(REMOVED) if isinstance(module, RemovedBlock) else _shape_attributes(module)
            for name, module in model.named_modules()}


def apply_structure(model: nn.Module, structure: Structure,
                    state: dict[str, torch.Tensor]) -> None:
    """Give ``model`` (freshly built) the saved attributes and the tensor shapes of ``state``."""
    for name, attributes in structure.items():
        if attributes == REMOVED and name in dict(model.named_modules()):
            remove_block(model, name)
    modules = dict(model.named_modules())
    for name, attributes in structure.items():
        module = modules.get(name)
        if module is None or attributes == REMOVED:
            continue  # a missing one is reported by the strict state_dict load that follows
        for attr, value in attributes.items():
            current = getattr(module, attr, None)
            if isinstance(current, tuple | list):
                value = type(current)(value)
            if current != value:
                setattr(module, attr, value)
    for key, tensor in state.items():
        module_name, _, tensor_name = key.rpartition(".")
        module = modules.get(module_name)
        current = getattr(module, tensor_name, None) if module is not None else None
        if isinstance(current, torch.Tensor) and current.shape != tensor.shape:
            _resize(module, tensor_name, current, tensor.shape)  # type: ignore[arg-type]


def _resize(module: nn.Module, name: str, current: torch.Tensor, shape: torch.Size) -> None:
    blank = torch.empty(shape, dtype=current.dtype, device=current.device)
    if isinstance(current, nn.Parameter):
        setattr(module, name, nn.Parameter(blank, requires_grad=current.requires_grad))
    else:
        persistent = name not in module._non_persistent_buffers_set
        module.register_buffer(name, blank, persistent=persistent)


def _shape_attributes(module: nn.Module) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attr, value in vars(module).items():
        if attr.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, tuple | list) and value
                                      and all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in value)):
            found[attr] = list(value) if isinstance(value, tuple) else value
    return found
