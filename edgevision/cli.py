"""The ``edgevision`` command line (Typer). It only parses arguments and calls library functions.

Importing this module imports neither torch, onnxruntime nor TensorRT, so ``--help`` is fast and
works on a device with only a runtime installed.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from edgevision.errors import EdgevisionError
from edgevision.progress import console

app = typer.Typer(
    name="edgevision", no_args_is_help=True, add_completion=False,
    help="Compress image-classification CNNs (train, prune, distill, quantize), export ONNX and "
         "benchmark latency against accuracy.")
list_app = typer.Typer(no_args_is_help=True, help="List models, bundled recipes or backends.")
app.add_typer(list_app, name="list")

F = TypeVar("F", bound=Callable[..., Any])

#: modules of the `compress` extra; a device install (core + runtime) has none of them
COMPRESS_STACK = {"torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "torch_pruning"}

RecipeArg = Annotated[str, typer.Argument(
    help="Recipe YAML file, or the name of a bundled recipe (see `edgevision list recipes`).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY.PATH=VALUE",
    help="Override a recipe value; VALUE is YAML (e.g. --set train.epochs=2 "
         "--set benchmark.batch_sizes=[1,32]). Repeatable.")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", "-o", help="Run directory to write (default: runs/<recipe name>).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Start over in a run directory that already holds a run: deletes the files "
                    "edgevision wrote there (refuses, naming them, when it holds others).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted or failed run in --out: after its last completed "
                     "step (training from its last epoch checkpoint); a recipe corrected in a "
                     "later section (quantize stages, engine, benchmark) redoes that step on.")]


def user_errors(func: F) -> F:
    """Print ``EdgevisionError`` as one line (exit 2) and Ctrl-C as one line (exit 130)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgevisionError as exc:
            console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            if exc.name not in COMPRESS_STACK:
                raise
            message = (f"{func.__name__} needs {exc.name}, which is not installed: "
                       "pip install 'edgevision[compress]'")
            console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            hint = " (compress/train: --resume continues the run)" if func.__name__ in (
                "compress", "train") else ""
            console.print(f"[bold red]interrupted[/bold red]: no partial file is left under a "
                          f"final name{hint}", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def compress(recipe: RecipeArg, set_: SetOpt = None, out: OutOpt = None, force: ForceOpt = False,
             resume: ResumeOpt = False) -> None:
    """Run a recipe: load or train the model, run its stages, export ONNX, benchmark, report.

    Writes a run directory with recipe.yaml (fully resolved), model.pt, model.onnx,
    calibration.json, report.json, report.csv and run.json.
    """
    from edgevision.pipeline import compress as run_compress
    from edgevision.recipe import load_recipe

    result = run_compress(load_recipe(recipe, set_), out, force=force, resume=resume)
    console.print(f"run directory: {result.run_dir}", highlight=False)


@app.command()
@user_errors
def quantize(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (holds model.onnx).")],
    recipe: Annotated[str | None, typer.Option(
        "--recipe", "-r", help="Recipe whose quantize stage and data to use (default: the "
                               "run's recipe.yaml).")] = None,
    set_: SetOpt = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace graphs that a report of the run measured (those reports "
                          "are renamed report.stale.json); without it such a run is "
                          "refused.")] = False,
) -> None:
    """Quantize an existing run's model.onnx (INT8 QDQ and/or FP16) with a recipe's quantize
    stage; the new files join the run's artifacts, so `edgevision benchmark RUN_DIR` measures
    them beside the FP32 model. The tensorrt target's INT8 graphs are named apart
    (model.int8.trt.onnx) from the cpu target's (model.int8.onnx)."""
    from edgevision.pipeline import quantize_run
    from edgevision.recipe import load_recipe

    loaded = load_recipe(recipe, set_) if recipe else (
        load_recipe(run_dir / "recipe.yaml", set_) if set_ else None)
    for artifact in quantize_run(run_dir, loaded, replace=replace):
        console.print(f"{artifact['variant']}: {run_dir / artifact['path']}", highlight=False)


@app.command()
@user_errors
def build(
    onnx: Annotated[Path, typer.Argument(help="The ONNX file (model.onnx; for int8, the "
                                               "quantize stage's tensorrt-target graph).")],
    precision: Annotated[str, typer.Option(
        help="fp32 (TF32 off), tf32, fp16 (from an FP16 graph made from ONNX), int8 (the "
             "tensorrt-target Q/DQ graph) or int8+fp16 (that graph, FP16 elsewhere).")] = "fp16",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Engine file (default: "
                                             "<onnx stem>.<precision>.engine beside it).")] = None,
    min_batch: Annotated[int, typer.Option(help="Profile: smallest batch.")] = 1,
    opt_batch: Annotated[int | None, typer.Option(help="Profile: batch to tune for "
                                                       "(default: max).")] = None,
    max_batch: Annotated[int, typer.Option(help="Profile: largest batch.")] = 64,
    workspace_mb: Annotated[int, typer.Option(help="Builder workspace limit, MiB.")] = 1024,
    optimization_level: Annotated[int, typer.Option(help="Builder optimization level 0-5.")] = 3,
    timing_cache: Annotated[Path | None, typer.Option(
        help="Timing cache file to re-use (default: one per TensorRT release and GPU in "
             "edgevision's cache).")] = None,
    hardware_compatibility: Annotated[str, typer.Option(
        help="none (this GPU model), same_compute_capability (TensorRT 10.13+) or "
             "ampere_plus (any Ampere+ GPU).")] = "none",
    version_compatible: Annotated[bool, typer.Option(
        help="Runs on later TensorRT versions too.")] = False,
    dla_core: Annotated[int | None, typer.Option(
        help="Jetson Orin DLA core (fp16; one static batch: --min-batch = --max-batch).")] = None,
    sparsity: Annotated[bool, typer.Option(help="Allow 2:4 sparse kernels.")] = False,
    builder: Annotated[str, typer.Option(help="python (TensorRT API) or trtexec.")] = "python",
    tensorrt_version: Annotated[str | None, typer.Option(
        help="The TensorRT release the engine is for: 10.3 (JetPack 6), 10.13 (JetPack 7.0) "
             "or 11.4 (desktop, JetPack 7.2.2+). Default: the installed one, else 11.4 for "
             "--print-trtexec.")] = None,
    print_trtexec: Annotated[bool, typer.Option(
        "--print-trtexec", help="Do not build: write the graph TensorRT would parse (fp16 "
        "and int8+fp16 make a typed graph beside the engine) and print the trtexec command "
        "that builds it with --tensorrt-version's release (no TensorRT needed).")] = False,
) -> None:
    """Build a TensorRT engine (and its metadata file) from an ONNX file; prints the
    equivalent trtexec command. Engines are strongly typed: fp16 and int8+fp16 first write
    the typed graph TensorRT parses (FP32 kept where the weights would overflow FP16). Needs
    TensorRT and a GPU (or trtexec with --builder trtexec)."""
    from pydantic import ValidationError

    from edgevision.backends.tensorrt.spec import EngineSpec
    from edgevision.engines import (
        build_engine,
        engine_name,
        plan_for,
        prepare_graph,
        target_release,
    )
    from edgevision.errors import EdgevisionError as Error
    from edgevision.validation import format_validation_error

    try:
        spec = EngineSpec(precisions=[precision], min_batch=min_batch, opt_batch=opt_batch,
                          max_batch=max_batch, workspace_mb=workspace_mb,
                          optimization_level=optimization_level, timing_cache=timing_cache,
                          hardware_compatibility=hardware_compatibility,  # type: ignore[arg-type]
                          version_compatible=version_compatible, dla_core=dla_core,
                          sparsity=sparsity, builder=builder,  # type: ignore[arg-type]
                          tensorrt_version=tensorrt_version)
    except ValidationError as exc:
        raise Error(format_validation_error(exc, EngineSpec, "--")) from None
    engine = out or onnx.with_name(onnx.stem + engine_name(precision).removeprefix("model"))
    if print_trtexec:
        from edgevision.backends.tensorrt.plan import trtexec_text

        plan = plan_for(onnx, engine, precision, spec,
                        target=target_release(spec, for_this_machine=False))
        graph = prepare_graph(plan)
        if graph is not None:
            kept = len(graph["fp16"]["kept_fp32"])
            console.print(f"wrote {plan.onnx}, the graph TensorRT parses ({plan.mode}; {kept} "
                          "nodes kept FP32, by weights and operators only: no images to "
                          "measure activations on)", highlight=False)
        sys.stdout.write(trtexec_text(plan) + "\n")
        return
    result = build_engine(onnx, engine, precision, spec)
    console.print(f"engine: {result.engine} (metadata: {result.engine}.json)", highlight=False)


@app.command()
@user_errors
def train(recipe: RecipeArg, set_: SetOpt = None, out: OutOpt = None, force: ForceOpt = False,
          resume: ResumeOpt = False) -> None:
    """Train or fine-tune the recipe's model (its train section) and save model.pt.

    Starts from the recipe's weights or checkpoint (or from scratch); checkpoints each epoch to
    <run>/train/last.pt so --resume continues an interrupted run.
    """
    from edgevision.pipeline import train_only
    from edgevision.recipe import load_recipe

    result = train_only(load_recipe(recipe, set_), out, force=force, resume=resume)
    console.print(f"model: {result.run_dir / 'model.pt'}", highlight=False)


@app.command()
@user_errors
def benchmark(
    target: Annotated[Path, typer.Argument(
        help="A run directory (every artifact in it), an .onnx, edgevision .pt or .engine "
             "file.")],
    backend: Annotated[list[str] | None, typer.Option(
        "--backend", "-b", help="Backend to run (repeatable): pytorch, onnxruntime, "
                                "openvino, tensorrt (`edgevision list backends`). "
                                "Default: the recipe's, else every backend installed here "
                                "that runs the file.")] = None,
    batch: Annotated[list[int] | None, typer.Option(
        "--batch", min=1,
        help="Batch size to time (repeatable). Default: the recipe's, else 1 and 64.")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", help="Evaluation images: an ImageFolder split (<class>/<image>), or a "
                             "dataset folder/archive holding the eval split. Default: the "
                             "recipe's eval split.")] = None,
    recipe: Annotated[Path | None, typer.Option(
        "--recipe", "-r", help="Recipe giving data and preprocessing (default: the run's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Intra-op threads (default: all cores).")
                       ] = None,
    warmup: Annotated[int | None, typer.Option(
        min=0, help="Untimed warm-up runs per batch size.")
                      ] = None,
    iterations: Annotated[int | None, typer.Option(
        min=1, help="Timed runs per batch size.")] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Evaluate accuracy on a seeded subset of this many images.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for report.json/report.csv (default: <run>/benchmark/ for "
                            "a run directory; none for a single file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
    trtexec: Annotated[bool, typer.Option(
        "--trtexec", help="For an .engine file: also time it with trtexec (on PATH) and add its "
                          "performance summary (GPU compute, H2D/D2H) to the report.")] = False,
) -> None:
    """Measure latency (p50/p90/p99, throughput) and accuracy of model artifacts: .onnx (ONNX
    Runtime), edgevision .pt (PyTorch), .engine (TensorRT; needs no PyTorch)."""
    from edgevision.errors import BenchmarkError, ReportWriteError
    from edgevision.pipeline.benchmark import benchmark as run_benchmark

    try:
        report = run_benchmark(target, backends=backend, batch_sizes=batch, data=data,
                               recipe=recipe, threads=threads, warmup=warmup,
                               iterations=iterations, limit=limit, device=device, out=out,
                               trtexec=trtexec)
    except ReportWriteError as exc:  # the figures go to stdout rather than being lost
        sys.stdout.write(json.dumps(exc.report, indent=2) + "\n")
        raise EdgevisionError(f"{exc} (the report was printed to stdout instead)") from None
    except BenchmarkError as exc:  # show what was measured (the rows' errors), then fail
        _show_report(exc.report, as_json)
        raise
    _show_report(report, as_json)


def _show_report(report: dict[str, Any], as_json: bool) -> None:
    """Print a benchmark report: its JSON on stdout, or a table (and trtexec's summaries)."""
    from edgevision.benchmarking import report_table

    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        console.print(report_table(report))
        for batch_size, summary in report.get("trtexec", {}).items():
            times = summary["times"]
            console.print(f"trtexec batch {batch_size}: {summary['throughput_qps']:.1f} qps, "
                          f"GPU compute median {times['gpu_compute']['median']:.3f} ms, H2D "
                          f"{times.get('h2d', {}).get('median', 0):.3f} ms, D2H "
                          f"{times.get('d2h', {}).get('median', 0):.3f} ms", highlight=False)


@app.command()
@user_errors
def bundle(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (compress --out).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write (and "
                                      "<out>.tar.gz beside it).")],
    variant: Annotated[str | None, typer.Option(
        help="The variant to ship (run.json's artifacts, or a search row such as "
             "0.5/int8@openvino). Default: the search's choice, else the run's final "
             "variant.")] = None,
    target: Annotated[str | None, typer.Option(
        help="openvino, onnxruntime or tensorrt. Default: the runtime the variant was chosen "
             "or measured on, else onnxruntime.")] = None,
    tensorrt_version: Annotated[str | None, typer.Option(
        help="tensorrt: the device's release, for build_engine.sh: 10.3, 10.13 or 11.4 "
             "(default: the installed one, else 11.4).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a bundle already in --out (refused when it holds other "
                        "files).")] = False,
) -> None:
    """Bundle a run's model for a device: the model file for the target, model.json
    (input, preprocessing, labels, precision, what was measured), labels.txt, a Python runner
    without torch (run.py), a C++ runner (cpp/) and a README, as a folder and a .tar.gz."""
    from edgevision.bundle import make_bundle

    result = make_bundle(run_dir, out, variant=variant, target=target,
                         tensorrt_version=tensorrt_version, force=force)
    meta = result.metadata
    console.print(f"bundle: {result.folder} (variant {meta.variant}, {meta.precision}, for "
                  f"{meta.target}: {result.reason}); archive: {result.archive}",
                  highlight=False)


@app.command()
@user_errors
def validate(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Validate a recipe (with overrides) and print it fully resolved."""
    from edgevision.recipe import load_recipe, recipe_to_yaml

    sys.stdout.write(recipe_to_yaml(load_recipe(recipe, set_)))


@list_app.command("models")
@user_errors
def list_models(
    contains: Annotated[str | None, typer.Argument(help="Show only names containing this.")
                        ] = None,
) -> None:
    """Models the registry builds: edgevision's CIFAR ResNets and torchvision's classifiers."""
    from edgevision.models.build import list_models as names

    for name, origin in names(contains).items():
        sys.stdout.write(f"{name}\t{origin}\n")


@list_app.command("recipes")
@user_errors
def list_recipes() -> None:
    """Bundled recipes (use the name or the path with `compress`)."""
    from edgevision.recipe.load import recipe_summaries

    for name, path, summary in recipe_summaries():
        sys.stdout.write(f"{name}\t{path}\t{summary}\n")


@list_app.command("backends")
@user_errors
def list_backends() -> None:
    """Backends and whether they can run here (with the reason when not)."""
    from edgevision.backends import BACKENDS

    for name in BACKENDS.names():
        status = BACKENDS.get(name).availability()
        sys.stdout.write(f"{name}\t{'available' if status.ok else 'unavailable: ' + status.reason}"
                         "\n")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
