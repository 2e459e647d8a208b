"""PyTorch DataLoaders for training (with augmentation) over a ``Dataset``'s splits."""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from edgevision.data import Dataset
from edgevision.data.budget import decoded_bytes, fits_in_memory
from edgevision.data.memory import MemoryTrainLoader, decode_split
from edgevision.data.preprocess import Preprocess
from edgevision.data.sources import ImageSource

#: what ``train_loader`` returns: iterable batches ``(images, labels)`` with ``len`` and a
#: ``generator``
TrainLoader = DataLoader[tuple[torch.Tensor, int]] | MemoryTrainLoader


class Augment:
    """Training augmentation applied to the PIL image after the resize/crop geometry."""

    def __init__(self, kind: str, size: int | None,
                 crop_scale: tuple[float, float] = (0.08, 1.0)) -> None:
        import torchvision.transforms as T  # noqa: N812

        steps: list[object] = []
        if kind == "cifar" and size is not None:
            steps.append(T.RandomCrop(size, padding=size // 8))
        if kind == "imagenet" and size is not None:
            steps.append(T.RandomResizedCrop(size, scale=crop_scale))
        if kind in ("flip", "cifar", "imagenet"):
            steps.append(T.RandomHorizontalFlip())
        self.transform = T.Compose(steps)

    def __call__(self, image: Image.Image) -> Image.Image:
        return self.transform(image)  # type: ignore[no-any-return]


class SplitDataset(TorchDataset[tuple[torch.Tensor, int]]):
    """A torch dataset over selected indices of an image source."""

    def __init__(self, source: ImageSource, indices: list[int], preprocess: Preprocess,
                 augment: Augment | None = None) -> None:
        self.source, self.indices = source, indices
        self.preprocess, self.augment = preprocess, augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        index = self.indices[item]
        image = self.preprocess.geometry(self.source.image(index))
        if self.augment is not None:
            image = self.augment(image)
        return torch.from_numpy(self.preprocess.normalise(image)), self.source.label(index)


def train_loader(dataset: Dataset, seed: int,
                 device: torch.device | str = "cpu") -> TrainLoader:
    """Shuffled, augmented loader over the training part of the training split: from images
    decoded once into memory when ``data.decode_once`` and the memory limit allow it (batches
    augmented on ``device``), else a DataLoader that decodes with PIL (in ``data.workers``
    processes) every epoch. Its ``generator`` draws the order and the augmentation."""
    spec = dataset.spec
    size = spec.image_size or _native_size(dataset)
    generator = torch.Generator().manual_seed(seed)
    if predecode_training(dataset):
        images, labels = dataset.decoded_train
        pad = size // 8 if spec.augment == "cifar" else 0
        crop_scale = spec.crop_scale if spec.augment == "imagenet" else None
        return MemoryTrainLoader(images, labels, spec.batch_size, mean=tuple(spec.mean),
                                 std=tuple(spec.std), pad=pad, flip=spec.augment != "none",
                                 generator=generator, crop_scale=crop_scale, device=device)
    augment = Augment(spec.augment, size, spec.crop_scale) if spec.augment != "none" else None
    split = SplitDataset(dataset.train_source, dataset.splits.train, dataset.preprocess, augment)
    return DataLoader(split, batch_size=spec.batch_size, shuffle=True, drop_last=False,
                      num_workers=spec.workers, generator=generator,
                      persistent_workers=spec.workers > 0)


def predecode_training(dataset: Dataset) -> bool:
    """Decode the training images into memory now (once per dataset) when ``train_loader``
    serves them from memory; ``False`` when it decodes them every epoch instead."""
    if dataset.decoded_train is not None:
        return True
    if not dataset.spec.decode_once:
        return False
    size = dataset.spec.image_size or _native_size(dataset)
    needed = decoded_bytes(len(dataset.splits.train), dataset.spec.channels, size)
    count = f"{len(dataset.splits.train):,} training images at {size} px"
    if not fits_in_memory(needed, count, f"decoding {count} once into memory",
                          "decoding them with PIL every epoch instead"):
        return False
    dataset.decoded_train = decode_split(dataset.train_source, dataset.splits.train,
                                         dataset.preprocess, dataset.spec.workers)
    return True


def _native_size(dataset: Dataset) -> int:
    return int(dataset.preprocess.geometry(dataset.train_source.image(0)).size[0])
