"""Quantization-aware training: fine-tune with fake quantization so the INT8 graph ONNX Runtime
builds afterwards loses less.

BatchNorm is folded into the convolutions first (ONNX export folds it too, so the weights
trained here are the weights the quantizer sees). Every Conv/Linear then runs on fake-quantized
inputs (per-tensor, EMA-calibrated ranges: U8 asymmetric for the cpu target, S8 symmetric for
tensorrt) and fake-quantized weights (per-channel symmetric S8, the grid ONNX Runtime's
quantizer uses), with straight-through gradients. The trained model is exported as FP32 ONNX
and quantized like any other, so the result is the same QDQ format.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgevision.data import Dataset, EvalSet
from edgevision.errors import QuantizeError, first_line
from edgevision.quantization.config import QatSpec
from edgevision.quantization.targets import TargetSettings
from edgevision.training.loop import TrainResult, train

#: weight of the newest batch in the activation ranges' moving average while training
EMA_MOMENTUM = 0.01


class FakeQuantLayer(nn.Module):
    """A Conv2d or Linear whose input and weight are fake-quantized."""

    low: torch.Tensor
    high: torch.Tensor
    seen: torch.Tensor

    def __init__(self, layer: nn.Conv2d | nn.Linear, signed: bool) -> None:
        super().__init__()
        self.layer, self.signed = layer, signed
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))
        self.observing = False  # calibration: collect ranges, do not quantize yet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.observing:
            self._observe(x.detach())
        if not self.observing:
            x = self._fake_quant_input(x)
        weight = fake_quant_weight(self.layer.weight)
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, self.layer.bias)
        return F.linear(x, weight, self.layer.bias)

    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.min().clamp(max=0), x.max().clamp(min=0)
        if not self.seen:
            self.low.copy_(low)
            self.high.copy_(high)
            self.seen.fill_(True)
        elif self.observing:  # calibration: the min-max over all batches
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, EMA_MOMENTUM)
            self.high.lerp_(high, EMA_MOMENTUM)

    def _fake_quant_input(self, x: torch.Tensor) -> torch.Tensor:
        low, high = float(self.low), float(self.high)
        if self.signed:
            scale = max(abs(low), abs(high), 1e-8) / 127.0
            return torch.fake_quantize_per_tensor_affine(x, scale, 0, -127, 127)
        scale = max(high - low, 1e-8) / 255.0
        zero_point = int(min(max(round(-low / scale), 0), 255))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric INT8 ([-127, 127], zero point 0) with a straight-through
    gradient."""
    scale = (weight.detach().abs().amax(dim=tuple(range(1, weight.dim()))) / 127.0)
    scale = scale.clamp(min=1e-12)
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every Conv→BatchNorm pair folded (torch.fx)."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(model).eval())
    except Exception as exc:  # symbolic tracing raises many types
        raise QuantizeError(f"QAT needs a torch.fx-traceable model to fold BatchNorm; "
                            f"{type(model).__name__} is not ({first_line(exc)})") from exc


def _quantizable(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d | nn.Linear):
                yield parent, name, child


def insert_fake_quant(model: nn.Module, target: TargetSettings) -> list[FakeQuantLayer]:
    """Wrap every Conv2d/Linear of ``model`` in place; returns the wrappers."""
    wrappers = []
    for parent, name, layer in list(_quantizable(model)):
        wrapper = FakeQuantLayer(layer, target.signed_activations)  # type: ignore[arg-type]
        setattr(parent, name, wrapper)
        wrappers.append(wrapper)
    return wrappers


def remove_fake_quant(model: nn.Module) -> nn.Module:
    """Put the trained layers back in place of their wrappers."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FakeQuantLayer):
                setattr(parent, name, child.layer)
    return model


@torch.no_grad()
def calibrate_ranges(model: nn.Module, wrappers: list[FakeQuantLayer], images: EvalSet,
                     batch_size: int) -> None:
    """Initial activation ranges: min-max over the calibration images."""
    model.eval()
    for wrapper in wrappers:
        wrapper.observing = True
    for batch, _ in images.batches(batch_size):
        model(torch.from_numpy(batch))
    for wrapper in wrappers:
        wrapper.observing = False


def quantization_aware_training(model: nn.Module, dataset: Dataset, spec: QatSpec,
                                target: TargetSettings, calibration: EvalSet,
                                checkpoint_dir: Path, seed: int = 0) -> tuple[nn.Module,
                                                                              TrainResult]:
    """Fine-tune a BN-folded copy of ``model`` with fake quantization (distilling from
    ``model`` when ``spec.distill``); returns the trained FP32 module (no fake quant left)."""
    from edgevision.distillation.config import DistillConfig
    from edgevision.distillation.objective import DistillationObjective

    student = fold_batchnorm(model)
    wrappers = insert_fake_quant(student, target)
    if not wrappers:
        raise QuantizeError("QAT: the model has no Conv2d or Linear layer to quantize")
    calibrate_ranges(student, wrappers, calibration, 64)
    objective = None
    if spec.distill:
        example = torch.from_numpy(calibration.first(1))
        # T=1: the T² factor of higher temperatures would multiply the small QAT learning rate
        config = DistillConfig(train=spec.train, temperature=1.0, alpha=0.9)
        objective = DistillationObjective(student, copy.deepcopy(model).eval(), config, example)
    try:
        result = train(student, dataset, spec.train, checkpoint_dir, seed, objective=objective)
    finally:
        if objective is not None:
            objective.close()
    return remove_fake_quant(student).eval(), result
