"""The engine-build step: TensorRT engines from a run's ONNX graphs (``engine:`` in a recipe)
or from one ONNX file (``edgevision build``), each with its metadata file. TensorRT itself is
used only inside ``edgevision.backends.tensorrt``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.backends.tensorrt.plan import (
    BuildPlan,
    EnginePlanError,
    plan_build,
    trtexec_text,
)
from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.backends.tensorrt.versions import (
    DEFAULT_TARGET,
    TensorRTRelease,
    release,
    supported_release,
)
from edgevision.data.sources import cache_dir
from edgevision.errors import BackendUnavailableError, EdgevisionError
from edgevision.progress import log
from edgevision.rundir import quantized_file

#: the ONNX graph each engine precision is built from, in a run directory (INT8: the quantize
#: stage's tensorrt-target graph; fp16 and int8+fp16 engines parse a typed graph made from it)
SOURCE_GRAPHS = {"fp32": "model.onnx", "tf32": "model.onnx", "fp16": "model.onnx",
                 "int8": quantized_file("int8", "tensorrt"),
                 "int8+fp16": quantized_file("int8", "tensorrt")}


@dataclass
class EngineResult:
    """An engine built (``engine`` set) or not (``error``), with its trtexec equivalent."""

    precision: str
    onnx: Path
    engine: Path | None
    trtexec: str
    error: str | None = None
    tensorrt: str | None = None
    mode: str | None = None
    graph: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "onnx": str(self.onnx),
                "engine": str(self.engine) if self.engine else None, "trtexec": self.trtexec,
                "tensorrt": self.tensorrt, "mode": self.mode, "graph": self.graph,
                "error": self.error}


def engine_name(precision: str) -> str:
    return f"model.{precision.replace('+', '-')}.engine"


def target_release(spec: EngineSpec, requested: str | None = None,
                   builder: str | None = None, *, for_this_machine: bool = True
                   ) -> TensorRTRelease:
    """The TensorRT release a build targets: ``requested`` (``--tensorrt-version``), else the
    recipe's ``engine.tensorrt_version``, else the one installed here (the TensorRT module, or
    trtexec's for the trtexec builder), else 11.4. ``for_this_machine``: the engine is built
    here, so a stated release that differs from the installed one is refused (an engine runs
    only on the release that built it); a printed command is for the device, unchecked."""
    wanted = requested or spec.tensorrt_version
    installed = installed_release(builder or spec.builder)
    if wanted is None:
        return release(installed or DEFAULT_TARGET)
    target = supported_release(wanted)
    if for_this_machine and installed is not None and \
            release(installed).major_minor != target.major_minor:
        raise EnginePlanError(
            f"the engines are for TensorRT {target.label} but this machine has TensorRT "
            f"{installed}: build them on the device with that release (engine.tensorrt_version "
            "names the device's), or drop the setting to build for this one")
    return target


def installed_release(builder: str) -> str | None:
    """The installed TensorRT's version (the Python module's, or trtexec's), or None."""
    if builder == "trtexec":
        from edgevision.backends.tensorrt.trtexec import trtexec_version

        return trtexec_version()
    from edgevision.backends.tensorrt.versions import installed_version

    return installed_version()


def plan_for(onnx: Path, engine: Path, precision: str, spec: EngineSpec,
             opt_batch: int | None = None, target: TensorRTRelease | None = None) -> BuildPlan:
    """The build plan for ``onnx``: its input name and sample shape read from the graph."""
    from onnx import TensorProto

    from edgevision.onnxmeta import load_onnx, read_metadata

    graph = load_onnx(onnx, load_weights=False).graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise EdgevisionError(f"{onnx}: an engine is built from a graph with one input and one "
                              f"output (this one has {len(graph.input)} and {len(graph.output)})")
    dims = graph.input[0].type.tensor_type.shape.dim
    if dims and dims[0].dim_value > 0:
        raise EdgevisionError(f"{onnx}: its batch dimension is fixed at {dims[0].dim_value}; "
                              "export with export.dynamic_batch: true for an engine profile")
    sample = tuple(d.dim_value for d in dims[1:])
    if not sample or any(d <= 0 for d in sample):
        raise EdgevisionError(f"{onnx}: the input's non-batch dimensions must be fixed, got "
                              f"{sample}")
    in_fp16 = any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer)
    _check_source_graph(onnx, precision, read_metadata(onnx).get("quantization", {}), in_fp16)
    target = target or target_release(spec)
    timing_cache = cache_dir() / "tensorrt" / f"timing-trt{target.label}.cache"
    return plan_build(onnx, engine, precision, spec, graph.input[0].name, sample, target,
                      opt_batch, timing_cache, output_name=graph.output[0].name,
                      source_typed=in_fp16)


def _check_source_graph(onnx: Path, precision: str, quantization: dict[str, Any],
                        in_fp16: bool) -> None:
    """INT8 engines come from the tensorrt-target Q/DQ graph, the others from an unquantized
    one; a graph already in FP16 (ours, or ModelOpt AutoCast's) builds fp16 or int8+fp16 as it
    is, nothing else."""
    target = quantization.get("target")
    if precision.startswith("int8") and target != "tensorrt":
        raise EdgevisionError(
            f"{onnx}: INT8 engines are built from an explicit-quantization graph for "
            f"TensorRT (quantize stage with target: tensorrt); this graph's target is "
            f"{target or 'none (not quantized)'}")
    if not precision.startswith("int8") and target is not None:
        raise EdgevisionError(
            f"{onnx}: the {precision} engine is built from the FP32 graph (model.onnx), not from "
            f"a graph quantized for {target}; for INT8 use --precision int8 with the "
            "tensorrt-target graph")
    if in_fp16 and precision in ("fp32", "tf32", "int8"):
        wanted = "int8+fp16" if precision == "int8" else "fp16"
        raise EdgevisionError(
            f"{onnx}: this graph already computes in FP16, so its engine is {wanted} (strongly "
            f"typed: the graph's types are the precision); for {precision} build from the FP32 "
            "graph")


def prepare_graph(plan: BuildPlan, samples: np.ndarray | None = None) -> dict[str, Any] | None:
    """Write the typed graph ``plan`` parses (an FP16 graph, or the Q/DQ graph with FP16
    compute), FP32 kept where ``samples`` (or, without them, the weights) show FP16 would
    overflow; returns what was converted (None when the source is parsed as it is)."""
    from edgevision.export.precision import convert_to_fp16, qdq_to_fp16

    if plan.transform == "none":
        return None
    convert = convert_to_fp16 if plan.transform == "fp16" else qdq_to_fp16
    return convert(plan.source, plan.onnx, samples).to_metadata()


def build_engine(onnx: Path, engine: Path, precision: str, spec: EngineSpec,
                 opt_batch: int | None = None, samples: np.ndarray | None = None,
                 target: TensorRTRelease | None = None) -> EngineResult:
    """Build one engine (TensorRT Python API or trtexec) and write its metadata file; where
    TensorRT is unavailable, raise with the reason and the equivalent trtexec command (the
    typed graph it parses is written first, for the device)."""
    plan = plan_for(onnx, engine, precision, spec, opt_batch, target)
    return build_planned(plan, spec.builder, prepare_graph(plan, samples))


def build_planned(plan: BuildPlan, builder: str, graph: dict[str, Any] | None = None
                  ) -> EngineResult:
    """Build the engine ``plan`` describes from its prepared graph (see ``build_engine``)."""
    from edgevision.backends.tensorrt import TensorRTBackend

    command = trtexec_text(plan)
    log(f"TensorRT {plan.release.label} {plan.precision} engine {plan.engine.name}, "
        f"{plan.mode}; trtexec equivalent: {command}")
    if builder == "python":
        available = TensorRTBackend.availability()
        if not available.ok:
            raise BackendUnavailableError(f"{available.reason}. Equivalent build: {command}")
    from edgevision.backends.tensorrt.build import build_with_plan

    build_with_plan(plan, builder)
    return EngineResult(plan.precision, plan.onnx, plan.engine, command,
                        tensorrt=plan.release.label, mode=plan.mode, graph=graph)


def build_run_engines(run_path: Path, spec: EngineSpec, opt_batch: int | None,
                      samples: np.ndarray | None = None) -> list[EngineResult]:
    """Every precision of ``spec`` from the run's graphs; failures (TensorRT missing, a graph
    not quantized for TensorRT, a parser error, a TensorRT exception) are kept as results with
    ``error`` and, when the build could be planned, its trtexec command. Where TensorRT is
    missing the typed graphs are still written, so the printed commands can run on the
    device."""
    results = []
    for precision in spec.precisions:
        onnx = run_path / SOURCE_GRAPHS[precision]
        plan, graph = None, None
        try:
            if not onnx.is_file():
                raise EdgevisionError(f"{onnx.name} is not in the run (int8 engines need a "
                                      "quantize stage with target: tensorrt)")
            plan = plan_for(onnx, run_path / engine_name(precision), precision, spec, opt_batch)
            graph = prepare_graph(plan, samples)
            results.append(build_planned(plan, spec.builder, graph))
        except EdgevisionError as exc:
            log(f"[yellow]engine {precision} not built: {exc}[/yellow]")
            results.append(EngineResult(
                precision, plan.onnx if plan else onnx, None,
                trtexec_text(plan) if plan else "", str(exc),
                tensorrt=plan.release.label if plan else None,
                mode=plan.mode if plan else None, graph=graph))
    return results


def trtexec_summaries(engine: Path, batch_sizes: list[int], iterations: int
                      ) -> dict[str, Any]:
    """trtexec's own measurement of ``engine`` at each batch size (trtexec on PATH)."""
    from edgevision.backends.tensorrt.metadata import read_metadata
    from edgevision.backends.tensorrt.trtexec import trtexec_benchmark

    if engine.suffix not in (".engine", ".plan"):
        raise EdgevisionError(f"--trtexec measures TensorRT engines, not {engine.name}")
    meta = read_metadata(engine)
    return {str(batch): trtexec_benchmark(engine, meta.input.name,
                                          (batch, *meta.input.max_shape[1:]), iterations,
                                          dla_core=meta.dla_core,
                                          version_compatible=meta.version_compatible).to_dict()
            for batch in batch_sizes}
