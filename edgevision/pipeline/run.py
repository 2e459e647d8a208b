"""``compress`` and ``train``: recipe → model → train → stages → export → benchmark → report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.markup import escape

from edgevision.data import Dataset
from edgevision.errors import DataError, EdgevisionError, first_line
from edgevision.io import write_json_atomic, write_text_atomic
from edgevision.progress import console, log
from edgevision.recipe import Recipe, recipe_to_yaml
from edgevision.rundir import RECIPE_FILE, RunDir
from edgevision.stages import check_implemented, get_stage
from edgevision.stages.state import (
    CALIBRATION_FILE,
    ONNX_FILE,
    PipelineState,
    export_models,
    save_models,
)

if TYPE_CHECKING:
    from edgevision.models.build import BuiltModel
    from edgevision.recipe.search import SearchSpec


@dataclass
class RunResult:
    """The run directory and, after ``compress``, the report."""

    run_dir: Path
    report: dict[str, Any] | None = None


def compress(recipe: Recipe, out: Path | None = None, *, force: bool = False,
             resume: bool = False) -> RunResult:
    """Run the whole recipe and write a run directory with artifacts and ``report.json``."""
    return _run(recipe, out, force=force, resume=resume, until="benchmark")


def train_only(recipe: Recipe, out: Path | None = None, *, force: bool = False,
               resume: bool = False) -> RunResult:
    """Build the model and run the recipe's training; write ``model.pt`` into the run dir."""
    if recipe.train.epochs == 0:
        raise EdgevisionError("train.epochs is 0: nothing to train (use --set train.epochs=N)")
    return _run(recipe, out, force=force, resume=resume, until="train")


def _run(recipe: Recipe, out: Path | None, *, force: bool, resume: bool,
         until: Literal["train", "benchmark"]) -> RunResult:
    from edgevision.training.loop import check_trainable

    # a device or precision this machine cannot train with fails before any work or file
    check_trainable([recipe.train] if until == "train" else recipe.train_specs())
    check_implemented(recipe.stages)  # so is a stage this version has no handler for
    dataset, built = _load_inputs(recipe)  # bad data or model fails before any file is touched
    run = RunDir.prepare(out or Path("runs") / recipe.name, force=force, resume=resume,
                         recipe_yaml=recipe_to_yaml(recipe))
    run.write_manifest(recipe=recipe.name, status="running", step="start", artifacts=[])
    try:
        state = _start(recipe, run, dataset, built, resume)
        _train(state)
        if until == "train":
            save_models(state)
            run.write_manifest(status="complete", step="train", artifacts=state.artifacts,
                               info=state.info)
            return RunResult(run.path)
        if recipe.search is not None:
            report = _search(state, recipe.search)
            run.write_manifest(status="complete", step="done", artifacts=state.artifacts,
                               info=state.info)
            return RunResult(run.path, report)
        _run_model_stages(state)
        save_models(state)
        export_models(state)
        _run_stages(state, "artifact")
        _build_engines(state)
        run.write_manifest(step="benchmark", artifacts=state.artifacts, info=state.info)
        report = _benchmark(state)
        run.write_manifest(status="complete", step="done")
        return RunResult(run.path, report)
    except KeyboardInterrupt:
        run.write_manifest(status="interrupted")
        raise
    except Exception as exc:
        run.write_manifest(status="failed", error=str(exc) or type(exc).__name__)
        raise


def quantize_run(run_dir: Path, recipe: Recipe | None = None) -> list[dict[str, str]]:
    """Run a recipe's ``quantize`` stage on an existing run's final ``model.onnx`` and add the
    results to the run's artifacts (``edgevision benchmark RUN_DIR`` then measures them).

    ``recipe`` defaults to the run's own ``recipe.yaml``; its data section gives the
    calibration and check images. Returns the artifacts added.
    """
    from edgevision.recipe import load_recipe
    from edgevision.stages.quantize import DERIVED_FILES

    run = RunDir.open(run_dir)
    manifest = run.manifest()
    if manifest.get("status") != "complete":
        raise EdgevisionError(f"{run_dir}: the run is not complete (see run.json); finish it "
                              "first (compress --resume)")
    recipe = recipe or load_recipe(run.path / RECIPE_FILE)
    if not any(get_stage(c.kind).phase == "artifact" for c in recipe.stages):
        raise EdgevisionError(f"recipe {recipe.name!r} has no quantize stage")
    info = dict(manifest.get("info", {}))
    state = PipelineState(recipe, run, Dataset.from_spec(recipe.data, recipe.seed),
                          model=None,  # type: ignore[arg-type]  # artifact stages need no model
                          variant=info.get("model", {}).get("variant", "fp32"), info=info)
    log(f"quantizing {run.path / ONNX_FILE}")
    _run_stages(state, "artifact")

    # the stage removed every graph of an earlier quantization; so does the manifest
    kept = [a for a in manifest.get("artifacts", []) if a["path"] not in DERIVED_FILES]
    run.write_manifest(artifacts=[*kept, *state.artifacts], info=state.info)
    return state.artifacts


def _load_inputs(recipe: Recipe) -> tuple[Dataset, BuiltModel]:
    """Open the data and build the model, checking that they fit each other."""
    import torch

    from edgevision.models.build import build_model

    torch.manual_seed(recipe.seed)
    dataset = Dataset.from_spec(recipe.data, recipe.seed)
    built = build_model(recipe.model)
    for note in built.notes:
        log(f"[yellow]{escape(note)}[/yellow]")
    log(escape(f"model {built.name} ({built.source}); data {recipe.data.root} "
               f"({len(dataset.train_source)} train / {len(dataset.eval_source)} "
               f"{recipe.data.eval_split} images)"))
    if recipe.data.eval_split == recipe.data.train_split:
        log("[yellow]data.eval_split is the training split: accuracy is measured on training "
            "images[/yellow]")
    _check_classes(built, dataset)
    return dataset, built


def _start(recipe: Recipe, run: RunDir, dataset: Dataset, built: BuiltModel,
           resume: bool) -> PipelineState:
    write_text_atomic(run.path / RECIPE_FILE, recipe_to_yaml(recipe))
    write_json_atomic(run.path / CALIBRATION_FILE, dataset.calibration_manifest())
    return PipelineState(recipe, run, dataset, built, resume)


def _check_classes(built: BuiltModel, dataset: Dataset) -> None:
    import torch

    shape = dataset.eval_set().sample_shape()
    built.module.eval()
    try:
        with torch.inference_mode():
            outputs = built.module(torch.zeros(1, *shape)).shape[-1]
    except RuntimeError as exc:
        raise DataError(f"model {built.name} cannot run on the data's input shape "
                        f"{tuple(shape)} (check data.image_size and data.channels): "
                        f"{first_line(exc)}") from None
    if outputs != len(dataset.classes):
        raise DataError(f"model {built.name} outputs {outputs} classes but the data has "
                        f"{len(dataset.classes)} ({', '.join(dataset.classes[:5])}, ...); set "
                        "model.num_classes")


def _train(state: PipelineState) -> None:
    from edgevision.training.loop import evaluate_top1, train

    spec = state.recipe.train
    if spec.epochs == 0:
        return
    model = state.model.module
    eval_set = state.eval_set
    batch = state.recipe.data.batch_size
    record: dict[str, Any] = {}
    if spec.evaluate_before and not state.resume:
        record["eval_top1_before"] = evaluate_top1(model, eval_set, batch)
        log(f"{eval_set.name} top-1 before training: {record['eval_top1_before']:.2f}%")
    result = train(model, state.dataset, spec, state.run.path / "train", state.recipe.seed,
                   resume=state.resume)
    record.update(result.to_dict())
    record["eval_top1_after"] = evaluate_top1(model, eval_set, batch)
    log(f"{eval_set.name} top-1 after training: {record['eval_top1_after']:.2f}%")
    state.info["training"] = record


def _run_model_stages(state: PipelineState) -> None:
    """Run the stages that change the PyTorch model, keeping the original as the teacher."""
    import copy

    if any(get_stage(c.kind).phase == "model" for c in state.recipe.stages):
        state.original = copy.deepcopy(state.model.module).eval()
    _run_stages(state, "model")
    snapshots = {v: m for v, m in state.snapshots.items() if v != state.variant}
    state.snapshots = snapshots


def _run_stages(state: PipelineState, phase: str) -> None:
    for config in state.recipe.stages:
        stage = get_stage(config.kind)
        if stage.phase == phase:
            log(f"stage {config.kind}")
            stage.handler(config, state)


def _build_engines(state: PipelineState) -> None:
    """The recipe's TensorRT engines; where TensorRT is missing each one is recorded as not
    built, with the reason and the equivalent trtexec command, and the run goes on."""
    spec = state.recipe.engine
    if spec is None:
        return
    from edgevision.engines import build_run_engines

    if "tensorrt" not in state.recipe.benchmark.backends:
        log("[yellow]engine: benchmark.backends lacks tensorrt, so the engines are built but "
            "not measured[/yellow]")
    results = build_run_engines(state.run.path, spec, max(state.recipe.benchmark.batch_sizes))
    for result in results:
        if result.engine is not None:
            state.add_artifact(f"{state.variant}-trt-{result.precision}", result.engine)
    state.info["engines"] = [r.to_dict() for r in results]


def _search(state: PipelineState, spec: SearchSpec) -> dict[str, Any]:
    from edgevision.search.run import run_search

    state.run.write_manifest(step="search")
    report = run_search(state, spec)
    state.info["search"] = {"choice": report.choice.model_dump(mode="json")}
    return report.to_json()


def _benchmark(state: PipelineState) -> dict[str, Any]:
    from edgevision.backends import backends_for
    from edgevision.benchmarking import (
        Artifact,
        benchmark_artifacts,
        build_report,
        report_table,
        write_report,
    )

    spec = state.recipe.benchmark
    # a file none of the recipe's backends runs (model.pt without pytorch) is not a failure
    artifacts = [Artifact(a["variant"], state.run.path / a["path"]) for a in state.artifacts
                 if backends_for(state.run.path / a["path"], spec.backends)]
    rows = benchmark_artifacts(artifacts, spec, state.eval_set)
    report = build_report(rows, spec,
                          {"recipe": state.recipe.name, "run": state.info})
    json_path, csv_path = write_report(report, state.run.path)
    console.print(report_table(report))
    log(escape(f"report: {json_path} and {csv_path}"))
    return report
