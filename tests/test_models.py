"""Model registry, torchvision models and weights, user checkpoints, edgevision model files."""

from __future__ import annotations

import copy
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from edgevision.data import Dataset
from edgevision.data.spec import DataSpec
from edgevision.errors import CheckpointError, UnknownNameError
from edgevision.models.build import build_model, count_macs_params, load_model_file
from edgevision.models.checkpoint import MODEL_FILE_FORMAT, save_model_file
from edgevision.models.spec import ModelSpec
from edgevision.training.loop import evaluate_top1


def _cifar(checkpoint: Path, depth: int = 20, **extra: object) -> nn.Module:
    spec = ModelSpec(name=f"cifar_resnet{depth}", num_classes=10, checkpoint=checkpoint,
                     **extra)
    return build_model(spec).module.eval()


def _logits(model: nn.Module, images: np.ndarray) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(images))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def real_images(cifar_archive: Path) -> np.ndarray:
    """16 preprocessed CIFAR-10 test images (seeded subset)."""
    dataset = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=16))
    return dataset.eval_set().first(16)


@pytest.fixture(scope="module")
def resnet20(resnet20_checkpoint: Path) -> nn.Module:
    return _cifar(resnet20_checkpoint)


# --- the shared pretrained CIFAR ResNets -------------------------------------------------------


@pytest.mark.parametrize(("depth", "low", "high"), [(20, 0.26e6, 0.28e6), (56, 0.84e6, 0.86e6)])
def test_shared_cifar_checkpoints_load_strictly(depth: int, low: float, high: float,
                                                resnet20_checkpoint: Path,
                                                resnet56_checkpoint: Path) -> None:
    path = resnet20_checkpoint if depth == 20 else resnet56_checkpoint
    built = build_model(ModelSpec(name=f"cifar_resnet{depth}", num_classes=10, checkpoint=path))
    assert built.name == f"cifar_resnet{depth}"
    assert built.num_classes == 10
    assert built.source == f"checkpoint {path}"
    assert low < _n_params(built.module) < high
    # Every tensor of the file (keys carry a "module." prefix) landed in the model unchanged.
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    state = built.module.state_dict()
    assert {k.removeprefix("module.") for k in raw} <= set(state)
    for key, value in raw.items():
        assert torch.equal(state[key.removeprefix("module.")], value), key


def test_count_macs_params_resnet20(resnet20: nn.Module) -> None:
    macs, params = count_macs_params(resnet20, (3, 32, 32))
    assert params == _n_params(resnet20)
    assert 39e6 < macs < 42e6  # ResNet-20 on CIFAR: about 41 M MACs


@pytest.mark.slow
def test_pretrained_resnet20_accuracy_on_full_cifar10_jpeg_test_split(
        cifar_archive: Path, resnet20: nn.Module) -> None:
    eval_set = Dataset.from_spec(DataSpec(root=cifar_archive)).eval_set()
    assert len(eval_set) == 10_000
    top1 = evaluate_top1(resnet20, eval_set, batch_size=500)
    assert 79.5 < top1 < 82.5, top1  # measured 81.03 (lossy JPEGs; 91.8 on the PNG originals)


def test_pretrained_resnet20_beats_random_init_on_real_images(cifar_archive: Path,
                                                              resnet20: nn.Module) -> None:
    eval_set = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=100)).eval_set()
    torch.manual_seed(0)
    random_model = build_model(ModelSpec(name="cifar_resnet20", num_classes=10)).module
    assert evaluate_top1(resnet20, eval_set, 100) > 60
    assert evaluate_top1(random_model, eval_set, 100) < 30


# --- torchvision models by name ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "size"), [("resnet18", 32), ("mobilenet_v3_small", 64)])
def test_torchvision_model_by_name_with_num_classes(name: str, size: int) -> None:
    built = build_model(ModelSpec(name=name, num_classes=10))
    assert built.source == "random init"
    assert built.num_classes == 10
    out = _logits(built.module, np.random.default_rng(0).standard_normal(
        (2, 3, size, size)).astype(np.float32))
    assert out.shape == (2, 10)


def test_unknown_model_name_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="resnt18") as info:
        build_model(ModelSpec(name="resnt18", num_classes=10))
    assert "did you mean 'resnet18'" in str(info.value)


def test_edgevision_model_with_torchvision_weights_is_an_error() -> None:
    with pytest.raises(CheckpointError, match="no torchvision weights"):
        build_model(ModelSpec(name="cifar_resnet20", num_classes=10, weights="DEFAULT"))


# --- torchvision weights (never touching the network) ------------------------------------------


def test_unknown_weights_member_lists_choices() -> None:
    with pytest.raises(CheckpointError) as info:
        build_model(ModelSpec(name="resnet18", num_classes=10, weights="IMAGENET1K_V9"))
    message = str(info.value)
    assert "IMAGENET1K_V9" in message
    assert "choices: DEFAULT, IMAGENET1K_V1" in message


@pytest.mark.parametrize("weights", ["DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"])
def test_weights_download_failure_names_cache_path(weights: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls: list[object] = []

    def offline(self: object, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        calls.append(self)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(CheckpointError) as info:
        build_model(ModelSpec(name="resnet18", num_classes=10, weights=weights))
    message = str(info.value)
    enum = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(enum.url).name
    assert "could not download" in message
    assert str(cached) in message
    assert enum.url in message
    assert calls == [enum]


def test_pretrained_weights_replace_classifier_for_other_num_classes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The offline weights path the error message tells users about: the weights file copied
    into torch's hub cache is loaded (no download) and the classifier replaced for 10 classes."""
    torch.manual_seed(0)
    imagenet_state = torchvision.models.resnet18(num_classes=1000).state_dict()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    torch.save(imagenet_state, cached)
    built = build_model(ModelSpec(name="resnet18", num_classes=10, weights="DEFAULT"))
    assert built.module.fc.out_features == 10
    assert any("classifier replaced: 1000 → 10" in note for note in built.notes)
    assert "IMAGENET1K_V1" in built.source
    assert torch.equal(built.module.conv1.weight, imagenet_state["conv1.weight"])
    out = _logits(built.module, np.zeros((2, 3, 32, 32), dtype=np.float32))
    assert out.shape == (2, 10)


# --- user checkpoints --------------------------------------------------------------------------


def _wrap(state: dict[str, torch.Tensor], layout: str) -> object:
    if layout == "plain":
        return state
    if layout == "state_dict":
        return {"state_dict": state, "epoch": 3, "best_prec1": 91.2}
    if layout == "model":
        return {"model": state, "optimizer": {"lr": 0.1}}
    if layout == "module_prefix":
        return {f"module.{k}": v for k, v in state.items()}
    if layout == "wrapped_module_prefix":
        return {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    raise AssertionError(layout)


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "module_prefix",
                                    "wrapped_module_prefix"])
def test_user_checkpoint_layouts_load_with_identical_outputs(
        layout: str, tmp_path: Path, resnet20: nn.Module, real_images: np.ndarray) -> None:
    path = tmp_path / "user.pt"
    torch.save(_wrap(resnet20.state_dict(), layout), path)
    loaded = _cifar(path)
    assert loaded is not resnet20
    assert torch.equal(_logits(loaded, real_images), _logits(resnet20, real_images))


def test_whole_saved_module_needs_trust_checkpoint(tmp_path: Path, resnet20: nn.Module,
                                                   real_images: np.ndarray) -> None:
    path = tmp_path / "whole.pt"
    torch.save(copy.deepcopy(resnet20), path)
    with pytest.raises(CheckpointError, match="trust_checkpoint"):
        _cifar(path)
    built = build_model(ModelSpec(name="cifar_resnet20", num_classes=10, checkpoint=path,
                                  trust_checkpoint=True))
    assert built.source == f"whole model {path}"
    assert built.num_classes == 10
    assert torch.equal(_logits(built.module, real_images), _logits(resnet20, real_images))


def test_whole_saved_module_without_a_name(tmp_path: Path, resnet20: nn.Module) -> None:
    path = tmp_path / "whole.pt"
    torch.save(copy.deepcopy(resnet20), path)
    built = build_model(ModelSpec(checkpoint=path, trust_checkpoint=True))
    assert built.name == "CifarResNet"
    assert built.num_classes == 10


def test_resnet56_checkpoint_into_resnet32_names_unexpected_keys(
        resnet56_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        _cifar(resnet56_checkpoint, depth=32)
    message = str(info.value)
    assert "does not fit CifarResNet" in message
    assert "unexpected keys: layer1.5.conv1.weight" in message
    assert "missing keys" not in message


def test_wrong_num_classes_names_shape_mismatch(tmp_path: Path, resnet20: nn.Module) -> None:
    path = tmp_path / "ten.pt"
    torch.save(resnet20.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch: linear\.weight \(10, 64\)"):
        build_model(ModelSpec(name="cifar_resnet20", num_classes=100, checkpoint=path))


def test_checkpoint_without_state_dict_names_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "notes": "no weights here"}, path)
    with pytest.raises(CheckpointError, match="holds no state_dict.*epoch, notes"):
        _cifar(path)


def test_corrupt_checkpoint_raises(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        _cifar(path)


def test_truncated_checkpoint_is_not_readable(tmp_path: Path, resnet20: nn.Module) -> None:
    full, path = tmp_path / "full.pt", tmp_path / "truncated.pt"
    torch.save(resnet20.state_dict(), full)
    path.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        _cifar(path)


def test_corrupt_checkpoint_is_not_mistaken_for_a_whole_model(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as info:
        _cifar(path)
    assert "not a readable PyTorch checkpoint" in str(info.value)
    assert "trust_checkpoint" not in str(info.value)


def test_missing_checkpoint_not_found(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        _cifar(tmp_path / "nope.pt")


def test_name_required_for_a_plain_state_dict(tmp_path: Path, resnet20: nn.Module) -> None:
    path = tmp_path / "plain.pt"
    torch.save(resnet20.state_dict(), path)
    with pytest.raises(CheckpointError, match="model.name is required"):
        build_model(ModelSpec(checkpoint=path))


# --- edgevision model files --------------------------------------------------------------------


def test_model_file_round_trip(tmp_path: Path, resnet20: nn.Module,
                               real_images: np.ndarray) -> None:
    info = {"name": "cifar_resnet20", "num_classes": 10, "input_shape": [3, 32, 32],
            "labels": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                       "ship", "truck"]}
    path = save_model_file(resnet20, tmp_path / "sub" / "model.pt", info)
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
    assert torch.load(path, map_location="cpu", weights_only=True)["format"] == MODEL_FILE_FORMAT

    built, stored = load_model_file(path)
    assert stored == info
    assert built.name == "cifar_resnet20"
    assert built.source == f"edgevision model file {path}"
    expected = _logits(resnet20, real_images)
    assert torch.equal(_logits(built.module, real_images), expected)
    # build_model recognises the file by itself: no name needed.
    by_spec = build_model(ModelSpec(checkpoint=path))
    assert by_spec.name == "cifar_resnet20"
    assert torch.equal(_logits(by_spec.module, real_images), expected)


def test_load_model_file_rejects_a_plain_state_dict(tmp_path: Path, resnet20: nn.Module) -> None:
    path = tmp_path / "plain.pt"
    torch.save(resnet20.state_dict(), path)
    with pytest.raises(CheckpointError, match="not an edgevision model file"):
        load_model_file(path)
