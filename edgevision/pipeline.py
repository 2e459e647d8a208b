"""``compress`` and ``train``: recipe → model → train → stages → export → benchmark → report."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.markup import escape

from edgevision.data import Dataset, EvalSet
from edgevision.errors import DataError, EdgevisionError, first_line
from edgevision.io import write_json_atomic, write_text_atomic
from edgevision.progress import console, log
from edgevision.recipe import Recipe, recipe_to_yaml
from edgevision.rundir import RECIPE_FILE, RunDir
from edgevision.stages import get_stage

if TYPE_CHECKING:
    from torch import nn

    from edgevision.models import BuiltModel

MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CALIBRATION_FILE = "calibration.json"


@dataclass
class PipelineState:
    """What flows between steps; stages read and replace ``model`` or add ``artifacts``."""

    recipe: Recipe
    run: RunDir
    dataset: Dataset
    model: BuiltModel
    resume: bool = False
    artifacts: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: the model's variant name in the report: fp32, then e.g. pruned, pruned+distilled
    variant: str = "fp32"
    #: the model before the first model stage (the default distillation teacher); set by the
    #: pipeline whenever the recipe has a model stage
    original: nn.Module | None = None
    #: earlier states of the model exported and benchmarked beside it, by variant name
    snapshots: dict[str, nn.Module] = field(default_factory=dict)

    @cached_property
    def eval_set(self) -> EvalSet:
        """The evaluation split, decoded once per run."""
        return self.dataset.eval_set()

    def variant_with(self, step: str) -> str:
        """The variant name after ``step``: ``step`` itself for the plain FP32 model, else
        appended (pruned+distilled, pruned+distilled+int8)."""
        return step if self.variant == "fp32" else f"{self.variant}+{step}"

    def add_snapshot(self, variant: str, module: nn.Module) -> None:
        """Keep a frozen copy of ``module`` to export and benchmark as ``variant``."""
        import copy

        self.snapshots[variant] = copy.deepcopy(module).eval()

    def add_artifact(self, variant: str, path: Path, backend_hint: str = "") -> None:
        """Record an artifact (relative to the run directory) for benchmarking."""
        entry = {"variant": variant, "path": path.relative_to(self.run.path).as_posix()}
        if backend_hint:
            entry["backend"] = backend_hint
        self.artifacts.append(entry)


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
    from edgevision.training import check_trainable

    # a device or precision this machine cannot train with fails before any work or file
    check_trainable([recipe.train] if until == "train" else recipe.train_specs())
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
            report = _search(state)
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

    from edgevision.models import build_model

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
    from edgevision.training import evaluate_top1, train

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


def model_info(state: PipelineState) -> dict[str, Any]:
    """What travels with every artifact: name, classes, input shape, preprocessing, labels."""
    return {"name": state.model.name, "num_classes": len(state.dataset.classes),
            "input_shape": list(state.eval_set.sample_shape()),
            "preprocess": state.dataset.preprocess.to_dict(), "labels": state.dataset.classes,
            "recipe": state.recipe.name}


def _models_to_export(state: PipelineState) -> list[tuple[str, nn.Module, str]]:
    """(variant, module, file stem): the comparison snapshots first, then the final model."""
    snapshots = [(variant, module, variant) for variant, module in state.snapshots.items()]
    return [*snapshots, (state.variant, state.model.module, Path(MODEL_FILE).stem)]


def save_models(state: PipelineState) -> None:
    """Save the final model and its comparison snapshots as edgevision model files."""
    from edgevision.models import count_macs_params
    from edgevision.models.checkpoint import save_model_file

    info = model_info(state)
    macs, params = count_macs_params(state.model.module, tuple(info["input_shape"]))
    state.info["model"] = {"name": state.model.name, "source": state.model.source,
                           "variant": state.variant, "macs": macs, "params": params}
    for variant, module, stem in _models_to_export(state):
        path = state.run.path / f"{stem}.pt"
        save_model_file(module, path, {**info, "variant": variant})
        state.add_artifact(variant, path)


def export_models(state: PipelineState) -> None:
    """Export the final model and its snapshots to ONNX, each checked against PyTorch."""
    from edgevision.export import export_onnx, verify_onnx

    spec = state.recipe.export
    images = state.eval_set.first(spec.verify_images)
    checks = {}
    for variant, module, stem in _models_to_export(state):
        path = state.run.path / f"{stem}.onnx"
        log(f"exporting {variant} to ONNX (opset {spec.opset}, {spec.exporter} exporter): {path}")
        export_onnx(module, images, path, spec,
                    {**model_info(state), "variant": variant, "precision": "fp32"})
        check = verify_onnx(path, module, images, spec.atol, spec.rtol)
        log(f"ONNX Runtime matches PyTorch on {check.images} real images (max |diff| "
            f"{check.max_abs_diff:.2e}, top-1 agreement {100 * check.top1_agreement:.1f}%)")
        checks[variant] = check.to_dict()
        state.add_artifact(variant, path)
    state.info["export"] = checks


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


def _search(state: PipelineState) -> dict[str, Any]:
    from edgevision.search.run import run_search

    state.run.write_manifest(step="search")
    report = run_search(state, state.recipe.search)
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
