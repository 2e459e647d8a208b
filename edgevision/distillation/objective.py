"""The distillation loss: softened-logit KL (Hinton et al.) + cross-entropy + feature MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgevision.distillation.config import DistillConfig
from edgevision.errors import DistillError
from edgevision.training.loop import Objective


class DistillationObjective(Objective):
    """``alpha·T²·KL(teacher_T ‖ student_T) + (1 − alpha)·CE + Σ weight·MSE(adapter(f_s), f_t)``.

    The teacher is frozen and stays in eval mode; it is not a submodule, so neither the
    optimizer nor checkpoints see it. Adapters (1x1 convolutions where channel counts differ)
    are trained with the student.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, config: DistillConfig,
                 example_input: torch.Tensor) -> None:
        super().__init__()
        self.temperature, self.alpha = config.temperature, config.alpha
        self._teacher = (teacher.eval().requires_grad_(False),)  # a tuple: not registered
        self.pairs = [(p.student, p.teacher or p.student, p.weight) for p in config.features]
        self._student_hooks = _FeatureTaps(student, [s for s, _, _ in self.pairs], "student")
        self._teacher_hooks = _FeatureTaps(teacher, [t for _, t, _ in self.pairs], "teacher")
        self.adapters = nn.ModuleDict()
        if self.pairs:
            self._build_adapters(student, teacher, example_input)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]  # moves the teacher too
        self._teacher[0]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, model: nn.Module, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            teacher_logits = self.teacher(images).float()
        logits = model(images).float()  # the losses in FP32 under mixed precision
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                      reduction="batchmean", log_target=True) * t * t
        loss = self.alpha * kl + (1 - self.alpha) * F.cross_entropy(logits, labels)
        for index, (student_name, teacher_name, weight) in enumerate(self.pairs):
            adapted = self.adapters[str(index)](self._student_hooks.outputs[student_name]).float()
            target = self._teacher_hooks.outputs[teacher_name].detach().float()
            loss = loss + weight * F.mse_loss(adapted, target)
        return loss, logits

    @torch.no_grad()
    def _build_adapters(self, student: nn.Module, teacher: nn.Module,
                        example_input: torch.Tensor) -> None:
        was_training = student.training
        student.eval()
        student(example_input)
        teacher(example_input)
        student.train(was_training)
        for index, (student_name, teacher_name, _) in enumerate(self.pairs):
            s = self._student_hooks.outputs[student_name]
            t = self._teacher_hooks.outputs[teacher_name]
            if s.shape[2:] != t.shape[2:] or s.ndim != t.ndim:
                raise DistillError(f"distill.features: student {student_name} gives "
                                   f"{tuple(s.shape[1:])} but teacher {teacher_name} gives "
                                   f"{tuple(t.shape[1:])}; spatial sizes must match")
            same = s.shape[1] == t.shape[1]
            self.adapters[str(index)] = nn.Identity() if same else (
                nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False) if s.ndim == 4
                else nn.Linear(s.shape[1], t.shape[1], bias=False))

    def close(self) -> None:
        """Remove the forward hooks from both models."""
        self._student_hooks.remove()
        self._teacher_hooks.remove()


class _FeatureTaps:
    """Forward hooks keeping the latest output of named layers."""

    def __init__(self, model: nn.Module, names: list[str], role: str) -> None:
        from edgevision.models.build import named_layer

        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = []
        for name in dict.fromkeys(names):
            layer = named_layer(model, name, "distill.features", DistillError, role)
            self.handles.append(layer.register_forward_hook(self._keeper(name)))

    def _keeper(self, name: str):  # type: ignore[no-untyped-def]
        def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return keep

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
