"""Training / fine-tuning loop: SGD or AdamW, cosine or one-cycle, resumable per epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgevision import devices
from edgevision.data import Dataset, EvalSet
from edgevision.errors import CheckpointError, TrainError, first_line
from edgevision.io import atomic_path
from edgevision.progress import log, progress_bar
from edgevision.training.spec import TrainSpec

CHECKPOINT_NAME = "last.pt"


@dataclass
class EpochRecord:
    """Loss and accuracy of one epoch."""

    epoch: int
    train_loss: float
    train_top1: float
    val_top1: float | None
    lr: float
    seconds: float | None = None  # wall time of the epoch, validation included


@dataclass
class TrainResult:
    """What training did, for the report."""

    epochs: list[EpochRecord] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision,
                "resumed_from_epoch": self.resumed_from_epoch,
                "epochs": [asdict(e) for e in self.epochs]}


def resolve_device(requested: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    return torch.device(devices.resolve_device(requested, torch.cuda.is_available(), "training"))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (CPU: AVX512-BF16 or AMX); elsewhere
    bf16 autocast is emulated and slower than FP32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(requested: str, device: torch.device) -> str:
    """The autocast precision training uses: ``auto`` → bf16 where native, else fp16 on CUDA,
    else fp32; fp16 on a CPU is an error (no loss-scaled CPU path worth having)."""
    if requested == "auto":
        if native_bf16(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    _refuse_fp16_without_cuda(requested, device)
    if requested == "bf16" and not native_bf16(device):
        log(f"note: this {device.type.upper()} has no native bfloat16; bf16 training is "
            "emulated and may be slower than fp32")
    return requested


def check_trainable(specs: Iterable[TrainSpec]) -> None:
    """Refuse, before any work, train sections that train (epochs > 0) and this machine cannot
    run: device ``cuda`` without a GPU, precision ``fp16`` without CUDA."""
    for spec in specs:
        if spec.epochs > 0:
            _refuse_fp16_without_cuda(spec.precision, resolve_device(spec.device))


def _refuse_fp16_without_cuda(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise TrainError("train.precision fp16 needs a CUDA GPU; on a CPU use bf16 (native on "
                         "CPUs with AVX512-BF16 or AMX) or fp32")


class _Autocast:
    """Mixed-precision forward passes and, for fp16, loss scaling."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def forward(self) -> Any:
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32,
                              enabled=self.dtype is not None)

    def state_dict(self) -> dict[str, Any]:
        """The fp16 loss scale and its counters (empty without loss scaling)."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


class Objective(nn.Module):
    """The training loss: ``forward(model, images, labels) -> (loss, logits)``.

    Its own trainable parameters (distillation adapters, say) are optimised with the model's;
    ``trainable_state_dict`` is what a checkpoint keeps of it.
    """

    def forward(self, model: nn.Module, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the objective attached to models (hooks); a no-op by default."""

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}


class CrossEntropyObjective(Objective):
    """Cross-entropy with optional label smoothing: plain supervised training."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, model: nn.Module, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images).float()  # the loss in FP32 under mixed precision
        return self.criterion(logits, labels), logits


def train(model: nn.Module, dataset: Dataset, spec: TrainSpec, checkpoint_dir: Path,
          seed: int = 0, resume: bool = False, objective: Objective | None = None) -> TrainResult:
    """Train ``model`` in place for ``spec.epochs`` epochs on the training split, minimising
    ``objective`` (cross-entropy by default).

    After each epoch the model, optimizer and scheduler are checkpointed atomically to
    ``checkpoint_dir/last.pt``; with ``resume`` an existing checkpoint is continued.
    """
    from edgevision.data.loaders import train_loader

    torch.manual_seed(seed)
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    objective = objective or CrossEntropyObjective(spec.label_smoothing)
    model.to(device)
    objective.to(device)
    loader = train_loader(dataset, seed, device)
    steps = min(len(loader), spec.max_steps_per_epoch or len(loader))
    optimizer = make_optimizer(nn.ModuleList([model, objective]), spec)
    scheduler = make_scheduler(optimizer, spec, steps)
    result = TrainResult(device=str(device), precision=precision)
    trained = _Trained(model, objective, optimizer, scheduler, _Autocast(precision, device))
    plan = {"epochs": spec.epochs, "steps_per_epoch": steps}
    start = _maybe_resume(checkpoint_dir / CHECKPOINT_NAME, resume, plan, trained, result)
    val_set = dataset.val_set() if dataset.splits.val else None
    for epoch in range(start, spec.epochs):
        # re-seeded per epoch, so a resumed run shuffles exactly like an uninterrupted one
        loader.generator.manual_seed(seed + epoch)  # type: ignore[union-attr]
        started = time.perf_counter()
        loss, top1 = _train_epoch(trained, loader, steps, device,
                                  f"epoch {epoch + 1}/{spec.epochs}")
        val = evaluate_top1(model, val_set, dataset.spec.batch_size) if val_set else None
        seconds = time.perf_counter() - started
        record = EpochRecord(epoch + 1, loss, top1, val, optimizer.param_groups[0]["lr"],
                             seconds)
        result.epochs.append(record)
        log(f"epoch {epoch + 1}: loss {loss:.4f}, train top-1 {top1:.2f}%"
            + (f", validation top-1 {val:.2f}%" if val is not None else "")
            + f" ({seconds:.0f} s)")
        _save_checkpoint(checkpoint_dir / CHECKPOINT_NAME, epoch + 1, plan, trained, result)
    model.to("cpu").eval()
    objective.to("cpu")
    return result


@dataclass
class _Trained:
    """What one training run updates, and checkpoints."""

    model: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: _Autocast


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW; no weight decay on norms and biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": spec.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum,
                               nesterov=spec.nesterov and spec.momentum > 0)
    return torch.optim.AdamW(groups, lr=spec.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule over the whole run."""
    total = max(1, spec.epochs * steps_per_epoch)
    if spec.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=total)
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _train_epoch(trained: _Trained, loader: Any, steps: int, device: torch.device,
                 title: str) -> tuple[float, float]:
    model, optimizer, scheduler = trained.model, trained.optimizer, trained.scheduler
    model.train()
    trained.objective.train()
    total_loss, correct, seen = 0.0, 0, 0
    with progress_bar() as bar:
        task = bar.add_task(title, total=steps, status="")
        for step, (images, labels) in enumerate(loader):
            if step >= steps:
                break
            images, labels = images.to(device), labels.to(device)
            with trained.autocast.forward():
                loss, logits = trained.objective(model, images, labels)
            optimizer.zero_grad(set_to_none=True)
            trained.autocast.step(loss, optimizer)
            scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            status = f"loss {total_loss / seen:.4f} top-1 {100 * correct / seen:.2f}%"
            bar.update(task, advance=1, status=status)
            if bar.disable and (step + 1) % max(1, steps // 10) == 0:  # plain log when no TTY
                log(f"{title}: step {step + 1}/{steps}, {status}")
    return total_loss / max(seen, 1), 100.0 * correct / max(seen, 1)


@torch.inference_mode()
def evaluate_top1(model: nn.Module, data: EvalSet, batch_size: int) -> float:
    """Top-1 (%) of ``model`` in eval mode on ``data`` (PyTorch eager, model's device)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for images, labels in data.batches(batch_size):
        logits = model(torch.from_numpy(images).to(device))
        correct += int((logits.argmax(1).cpu().numpy() == labels).sum())
    model.train(was_training)
    return 100.0 * correct / len(data)


def _save_checkpoint(path: Path, epoch: int, plan: dict[str, int], trained: _Trained,
                     result: TrainResult) -> None:
    state = {"epoch": epoch, "plan": plan, "model": trained.model.state_dict(),
             "objective": trained.objective.trainable_state_dict(),
             "optimizer": trained.optimizer.state_dict(),
             "scheduler": trained.scheduler.state_dict(),
             "grad_scaler": trained.autocast.state_dict(),
             "history": result.to_dict(), "rng": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _maybe_resume(path: Path, resume: bool, plan: dict[str, int], trained: _Trained,
                  result: TrainResult) -> int:
    if not resume or not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise CheckpointError(f"{path}: cannot resume from it ({first_line(exc)}); start over "
                              "with --force") from None
    if state.get("plan") != plan:
        raise CheckpointError(
            f"{path} was written for {state.get('plan')} but the recipe now asks for {plan}; "
            "the learning-rate schedule cannot be continued — keep train.epochs (and the data "
            "size) unchanged to resume, or start over with --force")
    try:
        trained.model.load_state_dict(state["model"])
        trained.objective.load_state_dict(state.get("objective", {}), strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the model being trained "
                              f"({first_line(exc)}); start over with --force") from None
    trained.optimizer.load_state_dict(state["optimizer"])
    trained.scheduler.load_state_dict(state["scheduler"])
    trained.autocast.load_state_dict(state.get("grad_scaler") or {})
    torch.set_rng_state(state["rng"])
    result.epochs = [EpochRecord(**e) for e in state["history"]["epochs"]]
    result.resumed_from_epoch = int(state["epoch"])
    log(f"resuming training after epoch {state['epoch']} from {path}")
    return int(state["epoch"])
