"""``edgevision benchmark TARGET``: measure one artifact file or every artifact of a run."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgevision.backends import backends_for
from edgevision.benchmarking.report import build_report, check_measured, write_report
from edgevision.benchmarking.runner import Artifact, benchmark_artifacts
from edgevision.data import Dataset, EvalSet, Preprocess
from edgevision.data.sources import FolderSource, find_split_dir, prepare_root
from edgevision.data.splits import subset
from edgevision.errors import (
    ArtifactError,
    BenchmarkError,
    DataError,
    EdgevisionError,
    OutputError,
    ReportWriteError,
    first_line,
)
from edgevision.io import check_writable
from edgevision.recipe import BenchmarkSpec, DataSpec, Recipe, load_recipe
from edgevision.rundir import RECIPE_FILE, RunDir
from edgevision.validation import format_validation_error

#: Where ``benchmark RUN_DIR`` writes its report (compress's own report.json is kept).
BENCHMARK_DIR = "benchmark"


def benchmark(target: Path, *, backends: list[str] | None = None,
              batch_sizes: list[int] | None = None, data: Path | None = None,
              recipe: Path | None = None, threads: int | None = None,
              warmup: int | None = None, iterations: int | None = None,
              limit: int | None = None, device: str | None = None,
              out: Path | None = None, trtexec: bool = False) -> dict[str, Any]:
    """Benchmark ``target`` (a run directory, an ``.onnx`` file or an edgevision ``.pt`` file).

    Settings come from the run's (or ``recipe``'s) benchmark section, overridden by the
    arguments given. Evaluation data: ``data`` (an ImageFolder split, or a dataset root/archive
    holding the eval split), else the recipe's eval split. The report is written to ``out``
    (default: the run directory; nowhere for a single file) and returned. ``trtexec`` (an
    ``.engine`` file only) adds trtexec's own performance summary per batch size.

    The output folder is checked writable before measuring. Failures after measuring raise a
    ``BenchmarkError`` carrying the report (``exc.report``): every row failed, trtexec failed,
    or the report could not be written (``ReportWriteError``).
    """
    if not target.exists():
        raise ArtifactError(f"benchmark target {str(target)!r} not found")
    # a run directory is locked while measured: no run rewrites it meanwhile, and no second
    # benchmark competes for the cores (a run this process cannot write is measured unlocked)
    run = RunDir.open(target, lock=True, purpose="benchmark",
                      read_only_ok=out is not None) if target.is_dir() else None
    with run or nullcontext():
        if trtexec and target.suffix not in (".engine", ".plan"):
            raise ArtifactError(f"--trtexec measures TensorRT engines, not {target.name}")
        base = _recipe_for(run, recipe)
        if not backends and run is None:  # a lone file: every backend that runs it
            from edgevision.backends import BACKENDS

            backends = _usable([name for name in BACKENDS if BACKENDS.get(name).accepts(target)])
        spec = _settings(base.benchmark if base else BenchmarkSpec(), backends=backends,
                         batch_sizes=batch_sizes, threads=threads, warmup=warmup,
                         iterations=iterations, device=device)
        artifacts = ([Artifact(v, p) for v, p in run.artifacts()] if run
                     else [Artifact(target.stem, target)])
        if not artifacts:
            raise ArtifactError(f"{target} lists no artifacts (did the run finish? see run.json)")
        if run is not None:  # measure only what the chosen backends run
            artifacts = [a for a in artifacts if backends_for(a.path, spec.backends)]
            if not artifacts:
                raise ArtifactError(f"none of the artifacts in {target} runs on "
                                    f"{', '.join(spec.backends)}")
        eval_set = _eval_set(artifacts[0].path, base, data, limit)
        folder = out or (run.path / BENCHMARK_DIR if run else None)
        if folder is not None:
            _check_output(folder)
        rows = benchmark_artifacts(artifacts, spec, eval_set)
        report = build_report(rows, spec, {"target": str(target),
                                           "recipe": base.name if base else None})
        _save(report, folder)
        if trtexec:
            _add_trtexec(report, target, spec)
            _save(report, folder)
        check_measured(report, folder)
        return report


def _check_output(folder: Path) -> None:
    """Fail at once, before measuring, when the report could not be written to ``folder``."""
    try:
        check_writable(folder)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {folder}: "
                          f"{exc.strerror or first_line(exc)}") from None


def _save(report: dict[str, Any], folder: Path | None) -> None:
    """Write the report to ``folder`` (if any); a failure keeps the figures in the error."""
    if folder is None:
        return
    try:
        write_report(report, folder)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {folder}: "
                               f"{exc.strerror or first_line(exc)}", report) from None


def _add_trtexec(report: dict[str, Any], target: Path, spec: BenchmarkSpec) -> None:
    """Add trtexec's summaries; its failure keeps the figures measured so far in the error."""
    from edgevision.engines import trtexec_summaries

    try:
        report["trtexec"] = trtexec_summaries(target, spec.batch_sizes, spec.iterations)
    except EdgevisionError as exc:
        raise BenchmarkError(str(exc), report) from None


def _recipe_for(run: RunDir | None, recipe: Path | None) -> Recipe | None:
    if recipe is not None:
        return load_recipe(recipe)
    if run is not None and (run.path / RECIPE_FILE).is_file():
        return load_recipe(run.path / RECIPE_FILE)
    return None


def _settings(base: BenchmarkSpec, **overrides: Any) -> BenchmarkSpec:
    given = {k: v for k, v in overrides.items() if v not in (None, [])}
    try:
        return BenchmarkSpec.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        raise EdgevisionError(format_validation_error(exc, BenchmarkSpec, "benchmark.")) from None


def _eval_set(artifact: Path, recipe: Recipe | None, data: Path | None,
              limit: int | None) -> EvalSet:
    if data is None:
        if recipe is None:
            raise DataError("no evaluation data: give --data DIR (an ImageFolder) or --recipe")
        spec = recipe.data if limit is None else DataSpec.model_validate(
            {**recipe.data.model_dump(), "eval_limit": limit})
        return Dataset.from_spec(spec, recipe.seed).eval_set()
    preprocess = _artifact_preprocess(artifact, recipe)
    labels = _artifact_metadata(artifact).get("labels", [])
    split = recipe.data.eval_split if recipe else "test"
    source = FolderSource.scan(_split_folder(prepare_root(data), split))
    if labels and list(labels) != source.classes:
        raise DataError(f"{data}: class folders {source.classes[:5]}... differ from the model's "
                        f"labels {list(labels)[:5]}...")
    seed = recipe.seed if recipe else 0
    return EvalSet(source, subset(len(source), limit, seed), preprocess, name=split)


def _split_folder(root: Path, split: str) -> Path:
    """``root`` itself when it holds class folders of images, else its ``split`` folder."""
    children = sorted(p for p in root.iterdir() if p.is_dir())
    if children and (children[0] / split).is_dir() is False and any(
            f.is_file() for f in children[0].iterdir()):
        return root
    return find_split_dir(root, split)


def _artifact_preprocess(artifact: Path, recipe: Recipe | None) -> Preprocess:
    if recipe is not None:
        from edgevision.data import preprocess_from_spec

        return preprocess_from_spec(recipe.data)
    meta = _artifact_metadata(artifact)
    if "preprocess" not in meta:
        raise ArtifactError(f"{artifact} carries no edgevision preprocessing metadata; pass "
                            "--recipe to say how images are preprocessed")
    return Preprocess.from_dict(meta["preprocess"])


def _artifact_metadata(artifact: Path) -> dict[str, Any]:
    """edgevision's metadata stored in an artifact (preprocessing, labels, ...)."""
    if artifact.suffix == ".onnx":
        from edgevision.onnxmeta import read_metadata

        return read_metadata(artifact)
    if artifact.suffix in (".engine", ".plan"):
        from edgevision.backends.tensorrt.metadata import read_metadata as engine_metadata

        meta = engine_metadata(artifact)
        return {"preprocess": meta.preprocess, "labels": meta.labels,
                "precision": meta.precision}
    if artifact.suffix == ".pt":
        from edgevision.models.build import load_model_file

        return load_model_file(artifact)[1]
    raise ArtifactError(f"{artifact}: unsupported artifact type {artifact.suffix!r} "
                        "(.onnx, .pt or .engine)")


def _usable(names: list[str]) -> list[str]:
    """Those of ``names`` available here, or all of them when none is (so that the report says
    why): an unnamed backend that is not installed is not worth an error row."""
    from edgevision.backends import BACKENDS

    available = [name for name in names if BACKENDS.get(name).availability().ok]
    return available or names
