"""``compress`` and ``train``: recipe → model → train → stages → export → benchmark → report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.markup import escape

from edgevision.data import Dataset
from edgevision.errors import EdgevisionError
from edgevision.io import write_json_atomic, write_text_atomic
from edgevision.pipeline.preflight import Inputs, check_calibration, load_inputs
from edgevision.pipeline.resume import STEPS, Step, resume_step
from edgevision.progress import console, log
from edgevision.recipe import Recipe, recipe_to_yaml
from edgevision.rundir import MANIFEST, RECIPE_FILE, RunDir, is_quantized_file
from edgevision.stages import check_implemented, get_stage
from edgevision.stages.state import (
    CALIBRATION_FILE,
    MODEL_FILE,
    ONNX_FILE,
    PipelineState,
    export_models,
    save_models,
)

if TYPE_CHECKING:
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
    trains = [recipe.train] if until == "train" else recipe.train_specs()
    check_trainable(trains)
    check_implemented(recipe.stages)  # so is a stage this version has no handler for
    path = out or Path("runs") / recipe.name
    RunDir.check_target(path, force=force, resume=resume)  # in use, foreign files, read-only
    resuming = resume and (path / MANIFEST).is_file()  # --resume on a new folder starts it
    first = _resume_point(RunDir.open(path), recipe, until) if resuming else "model"
    # bad data, model, teacher or calibration images fail before any file is touched
    inputs = load_inputs(recipe, training=first == "model" and any(s.epochs for s in trains))
    with RunDir.prepare(path, force=force, resume=resume) as run:
        step = _resume_point(run, recipe, until) if resuming else "model"
        done = [s for s in run.manifest().get("completed", []) if s in STEPS
                and STEPS.index(s) < STEPS.index(step)] if resuming else []
        run.write_manifest(recipe=recipe.name, status="running", step=step, error=None,
                           completed=done, **({} if resuming else {"artifacts": [], "info": {}}))
        state: PipelineState | None = None
        try:
            state = _start(recipe, run, inputs, resuming, step)
            return _steps(state, step, until)
        except KeyboardInterrupt:
            _record_stop(run, state, status="interrupted")
            raise
        except Exception as exc:
            _record_stop(run, state, status="failed", error=str(exc) or type(exc).__name__)
            raise


def _steps(state: PipelineState, first: Step, until: Literal["train", "benchmark"]
           ) -> RunResult:
    """Run the steps from ``first`` on, recording each completed one in the manifest."""
    run, recipe = state.run, state.recipe
    if first == "model":
        _train(state)
        if until == "train":  # a trained model, not the model step of compress
            save_models(state)
            run.write_manifest(completed=[], step="done", status="complete",
                               artifacts=state.artifacts, info=state.info)
            return RunResult(run.path)
        if recipe.search is not None:
            report = _search(state, recipe.search)
            _complete(state, "model", "done", status="complete")
            return RunResult(run.path, report)
        _run_model_stages(state)
        save_models(state)
        export_models(state)
        _complete(state, "model", "artifacts")
    if first in ("model", "artifacts"):
        _run_stages(state, "artifact")
        _complete(state, "artifacts", "engines")
    if first != "benchmark":
        _build_engines(state)
        _complete(state, "engines", "benchmark")
    report = _benchmark(state)
    _complete(state, "benchmark", "done", status="complete")
    return RunResult(run.path, report)


def _resume_point(run: RunDir, recipe: Recipe, until: Literal["train", "benchmark"]) -> Step:
    """The step a resumed run starts at (refusing a recipe whose model part changed); ``train``
    always resumes its training."""
    step = resume_step(run, recipe)
    return "model" if until == "train" else step


def _complete(state: PipelineState, finished: Step, following: str, **fields: str) -> None:
    """Record ``finished`` as completed (``following`` is the step now running), with the
    artifacts and info so far."""
    done = [s for s in STEPS
            if s in state.run.manifest().get("completed", []) or s == finished]
    state.run.write_manifest(completed=done, step=following, artifacts=state.artifacts,
                             info=state.info, **fields)


def _record_stop(run: RunDir, state: PipelineState | None, **fields: str) -> None:
    """A failed or interrupted run keeps what finished: the artifacts that exist."""
    if state is not None:
        kept = [a for a in state.artifacts if (run.path / a["path"]).exists()]
        run.write_manifest(artifacts=kept, info=state.info, **fields)
    else:
        run.write_manifest(**fields)


def quantize_run(run_dir: Path, recipe: Recipe | None = None, *,
                 replace: bool = False) -> list[dict[str, str]]:
    """Run a recipe's ``quantize`` stage on an existing run's final ``model.onnx`` and add the
    results to the run's artifacts (``edgevision benchmark RUN_DIR`` then measures them).

    ``recipe`` defaults to the run's own ``recipe.yaml``; its data section gives the
    calibration and check images. A graph that a report of the run measured is replaced only
    with ``replace`` (those reports are then renamed ``report.stale.json``). Returns the
    artifacts added.
    """
    from edgevision.quantization.config import QuantizeConfig
    from edgevision.recipe import load_recipe
    from edgevision.stages.quantize import written_files

    with RunDir.open(run_dir, lock=True, purpose="quantize") as run:
        manifest = run.manifest()
        if manifest.get("status") != "complete":
            raise EdgevisionError(f"{run_dir}: the run is not complete (see run.json); finish "
                                  "it first (compress --resume)")
        recipe = recipe or load_recipe(run.path / RECIPE_FILE)
        configs = [c for c in recipe.stages if isinstance(c, QuantizeConfig)]
        if not configs:
            raise EdgevisionError(f"recipe {recipe.name!r} has no quantize stage")
        dataset = Dataset.from_spec(recipe.data, recipe.seed)
        check_calibration(recipe, dataset)  # a bad source fails before any file is replaced
        written = sorted({name for config in configs for name in written_files(config)})
        _clear_stale_reports(run, [n for n in written if (run.path / n).exists()], replace)
        info = dict(manifest.get("info", {}))
        state = PipelineState(recipe, run, dataset,
                              model=None,  # type: ignore[arg-type]  # loaded when QAT needs it
                              variant=info.get("model", {}).get("variant", "fp32"), info=info,
                              artifacts=list(manifest.get("artifacts", [])))
        log(f"quantizing {run.path / ONNX_FILE}")
        try:
            _run_stages(state, "artifact")
        finally:  # the manifest lists what exists, whether the stage finished or not
            run.write_manifest(info=state.info, artifacts=[
                a for a in state.artifacts if (run.path / a["path"]).exists()])
        return [a for a in state.artifacts if a["path"] in written]


def _clear_stale_reports(run: RunDir, replaced: list[str], allowed: bool) -> None:
    """Refuse to replace files a report of the run measured, unless ``allowed``: then those
    reports are renamed ``report.stale.json`` (their figures describe files that will no longer
    exist)."""
    from edgevision.benchmarking.report import reports_measuring

    stale = reports_measuring(run.path, replaced)
    if not stale:
        return
    names = ", ".join(str(p.relative_to(run.path)) for p in stale)
    if not allowed:
        raise EdgevisionError(f"{', '.join(replaced)} in {run.path} were measured in {names}; "
                              "quantizing again replaces them: pass --replace (those reports "
                              "are kept aside as report.stale.json) or copy the run directory "
                              "first")
    for report in stale:  # kept aside, figures and all, as the stale report they now are
        for file in (report, report.with_suffix(".csv")):
            if file.exists():
                file.replace(file.with_name(f"{file.stem}.stale{file.suffix}"))
    log(f"[yellow]{names} measured files made again now: kept aside as report.stale.json"
        "[/yellow]")


def _start(recipe: Recipe, run: RunDir, inputs: Inputs, resume: bool, step: Step
           ) -> PipelineState:
    """The state a run starts from: fresh, or (resuming after its model step) the run's own
    model file, artifacts and records, without the later steps' results. A resumed run's
    reports that measured files made again are removed (a new one is written at the end)."""
    write_text_atomic(run.path / RECIPE_FILE, recipe_to_yaml(recipe))
    write_json_atomic(run.path / CALIBRATION_FILE, inputs.dataset.calibration_manifest())
    manifest = run.manifest()
    kept = [a for a in manifest.get("artifacts", []) if _made_before(a, step)]
    if resume:
        _clear_stale_reports(run, [a["path"] for a in manifest.get("artifacts", [])
                                   if a not in kept], allowed=True)
    if step == "model":
        return PipelineState(recipe, run, inputs.dataset, inputs.built, resume)
    from edgevision.models.build import load_model_file

    log(f"resuming {run.path} at its {step} step (the steps before it are complete)")
    info = dict(manifest.get("info", {}))
    state = PipelineState(recipe, run, inputs.dataset, load_model_file(run.path / MODEL_FILE)[0],
                          resume, variant=info.get("model", {}).get("variant", "fp32"),
                          info=info)
    state.artifacts = [a for a in kept if (run.path / a["path"]).exists()]
    return state


def _made_before(artifact: dict[str, str], step: Step) -> bool:
    """Whether ``artifact`` comes from a step before ``step`` (the others are made again)."""
    made_by: Step = ("engines" if artifact["path"].endswith((".engine", ".plan"))
                     else "artifacts" if is_quantized_file(artifact["path"]) else "model")
    return STEPS.index(made_by) < STEPS.index(step)


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
    from edgevision.export.precision import RANGE_IMAGES

    if "tensorrt" not in state.recipe.benchmark.backends:
        log("[yellow]engine: benchmark.backends lacks tensorrt, so the engines are built but "
            "not measured[/yellow]")
    # FP16 graphs keep FP32 where these training images (never the evaluation split) overflow
    calibration = state.dataset.calibration_set()
    samples = calibration.first(min(RANGE_IMAGES, len(calibration)))
    results = build_run_engines(state.run.path, spec, max(state.recipe.benchmark.batch_sizes),
                                samples)
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
        check_measured,
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
    check_measured(report, state.run.path)  # a run whose every row failed has failed
    return report
