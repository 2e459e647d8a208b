"""Shared fixtures: the real data in ../shared/data, tiny recipes built on it.

Tests that need the real data skip (saying why) when it is absent, but fail when CI=true: a
skipped real-data test must never turn CI green.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEVISION_SHARED_DATA", REPO.parent / "shared" / "data"))
CIFAR_ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.gz"
RESNET20 = SHARED_DATA / "weights" / "cifar10_resnet20-12fca82f.th"
RESNET56 = SHARED_DATA / "weights" / "cifar10_resnet56-4bfd9763.th"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _openvino_availability() -> Any:
    from edgevision.backends import get_backend

    return get_backend("onnxruntime-openvino").availability()


#: whether ONNX Runtime's OpenVINO provider is installed here (.venv-openvino), and why not
OPENVINO = _openvino_availability()
#: for tests that need it: they skip without it, except where scripts/test requires it
#: (EDGEVISION_REQUIRE_OPENVINO=1 in .venv-openvino), where they fail
needs_openvino = pytest.mark.skipif(
    not OPENVINO.ok and os.environ.get("EDGEVISION_REQUIRE_OPENVINO") != "1",
    reason=f"{OPENVINO.reason} (scripts/test runs this in .venv-openvino)")


def require(path: Path, what: str, hint: str = "see ../shared/data/README.md") -> Path:
    """Return ``path``; when missing, fail under CI=true, else skip with the reason."""
    if path.exists():
        return path
    message = f"{what} not found at {path} ({hint})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


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
