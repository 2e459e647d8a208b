"""The ``distill`` stage: knowledge distillation into the pipeline's (usually pruned) model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgevision.distillation.config import DistillConfig
from edgevision.progress import log
from edgevision.stages.registry import register_stage

if TYPE_CHECKING:
    from torch import nn

    from edgevision.stages.state import PipelineState


@register_stage("distill", phase="model")
def run_distill(config: DistillConfig, state: PipelineState) -> None:
    """Train ``state.model`` against the teacher the config names (default: the model before
    the first compression stage)."""
    import torch

    from edgevision.distillation.run import distill

    teacher, source = _teacher(config, state)
    example = torch.from_numpy(state.eval_set.first(1))
    log(f"distilling from {source} (T={config.temperature}, alpha={config.alpha}, "
        f"{config.train.epochs} epochs)")
    result = distill(state.model.module, teacher, state.dataset, config,
                     state.run.path / "distill", example, state.recipe.seed, state.resume)
    state.info["distill"] = {"teacher": source, "temperature": config.temperature,
                             "alpha": config.alpha, **result.to_dict()}
    state.variant = state.variant_with("distilled")


def _teacher(config: DistillConfig, state: PipelineState) -> tuple[nn.Module, str]:
    if config.teacher is not None:
        from edgevision.models.build import build_model

        built = build_model(config.teacher)
        return built.module, f"teacher {built.name} ({built.source})"
    assert state.original is not None, "the pipeline keeps the model before its model stages"
    return state.original, "the model before compression"
