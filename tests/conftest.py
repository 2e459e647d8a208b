"""Shared fixtures: the real data in ../shared/data, tiny recipes built on it.

Tests that need the real data skip (saying why) when it is absent, but fail when CI=true: a
skipped real-data test must never turn CI green.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEVISION_SHARED_DATA", REPO.parent / "shared" / "data"))
CIFAR_ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.gz"
RESNET20 = SHARED_DATA / "weights" / "cifar10_resnet20-12fca82f.th"
RESNET56 = SHARED_DATA / "weights" / "cifar10_resnet56-4bfd9763.th"
IMAGENETTE_ARCHIVE = SHARED_DATA / "imagenette-224.tar.gz"
#: imagenette's class folders (sorted wnids) → their ImageNet-1k indices (data README)
IMAGENETTE_IMAGENET_INDEX = {
    "n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
    "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def imagenet_labels(classes: list[str], labels: np.ndarray) -> np.ndarray:
    """imagenette labels (indices into ``classes``, its wnid folders) as ImageNet-1k indices."""
    return np.asarray([IMAGENETTE_IMAGENET_INDEX[c] for c in classes])[labels]


def ten_class_top1(logits: np.ndarray, imagenet: np.ndarray) -> float:
    """The fraction of photos whose highest 1000-way logit among the ten imagenette classes'
    ImageNet indices is their own (``imagenet``: their ImageNet-1k labels)."""
    ten = np.asarray(sorted(IMAGENETTE_IMAGENET_INDEX.values()))
    return float(np.mean(ten[logits[:, ten].argmax(1)] == imagenet))


def missing(message: str) -> NoReturn:
    """Something a test needs is missing: fail under CI=true (CI must have it), else skip,
    saying what."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require(path: Path, what: str, hint: str = "see ../shared/data/README.md") -> Path:
    """Return ``path``; when missing, fail under CI=true, else skip with the reason."""
    if path.exists():
        return path
    missing(f"{what} not found at {path} ({hint})")


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    """The CIFAR-10 JPEG archive (ImageFolder layout inside)."""
    return require(CIFAR_ARCHIVE, "CIFAR-10 JPEG archive")


@pytest.fixture(scope="session")
def cifar_root(cifar_archive: Path) -> Path:
    """The extracted CIFAR-10 JPEG folder (holds train/ and test/), cached across runs."""
    from edgevision.data.sources import find_split_dir, prepare_root

    return find_split_dir(prepare_root(cifar_archive), "test").parent


@pytest.fixture(scope="session")
def imagenette_archive() -> Path:
    """The imagenette-224 archive (ten ImageNet classes, 224x224 photos, ImageFolder inside)."""
    return require(IMAGENETTE_ARCHIVE, "imagenette-224 archive")


def imagenette_sample(archive: Path, split: str, per_class: int, grey: bool = False) -> Path:
    """An ImageFolder root holding ``split/<wnid>/`` with the first ``per_class`` photos of each
    class (archive order) of imagenette-224 (with ``grey``: its greyscale photos only, classes
    without any left out): extracted once into edgevision's cache, not the whole 132 MB
    archive."""
    import shutil
    import tarfile
    import tempfile

    from edgevision.data.sources import cache_dir

    kind = "-grey" if grey else ""
    target = (cache_dir() / "datasets" /
              f"imagenette-224-{split}-{per_class}{kind}-{archive.stat().st_size}")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".imagenette.", dir=target.parent))
    taken: dict[str, int] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                parts = Path(member.name).parts  # imagenette-224/<split>/<wnid>/<file>
                if not member.isfile() or len(parts) != 4 or parts[1] != split:
                    continue
                if taken.get(parts[2], 0) < per_class and (not grey or _is_grey(tar, member)):
                    taken[parts[2]] = taken.get(parts[2], 0) + 1
                    member.name = "/".join(parts[1:])
                    tar.extract(member, staging, filter="data")
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def imagenette_val_sample(imagenette_archive: Path) -> Path:
    """Ten imagenette-224 val photos per class (100), as ``<root>/val/<wnid>/*.JPEG``."""
    return imagenette_sample(imagenette_archive, "val", 10)


@pytest.fixture(scope="session")
def imagenette_train_sample(imagenette_archive: Path) -> Path:
    """Twelve imagenette-224 train photos per class (120), as ``<root>/train/<wnid>/*.JPEG``."""
    return imagenette_sample(imagenette_archive, "train", 12)


@pytest.fixture(scope="session")
def imagenette_grey_sample(imagenette_archive: Path) -> Path:
    """Two greyscale imagenette-224 train photos per class that has any (18 photos of 9
    classes), as ``<root>/train/<wnid>/*.JPEG``."""
    return imagenette_sample(imagenette_archive, "train", 2, grey=True)


def _is_grey(tar: Any, member: Any) -> bool:
    """Whether the archive member is a one-channel (greyscale) image."""
    from PIL import Image

    with Image.open(tar.extractfile(member)) as image:
        return bool(image.mode == "L")


@pytest.fixture(scope="session")
def resnet20_checkpoint() -> Path:
    return require(RESNET20, "pretrained CIFAR ResNet-20")


def pretrained_resnet20(checkpoint: Path) -> Any:
    """A fresh pretrained CIFAR ResNet-20 ``nn.Module`` in eval mode (for fixtures of any
    scope)."""
    from edgevision.models.build import build_model
    from edgevision.models.spec import ModelSpec

    spec = ModelSpec(name="cifar_resnet20", num_classes=10, checkpoint=checkpoint)
    return build_model(spec).module.eval()


def export_resnet20(checkpoint: Path, dataset: Any, folder: Path
                    ) -> tuple[Any, dict[str, Any], Path]:
    """The pretrained CIFAR ResNet-20 (``nn.Module``), its edgevision metadata for ``dataset``
    and its FP32 ONNX export (``folder``/model.onnx, TorchScript exporter)."""
    from edgevision.export.onnx import export_onnx
    from edgevision.recipe import ExportSpec

    module = pretrained_resnet20(checkpoint)
    info = {"name": "cifar_resnet20", "num_classes": 10, "input_shape": [3, 32, 32],
            "preprocess": dataset.preprocess.to_dict(), "labels": dataset.classes}
    sample = dataset.calibration_set().first(4)
    onnx_path = export_onnx(module, sample, folder / "model.onnx",
                            ExportSpec(exporter="torchscript"), {**info, "precision": "fp32"})
    return module, info, onnx_path


@pytest.fixture(scope="session")
def resnet56_checkpoint() -> Path:
    return require(RESNET56, "pretrained CIFAR ResNet-56")


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Debian's dataset-fashion-mnist files (scripts/setup installs the package)."""
    return require(FASHION_MNIST / "train-images-idx3-ubyte.gz",
                   "Fashion-MNIST (Debian package dataset-fashion-mnist)").parent


def tiny_recipe_dict(cifar_archive: Path, checkpoint: Path, **sections: Any) -> dict[str, Any]:
    """A small but real recipe: pretrained ResNet-20 on CIFAR-10 JPEG subsets."""
    recipe: dict[str, Any] = {
        "name": "tiny",
        "model": {"name": "cifar_resnet20", "num_classes": 10, "checkpoint": str(checkpoint)},
        "data": {"dataset": "imagefolder", "root": str(cifar_archive), "val_size": 200,
                 "train_limit": 512, "eval_limit": 300, "calibration_size": 64,
                 "batch_size": 64},
        "train": {"epochs": 0},
        "export": {"verify_images": 16},
        "benchmark": {"batch_sizes": [1, 8], "warmup": 1, "iterations": 3, "threads": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(section), dict):
            recipe[section].update(values)
        else:
            recipe[section] = values
    return recipe


@pytest.fixture
def tiny_recipe(tmp_path: Path, cifar_archive: Path, resnet20_checkpoint: Path):
    """Factory: write a tiny recipe YAML (``sections`` override the defaults), return its path."""

    def make(**sections: Any) -> Path:
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(tiny_recipe_dict(cifar_archive, resnet20_checkpoint,
                                                        **sections)))
        return path

    return make
