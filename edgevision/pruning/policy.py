"""Which layers may be pruned, per architecture.

Every convolution and linear layer is a root of pruning except the classifier (the last
``nn.Linear``), whose outputs are the classes. The CIFAR ResNets' "option A" shortcuts zero-pad
the residual stream's channels between stages, which torch-pruning's dependency graph cannot map
(it would treat the padding as element-wise and misalign channels). ``prepare_for_pruning``
therefore first replaces each padding shortcut with the 1x1 stride-2 convolution that computes
exactly the same thing (a 0/1 selection matrix); then the residual stream's channels are pruned
consistently across blocks and stages like any other.
"""

from __future__ import annotations

from torch import nn

from edgevision.errors import PruneError
from edgevision.progress import log


def prepare_for_pruning(model: nn.Module, architecture: str | None) -> str | None:
    """Rewrite, exactly, what torch-pruning cannot map; return the architecture's registry name
    afterwards (so a saved pruned model can be rebuilt)."""
    from edgevision.models.cifar_resnet import CONV_SHORTCUT_SUFFIX, convert_pad_shortcuts

    if architecture and architecture.startswith("cifar_resnet") \
            and not architecture.endswith(CONV_SHORTCUT_SUFFIX):
        replaced = convert_pad_shortcuts(model)
        if replaced:
            log(f"replaced {replaced} zero-padding shortcuts with equivalent 1x1 selection "
                "convolutions so the residual channels can be pruned")
            return architecture + CONV_SHORTCUT_SUFFIX
    return architecture


def pruning_roots_to_ignore(model: nn.Module, ignore: list[str]) -> list[nn.Module]:
    """Layers whose output channels are kept: the classifier and the recipe's ``ignore``."""
    return _classifier(model) + [named_module(model, name, "prune.ignore") for name in ignore]


def named_module(model: nn.Module, name: str, where: str) -> nn.Module:
    """``model``'s submodule ``name``; an unknown name is a ``PruneError`` suggesting close
    ones."""
    from edgevision.models.build import named_layer

    return named_layer(model, name, where, PruneError)


def _classifier(model: nn.Module) -> list[nn.Module]:
    linears: list[nn.Module] = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]
