"""What a registry model expects of its input (normalisation, native size), known without
importing torch, so a recipe can fill in the model's own preprocessing while it validates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiteSize:
    """The published scaling of one EfficientNet-Lite size (Google's efficientnet_lite_builder):
    width and depth coefficients, native input resolution and classifier dropout."""

    width: float
    depth: float
    image_size: int
    dropout: float


#: efficientnet_lite0..4 (stem and head are not scaled in Lite)
LITE_SIZES = {
    "efficientnet_lite0": LiteSize(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteSize(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteSize(1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": LiteSize(1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": LiteSize(1.4, 1.8, 300, 0.3),
}

#: TensorFlow-style normalisation, (x·255 − 127) / 128, as mean/std on [0, 1] pixels
TF_MEAN = 127 / 255
TF_STD = 128 / 255


@dataclass(frozen=True)
class NativeInput:
    """The normalisation (per channel, on [0, 1] pixels) and square input size a model was
    trained with."""

    mean: float
    std: float
    image_size: int


def native_input(name: str | None) -> NativeInput | None:
    """The input registry model ``name`` expects, when it differs from torchvision's ImageNet
    normalisation (None: torchvision's mean/std apply)."""
    size = LITE_SIZES.get(name or "")
    return NativeInput(TF_MEAN, TF_STD, size.image_size) if size else None
