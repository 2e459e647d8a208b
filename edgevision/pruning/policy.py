"""Which layers may be pruned, per architecture.

By default every convolution and linear layer is a root of pruning except the classifier (the
last ``nn.Linear``), whose outputs are the classes. The CIFAR ResNets with "option A" shortcuts
zero-pad the residual stream's channels between stages, which torch-pruning's dependency graph
cannot map; for them only the channels inside each block (``conv1``'s outputs, hence ``bn1`` and
``conv2``'s inputs) are pruned, and the residual stream keeps its 16/32/64 channels.
"""

from __future__ import annotations

from torch import nn

from edgevision.errors import PruneError
from edgevision.registry import suggest


def pruning_roots_to_ignore(model: nn.Module, architecture: str | None,
                            ignore: list[str]) -> list[nn.Module]:
    """Layers whose output channels are kept: the policy's and the recipe's ``ignore`` names."""
    ignored = _policy_ignored(model, architecture)
    return ignored + [named_module(model, name, "prune.ignore") for name in ignore]


def named_module(model: nn.Module, name: str, where: str) -> nn.Module:
    """``model``'s submodule ``name``; an unknown name suggests close ones."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        names = [n for n in modules if n]
        raise PruneError(f"{where}: the model has no layer {name!r}{suggest(name, names)} "
                         f"(layers look like: {', '.join(names[:6])}, ...)")
    return modules[name]


def _policy_ignored(model: nn.Module, architecture: str | None) -> list[nn.Module]:
    if architecture and architecture.startswith("cifar_resnet"):
        return _cifar_resnet_ignored(model)
    return _classifier(model)


def _classifier(model: nn.Module) -> list[nn.Module]:
    linears: list[nn.Module] = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def _cifar_resnet_ignored(model: nn.Module) -> list[nn.Module]:
    from edgevision.models.cifar_resnet import BasicBlock

    inner = {id(block.conv1) for block in model.modules() if isinstance(block, BasicBlock)}
    return [m for m in model.modules()
            if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in inner]
