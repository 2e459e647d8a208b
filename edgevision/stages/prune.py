"""The ``prune`` stage: structured pruning of the pipeline's model, fine-tuning between steps."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from edgevision.pruning.config import PruneConfig
from edgevision.stages import register_stage

if TYPE_CHECKING:
    from edgevision.pipeline import PipelineState


@register_stage("prune", PruneConfig, phase="model")
def run_prune(config: PruneConfig, state: PipelineState) -> None:
    """Prune ``state.model`` in place; record MACs/params and keep the comparison snapshots."""
    import torch

    from edgevision.data.loaders import train_loader
    from edgevision.pruning.policy import prepare_for_pruning
    from edgevision.pruning.prune import prune_model
    from edgevision.training import train

    model = state.model.module
    example = torch.from_numpy(state.eval_set.first(1))
    # exact rewrites first, so the unpruned snapshot is the same function with the pruned
    # model's architecture (the default teacher, state.original, is left as it was)
    state.model.name = prepare_for_pruning(model, state.model.name) or state.model.name
    if config.compare:
        state.add_snapshot("unpruned", model)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def labelled_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not batches:
            batches.extend(islice(train_loader(state.dataset, state.recipe.seed),
                                  config.taylor_batches))
        return batches

    def after_step(step: int) -> None:
        last = step == config.steps
        if last and config.compare:
            state.add_snapshot("pruned", model)
        if config.finetune.epochs and (not last or config.finetune_after_last):
            train(model, state.dataset, config.finetune, state.run.path / "prune" / f"step{step}",
                  state.recipe.seed, resume=state.resume)
            model.eval()

    result = prune_model(model, config, example, state.model.name,
                         labelled_batches=labelled_batches, after_step=after_step)
    state.info["prune"] = {"importance": config.importance, "scope": config.scope,
                           **result.to_dict()}
    state.variant = "pruned+ft" if config.finetune.epochs and config.finetune_after_last \
        else "pruned"
