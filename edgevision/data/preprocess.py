"""Image preprocessing with PIL and NumPy only (no torch), shared by training and every backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """Resize (shorter side) → center crop → [0, 1] → normalise, as CHW float32.

    ``channels`` is the model's input channel count: grey images are repeated to 3 channels when
    it is 3, colour images converted to grey when it is 1.
    """

    image_size: int | None
    resize: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.normalise(self.geometry(image))

    def geometry(self, image: Image.Image) -> Image.Image:
        """Colour mode, resize and center crop (the PIL part)."""
        image = image.convert("RGB" if self.channels == 3 else "L")
        if self.resize is not None:
            image = _resize_shorter(image, self.resize)
        if self.image_size is not None:
            if self.resize is None and image.size != (self.image_size, self.image_size):
                image = _resize_shorter(image, self.image_size)
            image = _center_crop(image, self.image_size)
        return image

    def normalise(self, image: Image.Image) -> np.ndarray:
        """PIL image → normalised CHW float32 array."""
        return self.normalise_pixels(channels_first(image))

    def normalise_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels, CHW or NCHW → normalised float32 (``(x / 255 - mean) / std``): the one
        arithmetic of every evaluation path, so cached and freshly decoded images are equal."""
        array = pixels.astype(np.float32) / 255.0
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((array - mean) / std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in ONNX metadata and engine metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        return cls(image_size=data.get("image_size"), resize=data.get("resize"),
                   mean=tuple(data["mean"]), std=tuple(data["std"]),
                   channels=int(data.get("channels", 3)))


def channels_first(image: Image.Image) -> np.ndarray:
    """PIL image → its uint8 pixels as CHW (grey images get one channel)."""
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _resize_shorter(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image if new == image.size else image.resize(new, Image.Resampling.BILINEAR)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        image = _resize_shorter(image, size)
        width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))
