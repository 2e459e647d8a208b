"""The ``prune`` stage: structured pruning of the pipeline's model, fine-tuning between steps."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from edgevision.progress import log
from edgevision.pruning.config import PruneConfig
from edgevision.stages.registry import register_stage

if TYPE_CHECKING:
    from torch import nn

    from edgevision.data import EvalSet
    from edgevision.stages.state import PipelineState


@register_stage("prune", phase="model")
def run_prune(config: PruneConfig, state: PipelineState) -> None:
    """Prune ``state.model`` in place; record MACs/params and keep the comparison snapshots."""
    import torch

    from edgevision.data.loaders import train_loader
    from edgevision.pruning.policy import prepare_for_pruning
    from edgevision.pruning.prune import prune_model

    model = state.model.module
    example = torch.from_numpy(state.eval_set.first(1))
    if config.granularity == "channel":
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
            _finetune(config, state, f"step{step}")

    latency_of = _LatencyMeter(config, state) if config.target_latency_ms else None
    if config.granularity == "block":
        from edgevision.pruning.blocks import prune_blocks

        calibration = state.dataset.calibration_set()
        if len(calibration) < config.block_samples:
            log(f"note: prune.block_samples is {config.block_samples} but the calibration set "
                f"holds {len(calibration)} images (data.calibration_size); ranking on those")
        images = torch.from_numpy(
            calibration.first(min(config.block_samples, len(calibration))))
        savings_of = _savings_meter(config, state) if config.block_rank == "latency" else None
        result = prune_blocks(model, config, example, images, after_step=after_step,
                              latency_of=latency_of, savings_of=savings_of)
        ranking = {"ranking": "kl_of_removal" if savings_of is None
                   else f"kl_per_ms_saved ({config.latency_backend}, batch "
                        f"{config.latency_batch}, {config.latency_precision})",
                   "ranking_images": len(images)}
    else:
        result = prune_model(model, config, example, state.model.name,
                             labelled_batches=labelled_batches, after_step=after_step,
                             latency_of=latency_of)
        ranking = {"importance": config.importance, "scope": config.scope}
    state.info["prune"] = {"granularity": config.granularity, **ranking, **result.to_dict()}
    state.variant = "pruned+ft" if config.finetune.epochs and config.finetune_after_last \
        else "pruned"


class _LatencyMeter:
    """p50 milliseconds of a model exported as the recipe exports it (and quantized, for
    ``latency_precision: int8``) and run by ``config.latency_backend`` at
    ``config.latency_batch`` on real images. Calling it makes and times a trial file; ``file``
    and ``time`` do the two halves, so an unchanged model's file can be timed again."""

    def __init__(self, config: PruneConfig, state: PipelineState) -> None:
        from edgevision.backends import get_backend

        self.config, self.state = config, state
        self.backend = get_backend(config.latency_backend)
        self.batch = state.eval_set.first(config.latency_batch)
        calibration = state.dataset.calibration_set()
        self.calibration = calibration.part(
            list(range(min(TIMING_CALIBRATION_IMAGES, len(calibration)))), "timing calibration")

    def __call__(self, module: nn.Module) -> float:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgevision-latency-") as folder:
            return self.time(self.file(module, Path(folder)))

    def file(self, module: nn.Module, folder: Path) -> Path:
        """``module`` as the file the backend times, written in ``folder``."""
        from edgevision.export.onnx import export_onnx
        from edgevision.models.checkpoint import save_model_file
        from edgevision.stages.state import model_info

        info = model_info(self.state)
        onnx_path = folder / "trial.onnx"
        if not self.backend.accepts(onnx_path):
            return save_model_file(module, folder / "trial.pt", info)
        path = export_onnx(module, self.batch, onnx_path, self.state.recipe.export, info)
        if self.config.latency_precision == "int8":
            path = _quantized_for_timing(path, self.calibration)
        return path

    def time(self, path: Path) -> float:
        """p50 milliseconds of ``path`` in a fresh session."""
        from edgevision.benchmarking.measure import measure_latency

        bench = self.state.recipe.benchmark
        with self.backend(path, threads=bench.threads, device=bench.device) as session:
            stats = measure_latency(session, self.batch, bench.warmup,
                                    max(bench.iterations, 20))
        log(f"  trial: {stats.p50_ms:.2f} ms p50 at batch {self.config.latency_batch} "
            f"({self.config.latency_precision})")
        return stats.p50_ms


#: calibration images of an INT8 graph that is only timed
TIMING_CALIBRATION_IMAGES = 32


def _quantized_for_timing(fp32: Path, calibration: EvalSet) -> Path:
    """``fp32`` quantized to the cpu target's INT8 Q/DQ (ranges from a few calibration images:
    the graph is timed, not evaluated)."""
    from edgevision.onnxmeta import INPUT_NAME
    from edgevision.quantization.calibration import BatchReader
    from edgevision.quantization.ptq import Int8Options, prepare_model, quantize_int8
    from edgevision.quantization.targets import TARGETS

    prepared = prepare_model(fp32, fp32.with_name("trial.prep.onnx"))
    return quantize_int8(prepared, fp32.with_name("trial.int8.onnx"), Int8Options(TARGETS["cpu"]),
                         reader=BatchReader(calibration, INPUT_NAME, TIMING_CALIBRATION_IMAGES))


def _savings_meter(config: PruneConfig, state: PipelineState
                   ) -> Callable[[nn.Module, list[str]], dict[str, float]]:
    """``savings_of(model, blocks)``: the milliseconds removing each block alone saves — the
    p50 without that block subtracted from the mean of the whole model's p50 timed just before
    and just after it (so a slow drift of the machine cancels), on ``config.latency_backend``
    at ``config.latency_batch``; then the median over the blocks of the same shapes (see
    ``_pooled_by_shape``). Timed once per model, backend, runtime, batch, threads and CPU:
    cached in edgevision's cache (the search's levels and ``--resume`` re-use it)."""
    import json
    import tempfile

    from edgevision.io import write_json_atomic
    from edgevision.models.structure import remove_block

    meter = _LatencyMeter(config, state)

    def savings_of(model: nn.Module, blocks: list[str]) -> dict[str, float]:
        cache = _savings_cache(model, config, state)
        if cache.is_file():
            try:
                saved = json.loads(cache.read_text(encoding="utf-8"))["savings_ms"]
                if set(saved) == set(blocks):
                    log(f"block timings from the cache ({cache})")
                    return {name: float(saved[name]) for name in blocks}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log(f"[yellow]block timings cache {cache} unreadable ({exc}): timing again"
                    "[/yellow]")
        log(f"timing the model without each of its {len(blocks)} removable blocks "
            f"({config.latency_backend}, batch {config.latency_batch}), the whole model "
            "between each two")
        savings: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="edgevision-latency-") as folder:
            whole = meter.file(model, Path(folder))  # made once, timed between every trial
            fulls = [meter.time(whole)]
            for name in blocks:  # each trial between two timings of the whole model
                block = remove_block(model, name)
                try:
                    without = meter(model)
                finally:
                    model.set_submodule(name, block)
                fulls.append(meter.time(whole))
                savings[name] = (fulls[-2] + fulls[-1]) / 2 - without  # drift cancels
        measured = dict(savings)
        savings = _pooled_by_shape(model, savings)
        try:
            write_json_atomic(cache, {"full_ms": fulls, "measured_ms": measured,
                                      "savings_ms": savings})
        except OSError as exc:  # the timings are used all the same
            log(f"[yellow]could not cache the block timings in {cache}: {exc}[/yellow]")
        return savings

    return savings_of


def _pooled_by_shape(model: nn.Module, savings: dict[str, float]) -> dict[str, float]:
    """Each block's saving replaced by the median over the blocks of the same shapes (module
    types and parameter shapes: the same computation, so the same cost): one timing is as noisy
    as a few percent of the whole model, the median of a stage's blocks much less."""
    import statistics

    def shape_of(name: str) -> tuple[object, ...]:
        block = model.get_submodule(name)
        return tuple((type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(False)))
                     for m in block.modules())

    groups: dict[tuple[object, ...], list[str]] = {}
    for name in savings:
        groups.setdefault(shape_of(name), []).append(name)
    return {name: statistics.median(savings[n] for n in group)
            for group in groups.values() for name in group}


def _savings_cache(model: nn.Module, config: PruneConfig, state: PipelineState) -> Path:
    """The cache file of ``model``'s block timings: keyed by its weights, structure and module
    types, the backend and its runtime, batch and input shape, precision, threads and usable
    cores, the CPU/GPU and library versions, and the export settings."""
    import hashlib

    from edgevision.backends import get_backend
    from edgevision.benchmarking.environment import environment, usable_cores
    from edgevision.data.sources import cache_dir
    from edgevision.models.structure import capture_structure

    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(capture_structure(model)).encode())
    bench = state.recipe.benchmark
    digest.update(repr([type(m).__name__ for m in model.modules()]).encode())
    env = environment()
    digest.update(repr(("alternate-pooled-v3", get_backend(config.latency_backend).runtime(),
                        config.latency_batch, state.eval_set.sample_shape(),
                        config.latency_precision, TIMING_CALIBRATION_IMAGES, bench.threads,
                        usable_cores(), bench.device, env["cpu"], env.get("gpu"),
                        env.get("libraries"),
                        state.recipe.export.model_dump(mode="json"))).encode())
    return cache_dir() / "block-latency" / f"{digest.hexdigest()[:24]}.json"


def _finetune(config: PruneConfig, state: PipelineState, name: str) -> None:
    """Fine-tune the pruned model between steps, with cross-entropy or by distillation from
    the model before pruning."""
    import torch

    from edgevision.training.loop import Objective, train

    model = state.model.module
    objective: Objective | None = None
    if config.finetune_loss == "distill":
        from edgevision.distillation.config import DistillConfig
        from edgevision.distillation.objective import DistillationObjective

        assert state.original is not None, "the pipeline keeps the model before its stages"
        teacher = state.original
        example = torch.from_numpy(state.eval_set.first(1))
        objective = DistillationObjective(model, teacher, DistillConfig(), example)
    try:
        train(model, state.dataset, config.finetune, state.run.path / "prune" / name,
              state.recipe.seed, resume=state.resume, objective=objective)
    finally:
        if objective is not None:
            objective.close()
    model.eval()
