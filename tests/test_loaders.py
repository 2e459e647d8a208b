"""Training loaders: images decoded once and augmented as tensors give the batches the PIL path
gives, on real CIFAR-10 JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from edgevision.data import Dataset
from edgevision.data.loaders import SplitDataset, train_loader
from edgevision.data.memory import MemoryTrainLoader
from edgevision.data.spec import DataSpec
from edgevision.errors import DataError


def cifar(archive: Path, **data: object) -> Dataset:
    spec = DataSpec(root=archive, val_size=100, train_limit=300, calibration_size=16,
                    batch_size=50, **data)  # type: ignore[arg-type]
    return Dataset.from_spec(spec, seed=0)


def pil_images(dataset: Dataset, items: list[int]) -> list[Image.Image]:
    source, indices = dataset.train_source, dataset.splits.train
    return [dataset.preprocess.geometry(source.image(indices[i])) for i in items]


def first_batch(loader: MemoryTrainLoader | DataLoader, seed: int) -> tuple[torch.Tensor, ...]:
    loader.generator.manual_seed(seed)  # type: ignore[union-attr]
    return tuple(next(iter(loader)))


def test_without_augmentation_batches_equal_the_pil_path(cifar_archive: Path) -> None:
    dataset = cifar(cifar_archive, augment="none")
    loader = train_loader(dataset, seed=0)
    assert isinstance(loader, MemoryTrainLoader)
    assert len(loader) == 6  # 300 images in batches of 50
    images, labels = first_batch(loader, 3)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(3))[:50].tolist()
    pil = SplitDataset(dataset.train_source, dataset.splits.train, dataset.preprocess)
    expected = torch.stack([pil[i][0] for i in order])
    assert images.dtype == torch.float32 and images.shape == (50, 3, 32, 32)
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert labels.tolist() == [pil[i][1] for i in order]


def test_cifar_augmentation_is_a_zero_padded_crop_and_a_flip(cifar_archive: Path) -> None:
    import torchvision.transforms.functional as F  # noqa: N812

    dataset = cifar(cifar_archive, augment="cifar")
    loader = train_loader(dataset, seed=0)
    images, _ = first_batch(loader, 1)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(1))[:50].tolist()
    offsets, flips = set(), []
    for image, original in zip(images, pil_images(dataset, order), strict=True):
        padded = F.pad(original, [4], fill=0)  # torchvision's RandomCrop(32, padding=4)
        found = [(top, left, flip) for top in range(9) for left in range(9)
                 for flip in (False, True)
                 if _same(image, dataset, _crop(F, padded, top, left, flip))]
        assert len(found) >= 1, "an augmented image is no pad-4 crop/flip of its original"
        offsets.add(found[0][:2])
        flips.append(found[0][2])
    assert len(offsets) > 10  # each image gets its own offset
    assert 5 < sum(flips) < 45


def _crop(F, padded: Image.Image, top: int, left: int, flip: bool) -> Image.Image:  # noqa: N803
    crop = F.crop(padded, top, left, 32, 32)
    return F.hflip(crop) if flip else crop


def _same(image: torch.Tensor, dataset: Dataset, pil: Image.Image) -> bool:
    return np.allclose(image.numpy(), dataset.preprocess.normalise(pil), rtol=0, atol=1e-6)


def test_the_generator_seed_fixes_order_and_augmentation(cifar_archive: Path) -> None:
    loader = train_loader(cifar(cifar_archive), seed=0)
    first, again, other = (first_batch(loader, s) for s in (7, 7, 8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_decoded_once_per_dataset(cifar_archive: Path) -> None:
    dataset = cifar(cifar_archive)
    train_loader(dataset, seed=0)
    decoded = dataset.decoded_train
    assert decoded[0].dtype == torch.uint8 and decoded[0].shape == (300, 3, 32, 32)
    train_loader(dataset, seed=1)
    assert dataset.decoded_train is decoded


@pytest.mark.parametrize("data", [{"augment": "imagenet"}, {"decode_once": False}])
def test_pil_dataloader_when_not_decoding_once(cifar_archive: Path,
                                               data: dict[str, object]) -> None:
    dataset = cifar(cifar_archive, **data)
    loader = train_loader(dataset, seed=0)
    assert isinstance(loader, DataLoader)
    images, labels = next(iter(loader))
    assert images.shape == (50, 3, 32, 32) and len(labels) == 50
    assert dataset.decoded_train is None


def test_training_images_of_different_sizes(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for name, size in (("a", (12, 10)), ("b", (16, 16))):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", size, (10 * i, 50, 90)).save(folder / f"{i}.png")
    dataset = Dataset.from_spec(DataSpec(root=tmp_path, val_size=0, calibration_size=2,
                                         augment="flip"), seed=0)
    with pytest.raises(DataError, match="different sizes"):
        train_loader(dataset, seed=0)
