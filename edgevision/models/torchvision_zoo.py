"""torchvision classification models by name, with pretrained weights by enum name."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
import torchvision
from torch import nn

from edgevision.errors import CheckpointError
from edgevision.models.checkpoint import fit_classifier

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
    trained_classes = len(enum_value.meta.get("categories", [])) or num_classes
    notes = fit_classifier(model, trained_classes, num_classes)
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
