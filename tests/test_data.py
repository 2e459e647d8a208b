"""Data sources, preprocessing, seeded splits and archive extraction, on real and tiny data."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgevision.data import Dataset, EvalSet, Preprocess
from edgevision.data import sources as sources_module
from edgevision.data.budget import decoded_bytes
from edgevision.data.sources import FolderSource, open_split, prepare_root
from edgevision.data.spec import DataSpec
from edgevision.errors import DataError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def make_image_folder(root: Path, splits: dict[str, list[str]], per_class: int = 3,
                      size: tuple[int, int] = (12, 10)) -> Path:
    """Write ``root/<split>/<class>/<i>.png`` with distinct solid colours; return ``root``."""
    for split, classes in splits.items():
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                colour = (40 * label + 10 * i, 100 + 20 * i, 200 - 30 * label)
                Image.new("RGB", size, colour).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def cifar_dataset(cifar_archive: Path) -> Dataset:
    return Dataset.from_spec(DataSpec(root=cifar_archive, val_size=200, train_limit=512,
                                      calibration_size=64, eval_limit=300, batch_size=64),
                             seed=0)


# --- the real CIFAR-10 JPEG archive ------------------------------------------------------------


def test_cifar_archive_splits_and_classes(cifar_dataset: Dataset) -> None:
    assert len(cifar_dataset.train_source) == 50_000
    assert len(cifar_dataset.eval_source) == 10_000
    assert cifar_dataset.classes == CIFAR_CLASSES
    assert cifar_dataset.train_source.classes == CIFAR_CLASSES
    assert isinstance(cifar_dataset.eval_source, FolderSource)
    labels = np.asarray(cifar_dataset.eval_source.labels)
    assert np.bincount(labels).tolist() == [1000] * 10
    image = cifar_dataset.eval_source.image(0)
    assert image.size == (32, 32)
    assert image.mode == "RGB"


def test_cifar_root_fixture_is_the_extracted_archive(cifar_root: Path, cifar_archive: Path) -> None:
    assert (cifar_root / "train").is_dir()
    assert (cifar_root / "test").is_dir()
    assert sorted(p.name for p in (cifar_root / "test").iterdir()) == CIFAR_CLASSES
    source = open_split("imagefolder", cifar_root, "test")
    assert isinstance(source, FolderSource)
    assert len(source) == 10_000
    # The archive and the folder it was extracted to hold the same data.
    archived = open_split("imagefolder", cifar_archive, "test")
    assert isinstance(archived, FolderSource)
    picked = [0, 4321, 9999]
    assert [archived.relative_path(i) for i in picked] == [source.relative_path(i) for i in picked]
    assert [archived.label(i) for i in picked] == [source.label(i) for i in picked]
    assert archived.files[4321].read_bytes() == source.files[4321].read_bytes()


def test_split_sizes_and_disjointness(cifar_dataset: Dataset) -> None:
    splits = cifar_dataset.splits
    assert len(splits.val) == 200
    assert len(splits.train) == 512
    assert len(splits.calibration) == 64
    assert not set(splits.val) & set(splits.train)
    assert set(splits.calibration) <= set(splits.train)
    assert len(set(splits.train)) == 512
    assert all(0 <= i < 50_000 for i in splits.val + splits.train)
    assert len(cifar_dataset.val_set()) == 200
    assert len(cifar_dataset.calibration_set()) == 64


def test_splits_depend_only_on_the_seed(cifar_archive: Path, cifar_dataset: Dataset) -> None:
    same = Dataset.from_spec(cifar_dataset.spec, seed=0)
    other = Dataset.from_spec(cifar_dataset.spec, seed=1)
    assert same.splits == cifar_dataset.splits
    assert same.eval_set().indices == cifar_dataset.eval_set().indices
    assert other.splits.val != cifar_dataset.splits.val
    assert other.splits.train != cifar_dataset.splits.train
    assert other.splits.calibration != cifar_dataset.splits.calibration
    assert other.eval_set().indices != cifar_dataset.eval_set().indices


def test_calibration_manifest_lists_existing_files(cifar_dataset: Dataset) -> None:
    manifest = cifar_dataset.calibration_manifest()
    assert manifest["split"] == "train"
    assert manifest["seed"] == 0
    assert manifest["indices"] == cifar_dataset.splits.calibration
    files = manifest["files"]
    assert len(files) == 64
    source = cifar_dataset.train_source
    assert isinstance(source, FolderSource)
    for index, relative in zip(manifest["indices"], files, strict=True):
        assert not Path(relative).is_absolute()
        assert relative.count("/") == 1  # <class>/<image>
        assert (source.root / relative).is_file()
        assert relative.split("/")[0] == CIFAR_CLASSES[source.label(index)]


def test_eval_limit_is_a_seeded_subset(cifar_dataset: Dataset) -> None:
    eval_set = cifar_dataset.eval_set()
    assert len(eval_set) == 300
    assert eval_set.indices == sorted(set(eval_set.indices))
    assert all(0 <= i < 10_000 for i in eval_set.indices)
    assert eval_set.indices != list(range(300))
    assert eval_set.classes == CIFAR_CLASSES


def test_eval_batches_cover_every_image_once(cifar_dataset: Dataset) -> None:
    eval_set = cifar_dataset.eval_set()
    images, labels = [], []
    for batch_images, batch_labels in eval_set.batches(64):
        assert batch_images.dtype == np.float32
        assert batch_labels.dtype == np.int64
        assert batch_images.ndim == 4
        assert batch_images.shape[1:] == (3, 32, 32)
        assert len(batch_images) == len(batch_labels) <= 64
        images.append(batch_images)
        labels.append(batch_labels)
    assert [len(b) for b in labels] == [64, 64, 64, 64, 44]
    all_labels = np.concatenate(labels)
    source = cifar_dataset.eval_source
    assert all_labels.tolist() == [source.label(i) for i in eval_set.indices]
    all_images = np.concatenate(images)
    for position in (0, 150, 299):
        expected = cifar_dataset.preprocess(source.image(eval_set.indices[position]))
        np.testing.assert_array_equal(all_images[position], expected)
    assert eval_set.sample_shape() == (3, 32, 32)
    # Normalised with ImageNet statistics: roughly zero-centred, not in [0, 1].
    assert -1.0 < float(all_images.mean()) < 1.0
    assert float(all_images.min()) < -1.0


# --- evaluation sets of real 224 px photos: uint8 cache or PIL every pass --------------------


def imagenette_eval_set(root: Path, split: str = "val", **data: object) -> EvalSet:
    spec = DataSpec(root=root, train_split=split, eval_split=split, val_size=0, image_size=224,
                    **data)  # type: ignore[arg-type]
    return Dataset.from_spec(spec).eval_set()


def per_image_path(eval_set: EvalSet) -> np.ndarray:
    """The set's images preprocessed one by one with PIL (``Preprocess.__call__``)."""
    return np.stack([eval_set.preprocess(eval_set.source.image(i)) for i in eval_set.indices])


def all_batches(eval_set: EvalSet, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*eval_set.batches(batch_size), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_uint8_cached_eval_batches_equal_the_pil_path(imagenette_val_sample: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cached = imagenette_eval_set(imagenette_val_sample)
    assert cached.preload()
    pixels, _ = cached._cache  # type: ignore[misc]
    assert pixels.dtype == np.uint8 and pixels.shape == (100, 3, 224, 224)
    assert pixels.nbytes == decoded_bytes(100, 3, 224)
    assert "keeping the val set's 100 images (3x224x224) decoded in memory: 0.02 GB" in (
        capsys.readouterr().err)
    expected = per_image_path(cached)
    for batch_size in (32, 100):  # every pass normalises from the cache alike
        images, labels = all_batches(cached, batch_size)
        assert images.dtype == np.float32 and np.array_equal(images, expected)
        assert labels.tolist() == [cached.source.label(i) for i in cached.indices]
    assert np.array_equal(cached.first(3), expected[:3])
    assert np.array_equal(cached.first(102)[100:], expected[:2])  # repeated past the end
    half = cached.part([1, 5, 99], "part")
    assert np.array_equal(next(half.batches(3))[0], expected[[1, 5, 99]])
    assert cached.sample_shape() == (3, 224, 224)
    assert "decoded" not in capsys.readouterr().err  # logged once


def test_over_the_memory_limit_eval_sets_decode_with_pil_every_pass(
        imagenette_val_sample: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import edgevision.data.budget as budget

    monkeypatch.setattr(budget, "memory_limit", lambda: decoded_bytes(99, 3, 224))
    uncached = imagenette_eval_set(imagenette_val_sample)
    assert not uncached.preload() and uncached._cache is None
    assert "the val set's 100 images (3x224x224) take 0.02 GB decoded, over the 0.01 GB limit" in (
        capsys.readouterr().err)
    expected = per_image_path(uncached)
    for _ in range(2):
        images, _labels = all_batches(uncached, 32)
        assert uncached._cache is None and np.array_equal(images, expected)
    assert np.array_equal(uncached.first(5), expected[:5])
    assert "decoded" not in capsys.readouterr().err  # logged once
    monkeypatch.setattr(budget, "memory_limit", lambda: decoded_bytes(100, 3, 224))
    assert imagenette_eval_set(imagenette_val_sample).preload()  # the limit itself fits


def test_cached_greyscale_photos_are_three_equal_channels(imagenette_grey_sample: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import edgevision.data.budget as budget

    grey = imagenette_eval_set(imagenette_grey_sample, "train", mean=[0.5], std=[0.5])
    assert grey.preload()
    images, _ = all_batches(grey, 8)
    assert images.shape == (18, 3, 224, 224)
    assert np.array_equal(images[:, 0], images[:, 1]) and np.array_equal(images[:, 0],
                                                                          images[:, 2])
    monkeypatch.setattr(budget, "memory_limit", lambda: 0)
    uncached = imagenette_eval_set(imagenette_grey_sample, "train", mean=[0.5], std=[0.5])
    assert np.array_equal(all_batches(uncached, 8)[0], images)


# --- preprocessing -----------------------------------------------------------------------------


def test_grey_image_becomes_three_equal_channels() -> None:
    grey = Image.fromarray(np.arange(20 * 16, dtype=np.uint8).reshape(20, 16))
    out = Preprocess(image_size=None, resize=None, mean=MEAN, std=STD, channels=3)(grey)
    assert out.shape == (3, 20, 16)
    assert out.dtype == np.float32
    unnormalised = out * np.asarray(STD, np.float32)[:, None, None] \
        + np.asarray(MEAN, np.float32)[:, None, None]
    np.testing.assert_allclose(unnormalised[0], unnormalised[1], atol=1e-6)
    np.testing.assert_allclose(unnormalised[0], unnormalised[2], atol=1e-6)
    np.testing.assert_allclose(unnormalised[0], np.asarray(grey, np.float32) / 255, atol=1e-6)


def test_colour_image_becomes_one_channel_when_channels_is_1() -> None:
    colour = Image.new("RGB", (10, 8), (255, 0, 0))
    out = Preprocess(image_size=None, resize=None, mean=(0.0,), std=(1.0,), channels=1)(colour)
    assert out.shape == (1, 8, 10)
    expected = round(0.299 * 255) / 255  # PIL's ITU-R 601-2 luma of pure red
    np.testing.assert_allclose(out, expected, atol=1 / 255)


@pytest.mark.parametrize(("size", "resize", "image_size"),
                         [((100, 60), 48, 40), ((60, 100), 48, 40), ((100, 60), None, 32),
                          ((20, 10), None, 16), ((33, 32), None, 32)])
def test_resize_and_center_crop_give_the_requested_size(size: tuple[int, int],
                                                        resize: int | None,
                                                        image_size: int) -> None:
    image = Image.new("RGB", size, (10, 20, 30))
    pre = Preprocess(image_size=image_size, resize=resize, mean=MEAN, std=STD)
    assert pre.geometry(image).size == (image_size, image_size)
    assert pre(image).shape == (3, image_size, image_size)


def test_center_crop_keeps_the_middle() -> None:
    # 90x30: red | green | blue thirds; a 30x30 center crop is all green.
    array = np.zeros((30, 90, 3), dtype=np.uint8)
    array[:, :30, 0] = array[:, 30:60, 1] = array[:, 60:, 2] = 255
    pre = Preprocess(image_size=30, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = pre(Image.fromarray(array))
    assert out.shape == (3, 30, 30)
    np.testing.assert_array_equal(out[1], 1.0)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[2], 0.0)


@pytest.mark.parametrize("value", [0, 128, 200, 255])
def test_normalisation_of_a_constant_image(value: int) -> None:
    image = Image.new("RGB", (8, 8), (value, value, value))
    out = Preprocess(image_size=None, resize=None, mean=MEAN, std=STD)(image)
    assert out.shape == (3, 8, 8)
    for channel in range(3):
        expected = (value / 255 - MEAN[channel]) / STD[channel]
        np.testing.assert_allclose(out[channel], expected, rtol=1e-5, atol=1e-6)


def test_preprocess_dict_round_trip() -> None:
    pre = Preprocess(image_size=224, resize=256, mean=MEAN, std=STD, channels=3)
    assert Preprocess.from_dict(pre.to_dict()) == pre


# --- bad input ---------------------------------------------------------------------------------


def test_missing_root_is_not_found(tmp_path: Path) -> None:
    dataset = Dataset.from_spec(DataSpec(root=tmp_path / "nowhere"))
    with pytest.raises(DataError, match="not found"):
        _ = dataset.train_source


def test_image_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "dog").mkdir(parents=True)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    dataset = Dataset.from_spec(DataSpec(root=tmp_path))
    with pytest.raises(DataError, match="holds no images"):
        _ = dataset.train_source


def test_root_without_the_requested_split(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"train": ["cat", "dog"]})
    dataset = Dataset.from_spec(DataSpec(root=tmp_path, val_size=1, calibration_size=1))
    assert len(dataset.train_source) == 6
    with pytest.raises(DataError, match="no 'test' split"):
        dataset.eval_set()
    custom = Dataset.from_spec(DataSpec(root=tmp_path, eval_split="validation"))
    with pytest.raises(DataError, match="'validation'"):
        custom.eval_set()


def test_splits_with_different_classes(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"train": ["cat", "dog"], "test": ["bird", "cat"]})
    dataset = Dataset.from_spec(DataSpec(root=tmp_path, val_size=1, calibration_size=1))
    with pytest.raises(DataError, match="different classes"):
        _ = dataset.classes


def test_val_size_too_large(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"train": ["cat", "dog"], "test": ["cat", "dog"]})
    dataset = Dataset.from_spec(DataSpec(root=tmp_path, val_size=6))
    with pytest.raises(DataError, match=r"data\.val_size"):
        _ = dataset.splits


def test_unreadable_image(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"train": ["cat", "dog"], "test": ["cat", "dog"]})
    (tmp_path / "test" / "cat" / "0.png").write_bytes(b"not a png")
    dataset = Dataset.from_spec(DataSpec(root=tmp_path, val_size=1, calibration_size=1))
    with pytest.raises(DataError, match="cannot read image"):
        list(dataset.eval_set().batches(4))


def test_corrupt_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(DataError, match="cannot extract"):
        prepare_root(archive)
    assert not list((tmp_path / "cache" / "datasets").iterdir())


# --- Fashion-MNIST from Debian's package -------------------------------------------------------


def test_fashion_mnist(fashion_mnist_dir: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))
    spec = DataSpec(dataset="fashion_mnist", root=fashion_mnist_dir, channels=3, image_size=32,
                    eval_limit=8)
    dataset = Dataset.from_spec(spec)
    assert len(dataset.train_source) == 60_000
    assert len(dataset.eval_source) == 10_000
    assert len(dataset.classes) == 10
    assert dataset.classes[0] == "T-shirt/top"
    # The .gz files were unpacked once into the cache, in the layout torchvision reads.
    unpacked = list((tmp_path / "cache" / "datasets").glob("fashion-mnist-*/FashionMNIST/raw"))
    assert len(unpacked) == 1
    assert (unpacked[0] / "train-images-idx3-ubyte").is_file()
    assert dataset.eval_source.image(0).size == (28, 28)
    eval_set = dataset.eval_set()
    assert eval_set.sample_shape() == (3, 32, 32)
    images, labels = next(eval_set.batches(8))
    assert images.shape == (8, 3, 32, 32)
    assert labels.dtype == np.int64
    assert set(labels.tolist()) <= set(range(10))
    # Grey images repeated to three channels: the planes agree once un-normalised.
    plane = [images[:, c] * STD[c] + MEAN[c] for c in range(3)]
    np.testing.assert_allclose(plane[0], plane[1], atol=1e-5)
    np.testing.assert_allclose(plane[0], plane[2], atol=1e-5)


def test_fashion_mnist_one_channel(fashion_mnist_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))
    spec = DataSpec(dataset="fashion_mnist", root=fashion_mnist_dir, channels=1, mean=[0.286],
                    std=[0.353], eval_limit=4)
    assert Dataset.from_spec(spec).eval_set().sample_shape() == (1, 28, 28)


def test_fashion_mnist_unknown_split(fashion_mnist_dir: Path) -> None:
    spec = DataSpec(dataset="fashion_mnist", root=fashion_mnist_dir, eval_split="val")
    with pytest.raises(DataError, match="not 'val'"):
        _ = Dataset.from_spec(spec).eval_source


# --- archive extraction into the cache ---------------------------------------------------------


def test_archive_is_extracted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEVISION_CACHE", str(cache))
    make_image_folder(tmp_path / "src" / "tiny", {"train": ["a", "b"], "test": ["a", "b"]})
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "tiny", arcname="tiny")

    extracted = prepare_root(archive)
    assert extracted.parent == cache / "datasets"
    assert extracted.name.startswith("tiny-")
    assert (extracted / "tiny" / "train" / "a" / "0.png").is_file()
    assert sorted(os.listdir(cache / "datasets")) == [extracted.name]  # no staging left over

    marker = extracted / "marker"
    marker.write_text("first extraction")

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was extracted a second time")

    monkeypatch.setattr(sources_module.tarfile, "open", no_extraction)
    assert prepare_root(archive) == extracted
    assert marker.read_text() == "first extraction"

    train = open_split("imagefolder", archive, "train")
    test = open_split("imagefolder", archive, "test")
    assert isinstance(train, FolderSource)
    assert train.root == extracted / "tiny" / "train"
    assert train.classes == test.classes == ["a", "b"]
    assert len(train) == len(test) == 6
    assert [train.label(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert train.relative_path(4) == "b/1.png"
    assert train.image(0).getpixel((0, 0)) == (0, 100, 200)

    dataset = Dataset.from_spec(DataSpec(root=archive, val_size=2, calibration_size=2))
    eval_set = dataset.eval_set()
    images, labels = next(eval_set.batches(16))
    assert images.shape == (6, 3, 10, 12)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_changed_archive_is_extracted_again(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEVISION_CACHE", str(cache))
    archive = tmp_path / "tiny.tar.gz"
    folders = []
    for classes in (["a", "b"], ["a", "b", "c"]):
        src = make_image_folder(tmp_path / f"src{len(classes)}",
                                {"train": classes, "test": classes}, per_class=1)
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(src, arcname="tiny")
        folders.append(prepare_root(archive))
        assert open_split("imagefolder", archive, "test").classes == classes
    assert folders[0] != folders[1]
