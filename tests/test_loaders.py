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
from edgevision.data.budget import MEMORY_LIMIT, decoded_bytes, memory_limit
from edgevision.data.loaders import SplitDataset, train_loader
from edgevision.data.memory import MemoryTrainLoader, resample_boxes, resized_crop_boxes
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


@pytest.mark.parametrize("augment", ["cifar", "imagenet"])
def test_pil_dataloader_when_not_decoding_once(cifar_archive: Path, augment: str) -> None:
    dataset = cifar(cifar_archive, augment=augment, decode_once=False)
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


# --- 224 px photos (imagenette-224): random resized crops, decoded memory, greyscale ---------

def imagenette(root: Path, **data: object) -> Dataset:
    values: dict[str, object] = {"root": root, "eval_split": "train", "image_size": 224,
                                 "val_size": 20, "calibration_size": 8, "batch_size": 25,
                                 "augment": "imagenet", **data}
    return Dataset.from_spec(DataSpec(**values), seed=0)  # type: ignore[arg-type]


def test_resized_crop_boxes_have_torchvision_ranges() -> None:
    boxes = resized_crop_boxes(4000, 224, 224, (0.08, 1.0), torch.Generator().manual_seed(0))
    top, left, height, width = boxes.T.double()
    area, aspect = height * width / 224**2, width / height
    assert area.min() > 0.075 and area.max() <= 1.0 and area.min() < 0.09
    assert aspect.min() > 0.74 and aspect.max() < 1.35
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= 224).all() and (left + width <= 224).all()
    again = resized_crop_boxes(4000, 224, 224, (0.08, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(boxes, again)


def test_resized_crop_falls_back_to_torchvision_central_crop() -> None:
    import torchvision.transforms as T  # noqa: N812

    boxes = resized_crop_boxes(5, 224, 40, (0.9, 1.0), torch.Generator().manual_seed(0))
    expected = T.RandomResizedCrop.get_params(torch.empty(1, 224, 40), [0.9, 1.0], [3 / 4, 4 / 3])
    assert all(tuple(box) == tuple(expected) for box in boxes.tolist())


def test_random_resized_crops_of_real_photos(imagenette_train_sample: Path) -> None:
    """On the CPU batches are torchvision's (v2) tensor ``resized_crop`` of their photos,
    flipped half the time, normalised; fixed by the seed."""
    import torchvision.transforms.v2.functional as F  # noqa: N812

    dataset = imagenette(imagenette_train_sample)
    loader = train_loader(dataset, seed=0)
    assert isinstance(loader, MemoryTrainLoader)
    images, labels = first_batch(loader, 5)
    assert images.dtype == torch.float32 and images.shape == (25, 3, 224, 224)
    mean = torch.tensor(dataset.spec.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(dataset.spec.std).reshape(1, 3, 1, 1)
    pixels = images * std + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    order, boxes, flips = replay_draws(5, 100, 25)
    decoded = dataset.decoded_train[0][order]
    assert labels.tolist() == dataset.decoded_train[1][order].tolist()
    for pixel, original, box, flip in zip(pixels, decoded, boxes.tolist(), flips, strict=True):
        expected = F.resized_crop(original, *box, [224, 224], antialias=True)  # uint8
        expected = expected.flip(2) if flip else expected
        torch.testing.assert_close(pixel, expected / 255, rtol=0, atol=2e-6)
    assert 3 < int(flips.sum()) < 22
    again, other = first_batch(loader, 5), first_batch(loader, 6)
    assert torch.equal(images, again[0]) and not torch.equal(images, other[0])


def replay_draws(seed: int, images: int, batch: int) -> tuple[torch.Tensor, ...]:
    """The order, crop boxes and flips a loader's generator draws for its first batch."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(images, generator=generator)[:batch]
    boxes = resized_crop_boxes(batch, 224, 224, (0.08, 1.0), generator)
    return order, boxes, torch.rand(batch, generator=generator) < 0.5


def test_batched_resampling_of_real_photos(imagenette_train_sample: Path) -> None:
    """The one-call ``grid_sample`` (GPU path) gives the float ``resized_crop`` of each box,
    flipped, but in the outer rows, which blend pixels beyond the box."""
    import torchvision.transforms.functional as F  # noqa: N812

    dataset = imagenette(imagenette_train_sample)
    train_loader(dataset, seed=0)
    _, boxes, flips = replay_draws(2, 100, 25)
    originals = dataset.decoded_train[0][:25].float()
    resampled = resample_boxes(originals, boxes, flips)
    for image, original, box, flip in zip(resampled, originals, boxes.tolist(), flips,
                                          strict=True):
        expected = F.resized_crop(original, *box, [224, 224], antialias=False)
        expected = expected.flip(2) if flip else expected
        margin = 224 // min(box[2:]) + 1
        inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
        torch.testing.assert_close(image[inner], expected[inner], rtol=0, atol=0.02)
        assert (image - expected).abs().mean() < 2.0  # of 255


def test_decoded_memory_is_the_estimate(imagenette_train_sample: Path) -> None:
    dataset = imagenette(imagenette_train_sample)
    train_loader(dataset, seed=0)
    images, _ = dataset.decoded_train
    assert images.dtype == torch.uint8 and images.shape == (100, 3, 224, 224)
    assert images.untyped_storage().nbytes() == decoded_bytes(100, 3, 224) == 100 * 150_528
    assert decoded_bytes(9469, 3, 224) == 1_425_349_632  # all of imagenette-224's train split
    assert 0 < memory_limit() <= MEMORY_LIMIT


def test_over_the_memory_limit_it_reads_with_pil(imagenette_train_sample: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import edgevision.data.budget as budget

    monkeypatch.setattr(budget, "memory_limit", lambda: decoded_bytes(79, 3, 224))
    dataset = imagenette(imagenette_train_sample, train_limit=80, batch_size=8)
    loader = train_loader(dataset, seed=0)
    assert isinstance(loader, DataLoader) and dataset.decoded_train is None
    images, _ = next(iter(loader))
    assert images.shape == (8, 3, 224, 224)


@pytest.mark.parametrize("decode_once", [True, False])
def test_greyscale_photos_become_three_equal_channels(imagenette_grey_sample: Path,
                                                      decode_once: bool) -> None:
    files = sorted((imagenette_grey_sample / "train").glob("*/*.JPEG"))
    assert len(files) == 18 and all(Image.open(f).mode == "L" for f in files)
    dataset = imagenette(imagenette_grey_sample, val_size=0, augment="none", batch_size=18,
                         mean=[0.5], std=[0.5], decode_once=decode_once)
    loader = train_loader(dataset, seed=0)
    images, labels = next(iter(loader))
    assert images.shape == (18, 3, 224, 224) and len(labels) == 18
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    evaluated, _ = next(dataset.eval_set().batches(18))
    assert evaluated.shape == (18, 3, 224, 224)
    assert (evaluated[:, 0] == evaluated[:, 2]).all()
    grey = np.asarray(Image.open(files[0]), dtype=np.float32) / 255
    np.testing.assert_allclose(evaluated[0, 1] * 0.5 + 0.5, grey, atol=1e-6)


@pytest.mark.parametrize("scale", [[0.5, 0.2], [0.0, 1.0], [0.5, 1.5], [0.5]])
def test_crop_scale_must_be_an_increasing_pair_in_0_1(tmp_path: Path, scale: list[float]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="crop_scale"):
        DataSpec(root=tmp_path, augment="imagenet", crop_scale=scale)  # type: ignore[arg-type]


def test_the_memory_limit_is_half_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgevision.data.budget as budget

    monkeypatch.setattr(budget, "available_memory", lambda: 3_000_000_000)
    assert memory_limit() == 1_500_000_000
    monkeypatch.setattr(budget, "available_memory", lambda: None)
    assert memory_limit() == MEMORY_LIMIT
    monkeypatch.undo()
    assert budget.available_memory() is not None
