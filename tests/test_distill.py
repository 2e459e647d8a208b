"""The distill stage, and prune → distill through the whole pipeline, on real CIFAR-10 data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from edgevision.data import Dataset
from edgevision.data.spec import DataSpec
from edgevision.distillation.config import DistillConfig, FeaturePair
from edgevision.distillation.run import distill
from edgevision.errors import DistillError
from edgevision.models.build import build_model, load_model_file
from edgevision.models.cifar_resnet import cifar_resnet
from edgevision.models.spec import ModelSpec
from edgevision.pruning.config import PruneConfig
from edgevision.pruning.prune import prune_model
from edgevision.training.loop import evaluate_top1
from edgevision.training.spec import TrainSpec
from tests.test_cli import invoke

EXAMPLE = torch.zeros(1, 3, 32, 32)


@pytest.fixture(scope="module")
def small_cifar(cifar_archive: Path) -> Dataset:
    """512 real training images (no validation split) and 500 real test images."""
    spec = DataSpec(root=cifar_archive, val_size=0, train_limit=512, eval_limit=500,
                    batch_size=64)
    return Dataset.from_spec(spec, seed=0)


@pytest.fixture
def teacher(resnet20_checkpoint: Path) -> torch.nn.Module:
    spec = ModelSpec(name="cifar_resnet20", num_classes=10, checkpoint=resnet20_checkpoint)
    return build_model(spec).module.eval()


def _quick(epochs: int = 1, steps: int = 8) -> TrainSpec:
    return TrainSpec(epochs=epochs, lr=0.02, max_steps_per_epoch=steps, evaluate_before=False)


def test_distillation_recovers_a_freshly_pruned_model(teacher: torch.nn.Module,
                                                      small_cifar: Dataset,
                                                      tmp_path: Path) -> None:
    """Pruned to 40% of its MACs the pretrained ResNet-20 loses most of its accuracy; a short
    distillation from the unpruned model on 512 real training images wins much of it back
    (measured on 500 held-out test images)."""
    eval_set = small_cifar.eval_set()
    teacher_top1 = evaluate_top1(teacher, eval_set, 100)
    student = copy.deepcopy(teacher)
    prune_model(student, PruneConfig(target_macs=0.4), EXAMPLE, "cifar_resnet20")
    pruned_top1 = evaluate_top1(student, eval_set, 100)
    assert pruned_top1 < teacher_top1 - 20
    config = DistillConfig(train=_quick(epochs=2, steps=8))
    result = distill(student, teacher, small_cifar, config, tmp_path / "distill", EXAMPLE)
    distilled_top1 = evaluate_top1(student, eval_set, 100)
    assert len(result.epochs) == 2
    assert distilled_top1 > pruned_top1 + 15, (pruned_top1, distilled_top1)
    # the teacher was neither trained nor left in training mode
    assert evaluate_top1(teacher, eval_set, 100) == teacher_top1
    assert not teacher.training


def test_feature_distillation_adapts_channels_and_resumes(teacher: torch.nn.Module,
                                                          small_cifar: Dataset,
                                                          tmp_path: Path) -> None:
    student = copy.deepcopy(teacher)
    prune_model(student, PruneConfig(ratio=0.5), EXAMPLE, "cifar_resnet20")
    assert student.layer3[2].conv2.out_channels != 64
    config = DistillConfig(features=[FeaturePair(student="layer3")], train=_quick(1, 3))
    first = distill(student, teacher, small_cifar, config, tmp_path / "d", EXAMPLE)
    assert all(torch.isfinite(torch.tensor(e.train_loss)) for e in first.epochs)
    saved = torch.load(tmp_path / "d" / "last.pt", weights_only=True)
    assert saved["objective"]["adapters.0.weight"].shape == (64, 32, 1, 1)
    again = distill(student, teacher, small_cifar, config, tmp_path / "d", EXAMPLE, resume=True)
    assert again.resumed_from_epoch == 1 and len(again.epochs) == 1
    assert not student._forward_hooks and not teacher.layer3._forward_hooks  # hooks removed


def test_teacher_with_other_classes_is_refused(small_cifar: Dataset, tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="teacher outputs 100 classes but the student 10"):
        distill(cifar_resnet(20, 10), cifar_resnet(20, 100), small_cifar, DistillConfig(),
                tmp_path, EXAMPLE)


def test_unknown_feature_layer_suggests(teacher: torch.nn.Module, small_cifar: Dataset,
                                        tmp_path: Path) -> None:
    config = DistillConfig(features=[FeaturePair(student="layer4")])
    with pytest.raises(DistillError, match=r"the student has no layer 'layer4'; did you mean"):
        distill(copy.deepcopy(teacher), teacher, small_cifar, config, tmp_path, EXAMPLE)


def test_compress_prune_then_distill(tiny_recipe, tmp_path: Path) -> None:
    """The pipeline: the report compares unpruned, pruned and pruned+distilled; the pruned model
    file reloads from its registry name; MACs meet the target."""
    quick = {"epochs": 1, "max_steps_per_epoch": 2}
    recipe = tiny_recipe(stages=[
        {"kind": "prune", "target_macs": 0.5, "steps": 2, "finetune": quick,
         "finetune_loss": "distill"},
        {"kind": "distill", "train": quick}])
    out = tmp_path / "run"
    code, output = invoke("compress", str(recipe), "--out", str(out))
    assert code == 0, output
    report = json.loads((out / "report.json").read_text())
    rows = {(r["variant"], r["backend"]): r for r in report["rows"]}
    variants = ["unpruned", "pruned", "pruned+distilled"]
    assert set(rows) == {(v, b) for v in variants for b in ("pytorch", "onnxruntime")}
    assert all(r["error"] is None for r in rows.values())
    unpruned = rows["unpruned", "onnxruntime"]
    final = rows["pruned+distilled", "onnxruntime"]
    assert final["macs"] <= 0.51 * unpruned["macs"]  # ONNX counts differ slightly from torch's
    assert final["params"] < unpruned["params"]
    manifest = json.loads((out / "run.json").read_text())
    prune_info = manifest["info"]["prune"]
    assert 0.475 <= prune_info["macs_fraction"] <= 0.5
    assert [s["step"] for s in prune_info["steps"]] == [1, 2]
    assert (out / "prune" / "step1" / "last.pt").is_file()  # fine-tuned between the steps
    assert not (out / "prune" / "step2").exists()  # not after the last: distill follows
    assert manifest["info"]["distill"]["teacher"] == "the model before compression"
    model, info = load_model_file(out / "model.pt")
    assert info["variant"] == "pruned+distilled"
    assert model.name == "cifar_resnet20_conv_shortcut"
    assert (out / "unpruned.onnx").is_file() and (out / "pruned.onnx").is_file()
