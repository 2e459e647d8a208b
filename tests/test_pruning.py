"""The prune stage: torch-pruning on real architectures, MACs targets, safety, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from edgevision.errors import PruneError, RecipeError
from edgevision.export.onnx import export_onnx, verify_onnx
from edgevision.export.spec import ExportSpec
from edgevision.models.build import build_model, count_macs_params, load_model_file
from edgevision.models.checkpoint import save_model_file
from edgevision.models.cifar_resnet import BasicBlock, cifar_resnet
from edgevision.models.spec import ModelSpec
from edgevision.pruning.config import PruneConfig
from edgevision.pruning.prune import prune_model
from edgevision.recipe.stages import parse_stages

EXAMPLE = torch.zeros(1, 3, 32, 32)


def _random_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, 32, 32, generator=generator),
             torch.randint(0, 10, (8,), generator=generator))]


@pytest.fixture
def pretrained_resnet20(resnet20_checkpoint: Path) -> torch.nn.Module:
    spec = ModelSpec(name="cifar_resnet20", num_classes=10, checkpoint=resnet20_checkpoint)
    return build_model(spec).module.eval()


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor", "lamp", "fpgm"])
def test_resnet20_to_half_the_macs(pretrained_resnet20: torch.nn.Module, importance: str,
                                   tmp_path: Path) -> None:
    """The pretrained ResNet-20 pruned to 50% of its MACs: MACs within 5% below the target,
    same output shape, residual stream pruned consistently (through the exact selection
    shortcuts), exports to ONNX that matches."""
    model = pretrained_resnet20
    macs_before, _ = count_macs_params(model, (3, 32, 32))
    config = PruneConfig(target_macs=0.5, importance=importance)
    result = prune_model(model, config, EXAMPLE, "cifar_resnet20",
                         labelled_batches=_random_batches)
    macs_after, _ = count_macs_params(model, (3, 32, 32))
    assert result.macs_before == macs_before and result.macs_after == macs_after
    assert 0.475 * macs_before <= macs_after <= 0.5 * macs_before
    assert result.architecture == "cifar_resnet20_conv_shortcut"
    assert model(EXAMPLE).shape == (1, 10)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    for stage in (blocks[0:3], blocks[3:6], blocks[6:9]):  # one residual width per stage
        assert len({b.conv2.out_channels for b in stage}) == 1
        assert all(b.conv1.in_channels == stage[0].conv2.out_channels for b in stage[1:])
    widths = [b.conv1.out_channels for b in blocks] + [b.conv2.out_channels for b in blocks]
    assert all(c % 8 == 0 and c > 0 for c in widths)
    assert sum(widths) < 2 * (3 * 16 + 3 * 32 + 3 * 64)
    images = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    path = export_onnx(model, images, tmp_path / "pruned.onnx", ExportSpec(exporter="torchscript"),
                       {"name": "cifar_resnet20"})
    assert verify_onnx(path, model, images, 1e-4, 1e-3).top1_agreement == 1.0


def test_iterative_steps_reach_the_ratio() -> None:
    model = cifar_resnet(20)
    seen: list[int] = []
    result = prune_model(model, PruneConfig(ratio=0.5, steps=3), EXAMPLE, "cifar_resnet20",
                         after_step=seen.append)
    assert seen == [1, 2, 3]
    macs = [s["macs"] for s in result.steps]
    assert macs[0] > macs[1] > macs[2]
    assert [b.conv1.out_channels for b in model.layer3] == [32] * 3
    assert model.layer3[0].conv2.out_channels == 32


def test_global_scope_and_layer_overrides() -> None:
    model = cifar_resnet(20)
    config = PruneConfig(ratio=0.4, scope="uniform", layer_ratios={"layer3.0.conv1": 0.75},
                         ignore=["layer1.0.conv1"])
    prune_model(model, config, EXAMPLE, "cifar_resnet20")
    assert model.layer3[0].conv1.out_channels == 16
    assert model.layer1[0].conv1.out_channels == 16  # ignored
    assert model.layer3[1].conv1.out_channels == 40  # 64 · 0.6 = 38.4 → nearest multiple of 8
    assert model.layer1[0].conv2.out_channels == 8  # the residual stream: 16 · 0.6 → 8
    global_model = cifar_resnet(20)
    prune_model(global_model, PruneConfig(ratio=0.5, scope="global", importance="lamp"),
                EXAMPLE, "cifar_resnet20")
    assert global_model(EXAMPLE).shape == (1, 10)


def test_pruned_model_file_round_trip(pretrained_resnet20: torch.nn.Module,
                                      tmp_path: Path) -> None:
    """A pruned model saved as an edgevision model file reloads (from its registry name and
    the saved shapes, without pickled objects) and gives identical outputs."""
    model = pretrained_resnet20
    result = prune_model(model, PruneConfig(ratio=0.5), EXAMPLE, "cifar_resnet20")
    path = save_model_file(model, tmp_path / "pruned.pt", {"name": result.architecture,
                                                           "num_classes": 10})
    loaded, info = load_model_file(path)
    assert info["name"] == "cifar_resnet20_conv_shortcut"
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module.eval()(images), model.eval()(images))
    assert loaded.module.layer2[1].conv1.out_channels == 16
    assert loaded.name == "cifar_resnet20_conv_shortcut"


@pytest.mark.parametrize(("name", "config", "bounds"), [
    ("resnet18", {"target_macs": 0.6}, (0.5, 0.6)),
    ("mobilenet_v2", {"target_macs": 0.6}, (0.5, 0.6)),
    ("mobilenet_v3_small", {"target_macs": 0.6}, (0.5, 0.6)),
    ("regnet_y_400mf", {"target_macs": 0.6}, (0.5, 0.6)),
    # the larger graphs by channel ratio: one dependency graph instead of a search's dozen
    ("efficientnet_b0", {"ratio": 0.3}, (0.35, 0.8)),
    ("densenet121", {"ratio": 0.3}, (0.35, 0.8)),
])
def test_torchvision_models_prune(name: str, config: dict[str, float],
                                  bounds: tuple[float, float], tmp_path: Path) -> None:
    """Random-weight torchvision models: MACs reduced as requested, still run, export."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=10).eval()
    macs_before, _ = count_macs_params(model, (3, 32, 32))
    prune_model(model, PruneConfig(**config), EXAMPLE, name)
    macs_after, _ = count_macs_params(model, (3, 32, 32))
    low, high = bounds
    assert low * macs_before <= macs_after <= high * macs_before
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    path = export_onnx(model, images, tmp_path / f"{name}.onnx", ExportSpec(exporter="torchscript"),
                       {"name": name})
    assert verify_onnx(path, model, images, 1e-3, 1e-3).max_abs_diff < 1e-3


def test_shufflenet_fails_naming_the_operator() -> None:
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10)
    with pytest.raises(PruneError, match=r"Reshape.*channel shuffle"):
        prune_model(model, PruneConfig(ratio=0.3), EXAMPLE, "shufflenet_v2_x0_5")


def test_selection_shortcut_is_exact(pretrained_resnet20: torch.nn.Module) -> None:
    import copy

    from edgevision.models.cifar_resnet import convert_pad_shortcuts

    converted = copy.deepcopy(pretrained_resnet20)
    assert convert_pad_shortcuts(converted) == 2
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(converted(images), pretrained_resnet20(images))


def test_option_a_padding_is_refused_outside_the_policy() -> None:
    """Without the CIFAR-ResNet rewrite the residual channels reach the zero-padding shortcut;
    pruning them would silently misalign channels, so it is refused, naming the layer."""
    with pytest.raises(PruneError, match=r"'conv1'.*ConstantPadNd"):
        prune_model(cifar_resnet(20), PruneConfig(ratio=0.5), EXAMPLE, architecture=None)


def test_spatial_padding_is_pruned_through() -> None:
    """EfficientNet-Lite pads height and width before its strided convolutions (TensorFlow
    SAME): that padding keeps every channel in place, so channel pruning goes through it and
    the pruned model runs; padding channels (the test above) is still refused."""
    from edgevision.models.efficientnet_lite import efficientnet_lite

    torch.manual_seed(0)
    model = efficientnet_lite("efficientnet_lite0", 10).eval()
    before, _ = count_macs_params(model, (3, 32, 32))
    result = prune_model(model, PruneConfig(ratio=0.25), EXAMPLE, "efficientnet_lite0")
    assert result.macs_after < 0.9 * before
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unreachable_target_names_the_smallest() -> None:
    with pytest.raises(PruneError, match=r"cannot be met: the smallest reachable is 0\.\d+"):
        prune_model(cifar_resnet(20), PruneConfig(target_macs=0.05), EXAMPLE, "cifar_resnet20")


def test_unknown_layer_names_suggest_close_ones() -> None:
    with pytest.raises(PruneError, match=r"no layer 'layer3.0.con1'.*did you mean"):
        prune_model(cifar_resnet(20), PruneConfig(ratio=0.5, ignore=["layer3.0.con1"]),
                    EXAMPLE, "cifar_resnet20")


@pytest.mark.parametrize(("entry", "message"), [
    ({"kind": "prune", "ratio": 1.5}, "between 0 and 1"),
    ({"kind": "prune", "ratio": 0}, "between 0 and 1"),
    ({"kind": "prune"}, "exactly one of prune.ratio"),
    ({"kind": "prune", "ratio": 0.5, "target_macs": 0.5}, "exactly one of prune.ratio"),
    ({"kind": "prune", "ratio": 0.5, "importance": "lamb"},
     "unknown importance criterion 'lamb'; did you mean 'lamp'? (choices: bn_scale, fpgm, "
     "l1, l2, lamp, random, taylor)"),
    ({"kind": "prune", "ratio": 0.5, "stepz": 2}, "unknown key 'stages.0.stepz'"),
])
def test_bad_prune_configs(entry: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse_stages([entry])
    assert message in str(info.value)


def test_latency_target_search() -> None:
    """The latency search with a deterministic stand-in for the timer (milliseconds
    proportional to MACs), so the test checks the search, not this machine's noise."""
    model = cifar_resnet(20)
    full, _ = count_macs_params(model, (3, 32, 32))

    def fake_ms(module: torch.nn.Module) -> float:
        return 10.0 * count_macs_params(module, (3, 32, 32))[0] / full

    result = prune_model(model, PruneConfig(target_latency_ms=6.0), EXAMPLE, "cifar_resnet20",
                         latency_of=fake_ms)
    # no layer-by-layer refinement for noisy latencies: the first ratio under the limit
    assert 3.0 <= fake_ms(model) <= 6.0
    assert result.macs_fraction <= 0.6
    with pytest.raises(PruneError, match=r"target_latency_ms \(0\.50 ms\) cannot be met: the "
                                         r"smallest reachable is \d+\.\d\d ms"):
        prune_model(cifar_resnet(20), PruneConfig(target_latency_ms=0.5), EXAMPLE,
                    "cifar_resnet20", latency_of=fake_ms)


def test_latency_target_through_onnxruntime(tiny_recipe, tmp_path: Path) -> None:
    """A latency target in a recipe is measured on real images through ONNX Runtime; one no
    pruning can reach fails with the fastest latency reachable."""
    from tests.test_cli import assert_one_line_error, invoke

    recipe = tiny_recipe(stages=[{"kind": "prune", "target_latency_ms": 0.001}])
    code, output = invoke("compress", str(recipe), "--out", str(tmp_path / "run"))
    assert_one_line_error(code, output, "prune.target_latency_ms (0.00 ms) cannot be met")
