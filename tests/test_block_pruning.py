"""Depth pruning (granularity: block): residual blocks removed, ranked on real images."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import torchvision
import yaml

from edgevision.data import Dataset, EvalSet
from edgevision.data.spec import DataSpec
from edgevision.errors import PruneError, RecipeError
from edgevision.export.onnx import export_onnx, verify_onnx
from edgevision.export.spec import ExportSpec
from edgevision.models.build import count_macs_params, load_model_file
from edgevision.models.checkpoint import save_model_file
from edgevision.models.structure import RemovedBlock, remove_block
from edgevision.pruning.blocks import prune_blocks, removable_blocks
from edgevision.pruning.config import PruneConfig
from edgevision.recipe.stages import parse_stages
from tests.conftest import pretrained_resnet20

EXAMPLE = torch.zeros(1, 3, 32, 32)
#: the ResNet-20's blocks with an identity shortcut (the first of stages 2 and 3 downsample)
R20_REMOVABLE = ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1",
                 "layer3.2"]


@pytest.fixture(scope="module")
def cifar(cifar_archive: Path) -> Dataset:
    return Dataset.from_spec(DataSpec(root=cifar_archive, train_limit=512, val_size=0,
                                      calibration_size=128), seed=0)


@pytest.fixture(scope="module")
def calibration(cifar: Dataset) -> torch.Tensor:
    return torch.from_numpy(cifar.calibration_set().first(128))


@pytest.fixture(scope="module")
def test_images(cifar: Dataset) -> torch.Tensor:
    subset = EvalSet(cifar.eval_source, list(range(0, 10000, 20)), cifar.preprocess)
    return torch.from_numpy(subset.first(500))


@pytest.fixture
def resnet20(resnet20_checkpoint: Path) -> torch.nn.Module:
    return pretrained_resnet20(resnet20_checkpoint)


@torch.no_grad()
def _agreement(model: torch.nn.Module, reference: torch.nn.Module, images: torch.Tensor) -> float:
    return float((model.eval()(images).argmax(1) == reference.eval()(images).argmax(1))
                 .float().mean())


def test_resnet20_to_80_percent_of_the_macs(resnet20: torch.nn.Module,
                                            calibration: torch.Tensor, test_images: torch.Tensor,
                                            tmp_path: Path) -> None:
    """Blocks with identity shortcuts go, least harmful first, until MACs ≤ target; the model
    keeps its output shape and exports to ONNX that matches."""
    unpruned = copy.deepcopy(resnet20)
    assert removable_blocks(resnet20, []) == R20_REMOVABLE
    before, _ = count_macs_params(resnet20, (3, 32, 32))
    result = prune_blocks(resnet20, PruneConfig(granularity="block", target_macs=0.8), EXAMPLE,
                          calibration)
    after, _ = count_macs_params(resnet20, (3, 32, 32))
    assert result.macs_after == after <= 0.8 * before
    assert after > 0.8 * before - 0.12 * before  # not one block (~11.6% of the MACs) too many
    assert len(result.removed_blocks) == 2
    assert all(isinstance(resnet20.get_submodule(n), RemovedBlock) for n in result.removed_blocks)
    assert resnet20(EXAMPLE).shape == (1, 10)
    # the kept layers are the pretrained ones, untouched
    assert torch.equal(resnet20.layer3[0].conv1.weight, unpruned.layer3[0].conv1.weight)
    images = test_images[:8].numpy()
    path = export_onnx(resnet20, images, tmp_path / "blocks.onnx",
                       ExportSpec(exporter="torchscript"), {"name": "cifar_resnet20"})
    assert verify_onnx(path, resnet20, images, 1e-4, 1e-3).top1_agreement == 1.0
    # the ranking matters on real test images: the least harmful blocks keep far more of the
    # unpruned model's predictions than the most harmful ones would
    worst = copy.deepcopy(unpruned)
    for name in _most_harmful(unpruned, calibration, 2):
        remove_block(worst, name)
    chosen = _agreement(resnet20, unpruned, test_images)
    assert chosen > _agreement(worst, unpruned, test_images) + 0.1  # measured 0.45 vs 0.16


def _most_harmful(model: torch.nn.Module, images: torch.Tensor, count: int) -> list[str]:
    with torch.no_grad():
        reference = F.log_softmax(model(images), 1)
        harm = {}
        for name in R20_REMOVABLE:
            trial = copy.deepcopy(model)
            remove_block(trial, name)
            harm[name] = float(F.kl_div(F.log_softmax(trial(images), 1), reference,
                                        reduction="batchmean", log_target=True))
    return sorted(harm, key=harm.__getitem__)[-count:]


def test_first_removal_is_the_least_harmful_alone(resnet20: torch.nn.Module,
                                                  calibration: torch.Tensor) -> None:
    """The greedy ranking removes the block whose removal alone changes the predictions least
    (measured independently here, on copies), and puts every other block back intact."""
    unpruned = copy.deepcopy(resnet20)
    least = _most_harmful(unpruned, calibration, len(R20_REMOVABLE))[0]
    result = prune_blocks(resnet20, PruneConfig(granularity="block", ratio=0.1), EXAMPLE,
                          calibration)
    assert result.removed_blocks == [least]
    state = resnet20.state_dict()
    for key, value in unpruned.state_dict().items():
        if not key.startswith(least + "."):
            assert torch.equal(state[key], value), key


def test_block_pruned_model_file_round_trip(resnet20: torch.nn.Module,
                                            calibration: torch.Tensor, tmp_path: Path) -> None:
    prune_blocks(resnet20, PruneConfig(granularity="block", ratio=0.5), EXAMPLE, calibration)
    path = save_model_file(resnet20, tmp_path / "blocks.pt", {"name": "cifar_resnet20",
                                                              "num_classes": 10})
    loaded, _ = load_model_file(path)
    removed = [n for n, m in loaded.module.named_modules() if isinstance(m, RemovedBlock)]
    assert len(removed) == 4  # half of the 7 removable blocks, rounded
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module.eval()(images), resnet20.eval()(images))


def test_iterative_steps_remove_blocks_in_stages(resnet20: torch.nn.Module,
                                                 calibration: torch.Tensor) -> None:
    seen: list[int] = []
    result = prune_blocks(resnet20, PruneConfig(granularity="block", target_macs=0.5, steps=2),
                          EXAMPLE, calibration, after_step=seen.append)
    assert seen == [1, 2]
    assert result.steps[0]["macs"] <= 0.75 * result.macs_before  # halfway to the target
    assert result.steps[0]["macs"] > result.steps[1]["macs"] <= 0.5 * result.macs_before


@pytest.mark.parametrize(("name", "removable"), [
    ("resnet18", 5), ("mobilenet_v2", 10), ("efficientnet_b0", 9), ("regnet_y_400mf", 12),
])
def test_torchvision_models_lose_blocks(name: str, removable: int, tmp_path: Path) -> None:
    """Random-weight torchvision models: identity-shortcut blocks found and removed, MACs
    reduced, the model still runs and exports."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=10).eval()
    assert len(removable_blocks(model, [])) == removable
    before, _ = count_macs_params(model, (3, 32, 32))
    images = torch.randn(16, 3, 32, 32)
    result = prune_blocks(model, PruneConfig(granularity="block", ratio=0.5), EXAMPLE, images)
    assert len(result.removed_blocks) == round(0.5 * removable)
    assert result.macs_after < before
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    path = export_onnx(model, batch, tmp_path / f"{name}.onnx", ExportSpec(exporter="torchscript"),
                       {"name": name})
    assert verify_onnx(path, model, batch, 1e-3, 1e-3).max_abs_diff < 1e-3


def test_efficientnet_lite_mbconv_blocks_with_identity_skips_are_removable() -> None:
    """Lite0's 16 MBConv blocks: the 9 with stride 1 and unchanged channels are removable, the
    model keeps running at its native 224 px with fewer MACs."""
    from edgevision.models.efficientnet_lite import MBConv, efficientnet_lite

    torch.manual_seed(0)
    model = efficientnet_lite("efficientnet_lite0", 10).eval()
    blocks = removable_blocks(model, [])
    assert len(blocks) == 9 and sum(isinstance(m, MBConv) for m in model.modules()) == 16
    before, _ = count_macs_params(model, (3, 224, 224))
    result = prune_blocks(model, PruneConfig(granularity="block", ratio=0.3),
                          torch.zeros(1, 3, 224, 224), torch.randn(8, 3, 224, 224))
    assert len(result.removed_blocks) == 3 and set(result.removed_blocks) <= set(blocks)
    assert result.macs_after < before
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_ignored_blocks_stay(resnet20: torch.nn.Module, calibration: torch.Tensor) -> None:
    config = PruneConfig(granularity="block", ratio=0.9, ignore=["layer1.0", "layer3.1.conv2"])
    result = prune_blocks(resnet20, config, EXAMPLE, calibration)
    assert "layer1.0" not in result.removed_blocks
    assert "layer3.1" not in result.removed_blocks


def test_a_model_without_residual_blocks_is_refused() -> None:
    model = torchvision.models.vgg11(num_classes=10).eval()
    with pytest.raises(PruneError, match="no residual block with an identity shortcut"):
        prune_blocks(model, PruneConfig(granularity="block", ratio=0.5), EXAMPLE,
                     torch.randn(8, 3, 32, 32))


def test_unreachable_block_target_names_the_smallest(resnet20: torch.nn.Module,
                                                     calibration: torch.Tensor) -> None:
    with pytest.raises(PruneError, match=r"prune.target_macs \(0\.100 of the MACs\) cannot be "
                                         r"met by removing blocks: the smallest reachable is "
                                         r"0\.1\d\d of the MACs \(all 7 removable blocks"):
        prune_blocks(resnet20, PruneConfig(granularity="block", target_macs=0.1), EXAMPLE,
                     calibration)
    assert not any(isinstance(m, RemovedBlock) for m in resnet20.modules())  # nothing removed


def test_channel_options_are_refused_with_blocks() -> None:
    with pytest.raises(RecipeError, match="prune.round_to applies to channel pruning only"):
        parse_stages([{"kind": "prune", "granularity": "block", "ratio": 0.5, "round_to": 16}])
    with pytest.raises(RecipeError,
                       match=r"granularity: Input should be 'channel' or 'block' \(got 'layer'"):
        parse_stages([{"kind": "prune", "granularity": "layer", "ratio": 0.5}])
    with pytest.raises(RecipeError, match="prune.block_samples applies to granularity: block"):
        parse_stages([{"kind": "prune", "ratio": 0.5, "block_samples": 64}])


def test_qat_refuses_mixed_precision_training() -> None:
    with pytest.raises(RecipeError, match="qat trains in fp32 only"):
        parse_stages([{"kind": "quantize", "qat": {"when": "always",
                                                   "train": {"epochs": 1, "precision": "bf16"}}}])


def test_block_pruning_recipe_end_to_end(tiny_recipe, tmp_path: Path) -> None:
    """compress with a block-pruning stage: the run's model file reloads with the blocks gone
    and the report records which."""
    from edgevision.pipeline import compress
    from edgevision.recipe.load import load_recipe

    recipe = tiny_recipe(stages=[{"kind": "prune", "granularity": "block", "target_macs": 0.7,
                                  "block_samples": 32}],
                         benchmark={"backends": ["onnxruntime"], "batch_sizes": [1],
                                    "warmup": 1, "iterations": 2, "threads": 2})
    out = tmp_path / "run"
    compress(load_recipe(recipe), out)
    report = yaml.safe_load((out / "run.json").read_text())
    prune = report["info"]["prune"]
    assert prune["granularity"] == "block" and prune["ranking_images"] == 32
    assert prune["macs_fraction"] <= 0.7 and len(prune["removed_blocks"]) == 3
    loaded, _ = load_model_file(out / "model.pt")
    assert sum(isinstance(m, RemovedBlock) for m in loaded.module.modules()) == 3


def test_latency_target_removes_blocks_until_met(resnet20: torch.nn.Module,
                                                 calibration: torch.Tensor) -> None:
    """A latency target with a deterministic stand-in for the timer (milliseconds proportional
    to MACs), so the test checks the loop, not this machine's noise."""
    full, _ = count_macs_params(resnet20, (3, 32, 32))

    def fake_ms(module: torch.nn.Module) -> float:
        return 10.0 * count_macs_params(module, (3, 32, 32))[0] / full

    result = prune_blocks(resnet20, PruneConfig(granularity="block", target_latency_ms=7.0),
                          EXAMPLE, calibration, latency_of=fake_ms)
    assert 7.0 - 1.2 < fake_ms(resnet20) <= 7.0  # stopped at the first block under the limit
    assert len(result.removed_blocks) == 3
    with pytest.raises(PruneError, match=r"target_latency_ms \(1\.00 ms\) cannot be met by "
                                         r"removing blocks: the smallest reachable is 1\.\d\d ms"):
        prune_blocks(resnet20, PruneConfig(granularity="block", target_latency_ms=1.0),
                     EXAMPLE, calibration, latency_of=fake_ms)


def test_latency_rank_weighs_the_kl_by_the_time_saved(resnet20: torch.nn.Module,
                                                       calibration: torch.Tensor) -> None:
    """block_rank: latency removes the block with the least KL per millisecond saved: a block
    that saves far more time goes first although another changes the predictions less."""
    by_accuracy = prune_blocks(copy.deepcopy(resnet20),
                               PruneConfig(granularity="block", ratio=0.15), EXAMPLE, calibration)
    first = by_accuracy.removed_blocks[0]
    other = next(name for name in R20_REMOVABLE if name != first)
    timed: list[list[str]] = []

    def savings_of(model: torch.nn.Module, blocks: list[str]) -> dict[str, float]:
        timed.append(list(blocks))
        return {name: 100.0 if name == other else 0.01 for name in blocks}

    config = PruneConfig(granularity="block", ratio=0.15, block_rank="latency")
    by_latency = prune_blocks(resnet20, config, EXAMPLE, calibration, savings_of=savings_of)
    assert by_latency.removed_blocks == [other] and by_accuracy.removed_blocks == [first]
    assert timed == [R20_REMOVABLE]  # every removable block timed once, on the unpruned model
    assert by_latency.block_savings_ms == {n: 100.0 if n == other else 0.01
                                           for n in R20_REMOVABLE}
    with pytest.raises(PruneError, match="needs a way to time the blocks"):
        prune_blocks(resnet20, config, EXAMPLE, calibration)
    with pytest.raises(Exception, match="block_rank applies to granularity: block only"):
        PruneConfig(ratio=0.3, block_rank="latency")


@pytest.mark.slow
def test_latency_rank_times_each_block_once_and_caches(
        tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real timings (ONNX Runtime, batch 8, each trial quantized to INT8) of the model without
    each block, cached: a second run of the same model, backend and batch reads them instead of
    timing again."""
    import json

    from edgevision.data.sources import cache_dir
    from edgevision.pipeline import compress
    from edgevision.recipe.load import load_recipe

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "datasets").symlink_to(cache_dir() / "datasets")  # no re-extraction
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))
    recipe = tiny_recipe(stages=[{"kind": "prune", "granularity": "block", "target_macs": 0.7,
                                  "block_samples": 32, "block_rank": "latency",
                                  "latency_batch": 8, "latency_precision": "int8",
                                  "compare": False}],
                         benchmark={"backends": ["onnxruntime"], "batch_sizes": [1],
                                    "warmup": 1, "iterations": 2, "threads": 2})
    compress(load_recipe(recipe), tmp_path / "first")
    prune = json.loads((tmp_path / "first" / "run.json").read_text())["info"]["prune"]
    assert prune["ranking"] == "kl_per_ms_saved (onnxruntime, batch 8, int8)"
    assert set(prune["block_savings_ms"]) == set(R20_REMOVABLE)
    assert prune["macs_fraction"] <= 0.7
    (cached,) = (tmp_path / "cache" / "block-latency").iterdir()
    stamp = cached.stat().st_mtime_ns
    compress(load_recipe(recipe), tmp_path / "second")
    again = json.loads((tmp_path / "second" / "run.json").read_text())["info"]["prune"]
    assert cached.stat().st_mtime_ns == stamp  # read, not timed again
    assert again["block_savings_ms"] == prune["block_savings_ms"]
    assert again["removed_blocks"] == prune["removed_blocks"]
    cached.write_text("{")  # a torn or corrupt cache: timed again, not a crash
    compress(load_recipe(recipe), tmp_path / "third")
    assert set(json.loads(cached.read_text())["savings_ms"]) == set(R20_REMOVABLE)
    with pytest.raises(Exception, match="latency_backend 'pytorch' does not run them"):
        PruneConfig(granularity="block", ratio=0.3, block_rank="latency",
                    latency_backend="pytorch", latency_precision="int8")
