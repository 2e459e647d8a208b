"""The tensorrt target's files: the graph TensorRT parses, ``build_engine.sh`` (the trtexec
command for the device's TensorRT release, paths relative to the bundle) and, when the run
built one for that release, the engine with its metadata file."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from edgevision import engines
from edgevision.backends.tensorrt.metadata import metadata_path
from edgevision.backends.tensorrt.metadata import read_metadata as read_engine_metadata
from edgevision.backends.tensorrt.plan import BuildPlan, trtexec_text, typed_graph_path
from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.backends.tensorrt.versions import (
    TensorRTRelease,
    installed_version,
    release,
    supported_release,
)
from edgevision.bundle.source import BundleError, Variant
from edgevision.engines import SOURCE_GRAPHS, engine_name, plan_for, prepare_graph
from edgevision.io import write_text_atomic
from edgevision.onnxmeta import load_onnx, read_metadata
from edgevision.progress import log
from edgevision.rundir import RECIPE_FILE, RunDir

GRAPH_FILE = "model.onnx"
ENGINE_FILE = "model.engine"
SCRIPT_FILE = "build_engine.sh"
#: the engine precision each ONNX variant's own precision builds as (its types are kept)
ENGINE_PRECISIONS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8+fp32": "int8"}
#: the recipe's engine settings a bundle's build command keeps (its profile and hardware)
KEPT_SETTINGS = ("min_batch", "opt_batch", "max_batch", "workspace_mb", "optimization_level",
                 "hardware_compatibility", "version_compatible", "dla_core", "gpu_fallback",
                 "sparsity")


@dataclass(frozen=True)
class TensorRTFiles:
    """What ``write_tensorrt_files`` put in the bundle."""

    source: Path
    precision: str
    release: TensorRTRelease
    command: str
    engine: bool
    min_batch: int
    max_batch: int


def write_tensorrt_files(folder: Path, run: RunDir, variant: Variant,
                         version: str | None) -> TensorRTFiles:
    """Write ``model.onnx`` (the graph TensorRT parses), ``build_engine.sh`` and, when the run
    has it, ``model.engine`` (+ ``.json``) into ``folder``; refuse a variant TensorRT does not
    build (the cpu target's INT8 graph)."""
    if variant.is_engine:
        engine = run.path / variant.path
        meta = read_engine_metadata(engine)
        target = _engine_release(meta.tensorrt_version, version, engine)
        spec = EngineSpec(precisions=[meta.precision],  # type: ignore[list-item]
                          min_batch=meta.input.min_shape[0], opt_batch=meta.input.opt_shape[0],
                          max_batch=meta.input.max_shape[0],
                          hardware_compatibility=meta.hardware_compatibility,  # type: ignore[arg-type]
                          version_compatible=meta.version_compatible, dla_core=meta.dla_core)
        source = run.path / SOURCE_GRAPHS[meta.precision]
        plan = plan_for(source, folder / ENGINE_FILE, meta.precision, spec, target=target)
        _copy_graph(plan, run.path / Path(meta.onnx_file).name, folder)
        _copy_engine(engine, folder)
        return _finish(folder, plan, source, engine=True)
    source = run.path / variant.path
    precision = engine_precision(source, variant)
    target = target_release(version)
    plan = plan_for(source, folder / ENGINE_FILE, precision, engine_spec(run, precision),
                    target=target)
    typed = typed_graph_path(source, run.path / engine_name(precision), plan.transform)
    _copy_graph(plan, typed, folder)
    built = built_engine(run, precision, target, {source.name, typed.name})
    if built is not None:
        _copy_engine(built, folder)
    return _finish(folder, plan, source, engine=built is not None)


def engine_precision(source: Path, variant: Variant) -> str:
    """The engine precision of an ONNX variant: its own (the graph's types and Q/DQ); the
    cpu target's INT8 graph is refused."""
    meta = read_metadata(source)
    target = meta.get("quantization", {}).get("target")
    if target == "cpu":
        raise BundleError(
            f"variant {variant.name!r} ({source.name}) is INT8 for the cpu target, which "
            "TensorRT does not build: quantize with target: tensorrt (its variant "
            f"{variant.name.replace('int8', 'int8-trt')!r}), or bundle it for openvino or "
            "onnxruntime")
    precision = str(meta.get("precision", "fp32"))
    if precision not in ENGINE_PRECISIONS:
        raise BundleError(f"variant {variant.name!r} has precision {precision}, which "
                          f"TensorRT bundles do not take ({', '.join(ENGINE_PRECISIONS)})")
    return ENGINE_PRECISIONS[precision]


def target_release(version: str | None) -> TensorRTRelease:
    """``--tensorrt-version``'s release, else the installed TensorRT's, else 11.4 (no check
    against what is installed: the engine is built on the device)."""
    if version is not None:
        supported_release(version)  # an unknown release: one line, before the spec checks it
    target = engines.target_release(EngineSpec(tensorrt_version=version), for_this_machine=False)
    if version is None and installed_version() is None:
        log(f"[yellow]build_engine.sh is for TensorRT {target.label} (no --tensorrt-version, "
            "no TensorRT here): a Jetson on JetPack 6 needs --tensorrt-version 10.3, JetPack "
            "7.0 10.13[/yellow]")
    return target


def engine_spec(run: RunDir, precision: str) -> EngineSpec:
    """The run recipe's engine settings (profile, hardware), for ``precision``; defaults
    without an ``engine`` section."""
    try:
        recipe = yaml.safe_load((run.path / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        recipe = {}
    section: dict[str, Any] = (recipe.get("engine") or {}) if isinstance(recipe, dict) else {}
    kept = {key: section[key] for key in KEPT_SETTINGS if section.get(key) is not None}
    return EngineSpec(precisions=[precision], **kept)  # type: ignore[list-item]


def built_engine(run: RunDir, precision: str, target: TensorRTRelease,
                 graphs: set[str]) -> Path | None:
    """The engine the run built at ``precision`` from one of ``graphs`` for ``target``'s
    release, or None (one for another release is left out, saying so)."""
    for entry in run.manifest().get("info", {}).get("engines", []):
        engine = entry.get("engine")
        if (not engine or entry.get("precision") != precision
                or Path(str(entry.get("onnx"))).name not in graphs):
            continue
        path = run.path / Path(engine).name
        if not path.is_file() or not metadata_path(path).is_file():
            continue
        built = read_engine_metadata(path).tensorrt_version
        if release(built).major_minor == target.major_minor:
            return path
        log(f"[yellow]{path.name} was built with TensorRT {built}, not {target.label}: left "
            "out (build_engine.sh builds it on the device)[/yellow]")
    return None


def _engine_release(built: str, version: str | None, engine: Path) -> TensorRTRelease:
    found = release(built)
    if version is not None and supported_release(version).major_minor != found.major_minor:
        raise BundleError(f"{engine.name} was built with TensorRT {built}, not {version}: "
                          "bundle the ONNX variant it was built from for another release")
    return found


def _copy_graph(plan: BuildPlan, made: Path, folder: Path) -> None:
    """The graph TensorRT parses as ``folder/model.onnx``: the source as it is, the typed
    graph the run made for its engine, or (neither) one made now from the weights alone."""
    target = folder / GRAPH_FILE
    if plan.transform == "none":
        shutil.copyfile(plan.source, target)
    elif made.is_file():
        shutil.copyfile(made, target)
    else:
        log(f"making the {plan.mode} graph TensorRT parses (FP32 kept by weights and operators "
            "only: no images at hand to measure activations on)")
        prepare_graph(plan)
        plan.onnx.replace(target)


def _copy_engine(engine: Path, folder: Path) -> None:
    shutil.copyfile(engine, folder / ENGINE_FILE)
    shutil.copyfile(metadata_path(engine), metadata_path(folder / ENGINE_FILE))


def _finish(folder: Path, plan: BuildPlan, source: Path, *, engine: bool) -> TensorRTFiles:
    local = replace(plan, onnx=Path(GRAPH_FILE), engine=Path(ENGINE_FILE), timing_cache=None,
                    default_timing_cache=None)
    command = trtexec_text(local)
    script = folder / SCRIPT_FILE
    write_text_atomic(script, build_script(command, plan))
    script.chmod(0o755)
    load_onnx(folder / GRAPH_FILE, load_weights=False)  # what was written is a readable graph
    return TensorRTFiles(source, plan.precision, plan.release, command, engine,
                         plan.profile.min_shape[0], plan.profile.max_shape[0])


def build_script(command: str, plan: BuildPlan) -> str:
    """``build_engine.sh``: trtexec in the bundle's folder (on PATH, or ``$TRTEXEC``)."""
    return "\n".join([
        "#!/bin/sh",
        f"# Builds model.engine from model.onnx: TensorRT {plan.release.label} "
        f"({plan.release.devices}),",
        f"# {plan.precision}, {plan.mode}, batch {plan.profile.min_shape[0]}.."
        f"{plan.profile.max_shape[0]}.",
        "# Run it on the device: an engine runs only on the GPU model and TensorRT release "
        "that built it.",
        "# trtexec: on PATH, or set TRTEXEC=/path/to/trtexec.",
        "set -eu",
        'cd "$(dirname "$0")"',
        'trtexec="${TRTEXEC:-trtexec}"',
        "# the command's options are those of this release's trtexec: refuse another release",
        'found=$("$trtexec" --help 2>&1 | sed -n \'s/.*\\[TensorRT v\\([0-9]\\{4\\}\\).*/\\1/p\' '
        "| head -n 1)",
        f'if [ "$found" != "{_packed(plan.release)}" ]; then',
        f'  echo "build_engine.sh: this is for TensorRT {plan.release.major_minor[0]}.'
        f'{plan.release.major_minor[1]}; $trtexec is TensorRT v${{found:-unknown}}'
        ' (make the bundle again with --tensorrt-version)" >&2',
        "  exit 2",
        "fi",
        f'exec "$trtexec" {shlex.join(shlex.split(command)[1:])}',
        ""])


def _packed(target: TensorRTRelease) -> str:
    """The first four digits of trtexec's banner for ``target``: 10.3 → ``1003``."""
    major, minor = target.major_minor
    return f"{major:02d}{minor:02d}"
