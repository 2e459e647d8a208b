"""torchvision classification models by name, with pretrained weights by enum name."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
import torchvision
from torch import nn

from edgevision.errors import CheckpointError

#: torchvision classifiers with auxiliary heads, built without them when not pretrained.
AUX_LOGIT_MODELS = ("googlenet", "inception_v3")


def resolve_weights(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """Map ``DEFAULT``, ``IMAGENET1K_V1`` or ``ResNet18_Weights.IMAGENET1K_V1`` to the enum."""
    enum = torchvision.models.get_model_weights(name)
    member = weights.split(".")[-1]
    if member == "DEFAULT":
        return enum.DEFAULT  # type: ignore[attr-defined,no-any-return]
    try:
        return enum[member]  # type: ignore[index,no-any-return]
    except KeyError:
        choices = ", ".join(["DEFAULT", *(m.name for m in enum)])  # type: ignore[attr-defined]
        raise CheckpointError(f"model {name!r} has no weights {weights!r} "
                              f"(choices: {choices})") from None


def build_torchvision(name: str, num_classes: int,
                      weights: str | None) -> tuple[nn.Module, str, list[str]]:
    """Build torchvision model ``name``; with weights, download them and replace the
    classifier when ``num_classes`` differs from theirs."""
    if weights is None:
        kwargs: dict[str, object] = {"num_classes": num_classes}
        if name in AUX_LOGIT_MODELS:  # training would return a namedtuple, not logits
            kwargs.update(aux_logits=False, init_weights=True)
        return torchvision.models.get_model(name, **kwargs), "random init", []
    enum_value = resolve_weights(name, weights)
    download_state_dict(enum_value)  # into torch's hub cache, or a clear offline error
    # the builder applies what the weights need (transform_input, image_size, aux heads)
    model = torchvision.models.get_model(name, weights=enum_value)
    notes: list[str] = []
    trained_classes = len(enum_value.meta.get("categories", [])) or num_classes
    if trained_classes != num_classes:
        replace_classifier(model, num_classes)
        notes.append(f"classifier replaced: {trained_classes} → {num_classes} classes "
                     "(new head is randomly initialised; fine-tune it)")
    return model, f"torchvision weights {enum_value}", notes


def download_state_dict(weights: torchvision.models.WeightsEnum) -> dict[str, torch.Tensor]:
    """Fetch (or read from torch's hub cache) the weights' state_dict; offline, say how to fix."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=True, check_hash=True)  # type: ignore[no-any-return]
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"could not download {weights} from {weights.url} ({exc}); without internet, copy "
            f"that file to {cached} or give model.checkpoint") from None


def replace_classifier(model: nn.Module, num_classes: int) -> None:
    """Replace the last ``nn.Linear`` with a fresh one producing ``num_classes`` outputs."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no Linear classifier to replace; "
                              "use weights=None or a checkpoint with the right classes")
    path, old = linears[-1]
    parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
    setattr(parent, path.rpartition(".")[2], nn.Linear(old.in_features, num_classes))
