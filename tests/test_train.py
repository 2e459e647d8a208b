"""Training on real CIFAR-10 JPEG subsets: the loss goes down, resume continues, schedules."""

from __future__ import annotations

import copy
import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgevision.training.loop as train_module
from edgevision.data import Dataset, EvalSet
from edgevision.data.spec import DataSpec
from edgevision.errors import EdgevisionError
from edgevision.models.build import build_model
from edgevision.models.spec import ModelSpec
from edgevision.training.loop import (
    CHECKPOINT_NAME,
    make_optimizer,
    make_scheduler,
    resolve_device,
    train,
)
from edgevision.training.spec import TrainSpec


def _random_resnet20(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelSpec(name="cifar_resnet20", num_classes=10)).module


def _loss(model: nn.Module, images: np.ndarray, labels: np.ndarray,
          batch_statistics: bool = False) -> float:
    """Cross-entropy in eval mode, or with BatchNorm on the batch's own statistics (on a copy,
    so the model's running statistics stay untouched)."""
    model = copy.deepcopy(model).train() if batch_statistics else model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        return float(nn.functional.cross_entropy(logits, torch.from_numpy(labels)))


@pytest.fixture(scope="module")
def dataset(cifar_archive: Path) -> Dataset:
    return Dataset.from_spec(DataSpec(root=cifar_archive, train_limit=512, val_size=100,
                                      batch_size=64), seed=0)


def _record_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on the per-epoch checkpoint: the epochs found in the file right after each save."""
    saved_epochs: list[int] = []
    save = train_module._save_checkpoint

    def spy(path: Path, epoch: int, *args: object) -> None:
        save(path, epoch, *args)  # type: ignore[arg-type]
        assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
        saved_epochs.append(torch.load(path, map_location="cpu", weights_only=True)["epoch"])

    monkeypatch.setattr(train_module, "_save_checkpoint", spy)
    return saved_epochs


def test_training_lowers_the_loss(dataset: Dataset, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    saved_epochs = _record_checkpoints(monkeypatch)
    model = _random_resnet20()
    # A fixed real batch of training images, without augmentation.
    fixed = EvalSet(dataset.train_source, dataset.splits.train[:256], dataset.preprocess)
    images, labels = next(fixed.batches(256))
    assert images.shape == (256, 3, 32, 32)
    before = _loss(model, images, labels)
    before_batch_stats = _loss(model, images, labels, batch_statistics=True)

    spec = TrainSpec(epochs=3, lr=0.05, max_steps_per_epoch=8, schedule="constant",
                     evaluate_before=False, device="cpu")
    result = train(model, dataset, spec, tmp_path / "ckpt", seed=0)
    after = _loss(model, images, labels)
    after_batch_stats = _loss(model, images, labels, batch_statistics=True)

    assert math.isfinite(before)
    assert math.isfinite(after)
    assert after < before, (before, after)
    # Not only BatchNorm's running statistics moved: the weights learned (measured about
    # 3.5-3.9 → 2.0-2.1 for seeds 0-2).
    assert after_batch_stats < 0.8 * before_batch_stats, (before_batch_stats, after_batch_stats)
    assert result.device == "cpu"
    assert result.resumed_from_epoch == 0
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    for record in result.epochs:
        assert record.lr == pytest.approx(0.05)
        assert math.isfinite(record.train_loss)
        assert 0.0 <= record.train_top1 <= 100.0
        assert record.val_top1 is not None
        assert 0.0 <= record.val_top1 <= 100.0
        assert record.seconds is not None and 0.0 < record.seconds < 600.0
    # The model is handed back on the CPU in eval mode.
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert saved_epochs == [1, 2, 3]
    assert os.listdir(tmp_path / "ckpt") == [CHECKPOINT_NAME]


def _interrupt_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the second epoch of the next ``train`` call raise KeyboardInterrupt (Ctrl-C)."""
    real = train_module._train_epoch
    calls = itertools.count()

    def epoch_or_interrupt(*args: object, **kwargs: object) -> tuple[float, float]:
        if next(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "_train_epoch", epoch_or_interrupt)


def test_resume_after_interrupt_matches_an_uninterrupted_run(
        dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = TrainSpec(epochs=2, lr=0.05, max_steps_per_epoch=2, evaluate_before=False,
                     device="cpu")
    straight = _random_resnet20()
    train(straight, dataset, spec, tmp_path / "straight")

    checkpoint_dir = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        _interrupt_after_first_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            train(_random_resnet20(), dataset, spec, checkpoint_dir)
    saved = torch.load(checkpoint_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1

    resumed_model = _random_resnet20(seed=1)  # its own init is replaced by the checkpoint
    resumed = train(resumed_model, dataset, spec, checkpoint_dir, resume=True)
    assert resumed.resumed_from_epoch == 1
    assert [e.epoch for e in resumed.epochs] == [1, 2]
    expected, got = straight.state_dict(), resumed_model.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, msg=key)

    # resuming a finished run trains nothing more
    again = train(resumed_model, dataset, spec, checkpoint_dir, resume=True)
    assert again.resumed_from_epoch == 2
    torch.testing.assert_close(resumed_model.state_dict()["linear.weight"],
                               expected["linear.weight"])


def test_resume_with_a_different_schedule_is_refused(dataset: Dataset, tmp_path: Path) -> None:
    spec = TrainSpec(epochs=1, max_steps_per_epoch=1, evaluate_before=False, device="cpu",
                     schedule="onecycle")
    train(_random_resnet20(), dataset, spec, tmp_path)
    with pytest.raises(EdgevisionError, match="schedule cannot be continued"):
        train(_random_resnet20(), dataset, spec.model_copy(update={"epochs": 2}), tmp_path,
              resume=True)


def _lrs(schedule: str, epochs: int = 2, steps: int = 10,
         lr: float = 0.1) -> tuple[list[float], float]:
    """The learning rate of each optimizer step of a run, and the one left after the run."""
    model = nn.Linear(4, 2)
    spec = TrainSpec(epochs=epochs, lr=lr, schedule=schedule)
    optimizer = make_optimizer(model, spec)
    scheduler = make_scheduler(optimizer, spec, steps)
    used = []
    for _ in range(epochs * steps):
        # Every parameter group follows the same schedule.
        assert len({g["lr"] for g in optimizer.param_groups}) == 1
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used, optimizer.param_groups[0]["lr"]


def test_cosine_schedule_decays_to_zero() -> None:
    used, final = _lrs("cosine")
    assert len(used) == 20
    assert used[0] == pytest.approx(0.1)
    assert used[10] == pytest.approx(0.05)  # half-way
    assert used[-1] < 0.001
    assert final == pytest.approx(0.0, abs=1e-9)
    assert all(a > b for a, b in itertools.pairwise(used))


def test_onecycle_schedule_peaks_at_lr() -> None:
    used, _ = _lrs("onecycle", epochs=4, steps=25)
    peak = int(np.argmax(used))
    assert max(used) == pytest.approx(0.1, rel=1e-6)
    assert 25 <= peak <= 35  # warm-up over the first ~30 % of the 100 steps
    assert used[0] == pytest.approx(0.1 / 25)
    assert used[-1] < 1e-5
    assert all(a < b for a, b in itertools.pairwise(used[:peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(used[peak:]))


def test_constant_schedule() -> None:
    used, final = _lrs("constant")
    assert set(used) == {0.1}
    assert final == 0.1


def test_optimizer_skips_weight_decay_on_norms_and_biases() -> None:
    model = _random_resnet20()
    for kind in ("sgd", "adamw"):
        optimizer = make_optimizer(model, TrainSpec(optimizer=kind, weight_decay=1e-3))
        decay, no_decay = optimizer.param_groups
        assert decay["weight_decay"] == 1e-3
        assert no_decay["weight_decay"] == 0.0
        assert all(p.ndim > 1 for p in decay["params"])
        assert all(p.ndim <= 1 for p in no_decay["params"])
        assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert isinstance(make_optimizer(model, TrainSpec(optimizer="adamw")), torch.optim.AdamW)


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_resolve_device_cuda_without_gpu() -> None:
    with pytest.raises(EdgevisionError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_bf16_training_runs_the_forward_in_bfloat16_and_lowers_the_loss(
        dataset: Dataset, tmp_path: Path) -> None:
    model = _random_resnet20()
    seen: list[torch.dtype] = []
    model.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    fixed = EvalSet(dataset.train_source, dataset.splits.train[:256], dataset.preprocess)
    images, labels = next(fixed.batches(256))
    before = _loss(model, images, labels, batch_statistics=True)
    spec = TrainSpec(epochs=2, lr=0.05, max_steps_per_epoch=8, schedule="constant",
                     evaluate_before=False, device="cpu", precision="bf16")
    result = train(model, dataset, spec, tmp_path / "ckpt", seed=0)
    during_training = list(seen)
    after = _loss(model, images, labels, batch_statistics=True)
    assert result.precision == "bf16"
    # 2 epochs × 8 steps of training forward passes in bfloat16, each epoch's validation in FP32
    assert during_training.count(torch.bfloat16) == 16
    assert during_training[-1] == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())  # FP32 master weights
    assert after < 0.8 * before, (before, after)


def test_precision_auto_and_fp16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(train_module, "native_bf16", lambda device: True)
    assert train_module.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)
    assert train_module.resolve_precision("auto", cpu) == "fp32"
    assert train_module.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(EdgevisionError, match="fp16 needs a CUDA GPU"):
        train_module.resolve_precision("fp16", cpu)
