"""Data: sources, preprocessing and deterministic splits, as the recipe's data section says.

``Dataset.from_spec(spec, seed)`` opens the training and evaluation splits lazily. Evaluation
batches are NumPy arrays (no torch needed), from uint8 images decoded once when they fit in
memory; training loaders live in ``edgevision.data.loaders``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.data.budget import fits_in_memory
from edgevision.data.preprocess import Preprocess, channels_first
from edgevision.data.sources import FolderSource, ImageSource, open_split
from edgevision.data.spec import DataSpec
from edgevision.data.splits import SplitIndices, split_training_set, subset
from edgevision.errors import DataError

__all__ = ["Dataset", "EvalSet", "Preprocess", "preprocess_from_spec"]


def preprocess_from_spec(spec: DataSpec) -> Preprocess:
    """The ``Preprocess`` a data section describes."""
    return Preprocess(image_size=spec.image_size, resize=spec.resize, mean=tuple(spec.mean),
                      std=tuple(spec.std), channels=spec.channels)


def different_sizes(name: str, shapes: set[tuple[int, ...]]) -> DataError:
    """The error for a split whose preprocessed CHW images differ in size (up to 3 shown)."""
    listed = ", ".join(sorted(str(shape[1:]) for shape in shapes)[:3])
    return DataError(f"the {name} images have different sizes ({listed}); set "
                     "data.image_size (and data.resize) so they are resized alike")


@dataclass
class EvalSet:
    """Preprocessed images and labels of one split's subset, served as NumPy batches.

    The set is decoded once (preprocessing geometry applied) and kept as uint8, ``N * C * H * W``
    bytes, when that fits ``memory_limit()`` (2 GiB, or half the available memory); each batch
    is then normalised from it with ``Preprocess.normalise_pixels``, the arithmetic of the PIL
    path, so batches are the same either way. A larger set is decoded with PIL every pass.
    """

    source: ImageSource
    indices: list[int]
    preprocess: Preprocess
    name: str = "eval"
    #: the decoded images (uint8 NCHW) and labels, once kept
    _cache: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    #: whether the decoded set fits the memory limit, once decided (and logged)
    _fits: bool | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def classes(self) -> list[str]:
        return list(self.source.classes)

    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one preprocessed image."""
        if self._cache is not None:
            return tuple(self._cache[0].shape[1:])
        return tuple(self._decode(self.indices[:1])[0].shape[1:])

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(images float32 NCHW, labels int64)`` in order."""
        self.preload()
        for start in range(0, len(self.indices), batch_size):
            if self._cache is not None:
                pixels, labels = self._cache
                yield (self.preprocess.normalise_pixels(pixels[start:start + batch_size]),
                       labels[start:start + batch_size])
            else:
                yield self._load(self.indices[start:start + batch_size])

    def first(self, count: int) -> np.ndarray:
        """The first ``count`` preprocessed images (repeated when the set is smaller)."""
        positions = [i % len(self.indices) for i in range(count)]
        if self._cache is not None:
            return self.preprocess.normalise_pixels(self._cache[0][positions])
        return self._load([self.indices[p] for p in positions])[0]

    def preload(self) -> bool:
        """Decode the whole set now and keep it, when it fits in memory (``True`` then): a
        corrupt or odd-sized image is reported before any work that would need it."""
        if self._cache is None and self._fits_in_memory():
            self._cache = self._decode(self.indices)
        return self._cache is not None

    def part(self, positions: list[int], name: str) -> EvalSet:
        """The images at ``positions`` of this set (sharing its decoded images when it holds
        them)."""
        cache = None
        if self._cache is not None:
            pixels, labels = self._cache
            cache = (pixels[positions], labels[positions])
        return EvalSet(self.source, [self.indices[p] for p in positions], self.preprocess,
                       name=name, _cache=cache)

    def sample(self, count: int) -> list[int]:
        """A seeded sample of up to ``count`` of this set's image indices."""
        return [self.indices[i] for i in subset(len(self.indices), count, 0)]

    def check_decodable(self, indices: list[int], batch_size: int = 64) -> None:
        """Decode ``indices`` (in batches, keeping nothing): a ``DataError`` names the first
        image that cannot be read or differs in size."""
        shapes: set[tuple[int, ...]] = set()
        for start in range(0, len(indices), batch_size):
            shapes.add(self._decode(indices[start:start + batch_size])[0].shape[1:])
            if len(shapes) > 1:
                raise different_sizes(self.name, {(0, *shape) for shape in shapes})

    def _fits_in_memory(self) -> bool:
        """Whether the decoded set fits ``memory_limit()``; decided and logged once."""
        if self._fits is None:
            shape = self.sample_shape()
            size = "x".join(map(str, shape))
            images = f"the {self.name} set's {len(self.indices):,} images ({size})"
            self._fits = fits_in_memory(len(self.indices) * math.prod(shape), images,
                                        f"keeping {images} decoded in memory",
                                        "decoding them with PIL every pass instead")
        return self._fits

    def _load(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The images at ``indices`` decoded and normalised (float32 NCHW), and their labels."""
        pixels, labels = self._decode(indices)
        return self.preprocess.normalise_pixels(pixels), labels

    def _decode(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The images at ``indices`` after the preprocessing geometry (uint8 NCHW, filled in
        place), and their labels (int64)."""
        if not indices:
            raise DataError(f"the {self.name} set is empty")
        first = self._pixels(indices[0])
        pixels = np.empty((len(indices), *first.shape), dtype=np.uint8)
        pixels[0] = first
        for position, index in enumerate(indices[1:], start=1):
            array = self._pixels(index)
            if array.shape != first.shape:
                raise different_sizes(self.name, {first.shape, array.shape})
            pixels[position] = array
        labels = np.asarray([self.source.label(i) for i in indices], dtype=np.int64)
        return pixels, labels

    def _pixels(self, index: int) -> np.ndarray:
        return channels_first(self.preprocess.geometry(self.source.image(index)))


@dataclass
class Dataset:
    """The recipe's dataset: training split (with seeded val/calibration subsets) and eval split."""

    spec: DataSpec
    seed: int
    #: the training images decoded once (uint8 NCHW, labels), set by the training loader
    decoded_train: Any = field(default=None, init=False, repr=False, compare=False)
    _eval: EvalSet | None = field(default=None, init=False, repr=False, compare=False)
    _val: EvalSet | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: DataSpec, seed: int = 0) -> Dataset:
        return cls(spec, seed)

    @cached_property
    def preprocess(self) -> Preprocess:
        return preprocess_from_spec(self.spec)

    @cached_property
    def train_source(self) -> ImageSource:
        return self._open(self.spec.train_split)

    @cached_property
    def eval_source(self) -> ImageSource:
        source = self._open(self.spec.eval_split)
        if self.spec.eval_split != self.spec.train_split:
            self._check_same_classes(source)
        return source

    @cached_property
    def splits(self) -> SplitIndices:
        try:
            return split_training_set(
                len(self.train_source), val_size=self.spec.val_size,
                train_limit=self.spec.train_limit,
                calibration_size=self.spec.calibration_size, seed=self.seed)
        except ValueError as exc:
            raise DataError(f"data.val_size: {exc}") from None

    @property
    def classes(self) -> list[str]:
        return list(self.eval_source.classes)

    def eval_set(self) -> EvalSet:
        """The evaluation split (or its seeded ``eval_limit`` subset); one object per dataset,
        so its images are decoded once."""
        if self._eval is None:
            indices = subset(len(self.eval_source), self.spec.eval_limit, self.seed)
            self._eval = EvalSet(self.eval_source, indices, self.preprocess,
                                 name=self.spec.eval_split)
        return self._eval

    def val_set(self) -> EvalSet:
        """The validation hold-out of the training split (one object per dataset, decoded
        once)."""
        if self._val is None:
            self._val = EvalSet(self.train_source, self.splits.val, self.preprocess,
                                name="validation")
        return self._val

    def calibration_set(self) -> EvalSet:
        """The seeded calibration subset of the training split."""
        return EvalSet(self.train_source, self.splits.calibration, self.preprocess,
                       name="calibration")

    def calibration_manifest(self) -> dict[str, Any]:
        """What the run directory stores about the calibration subset (indices, and file paths
        for ImageFolder data), so it can be reproduced exactly."""
        manifest: dict[str, Any] = {"split": self.spec.train_split, "seed": self.seed,
                                    "indices": self.splits.calibration}
        source = self.train_source
        if isinstance(source, FolderSource):
            manifest["files"] = [source.relative_path(i) for i in self.splits.calibration]
        return manifest

    def _open(self, split: str) -> ImageSource:
        return open_split(self.spec.dataset, Path(self.spec.root), split,
                          download=self.spec.download, train_split=self.spec.train_split)

    def _check_same_classes(self, eval_source: ImageSource) -> None:
        if list(eval_source.classes) != list(self.train_source.classes):
            raise DataError(f"the {self.spec.eval_split!r} and {self.spec.train_split!r} splits "
                            f"have different classes: {eval_source.classes} vs "
                            f"{self.train_source.classes}")
