"""Run a distillation: train the student against a frozen teacher with the training loop."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgevision.data import Dataset
from edgevision.distillation.config import DistillConfig
from edgevision.distillation.objective import DistillationObjective
from edgevision.errors import DistillError, first_line
from edgevision.training.loop import TrainResult, train


def distill(student: nn.Module, teacher: nn.Module, dataset: Dataset, config: DistillConfig,
            checkpoint_dir: Path, example_input: torch.Tensor, seed: int = 0,
            resume: bool = False) -> TrainResult:
    """Distill ``teacher`` into ``student`` (in place) for ``config.train.epochs`` epochs;
    resumable from ``checkpoint_dir/last.pt`` like any training run."""
    check_teacher_fits(student, teacher, example_input)
    objective = DistillationObjective(student, teacher, config, example_input)
    try:
        return train(student, dataset, config.train, checkpoint_dir, seed, resume, objective)
    finally:
        objective.close()
        teacher.to("cpu")


@torch.no_grad()
def check_teacher_fits(student: nn.Module, teacher: nn.Module,
                       example_input: torch.Tensor) -> None:
    """The teacher must run on the student's input and give as many classes."""
    student.eval()
    teacher.eval()
    try:
        teacher_out = teacher(example_input)
    except RuntimeError as exc:
        raise DistillError(f"the teacher cannot run on the student's input "
                           f"{tuple(example_input.shape[1:])}: {first_line(exc)}") from None
    student_out = student(example_input)
    if teacher_out.shape != student_out.shape:
        raise DistillError(f"the teacher outputs {teacher_out.shape[-1]} classes but the student "
                           f"{student_out.shape[-1]}; distillation needs the same classes")
