"""The engine-build step: TensorRT engines from a run's ONNX graphs (``engine:`` in a recipe)
or from one ONNX file (``edgevision build``), each with its metadata file. TensorRT itself is
used only inside ``edgevision.backends.tensorrt``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevision.backends.tensorrt.plan import BuildPlan, plan_build, trtexec_text
from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.data.sources import cache_dir
from edgevision.errors import BackendUnavailableError, EdgevisionError
from edgevision.progress import log
from edgevision.rundir import quantized_file

#: the ONNX graph each engine precision is built from, in a run directory (INT8: the quantize
#: stage's tensorrt-target graph)
SOURCE_GRAPHS = {"fp32": "model.onnx", "fp16": "model.onnx",
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

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "onnx": str(self.onnx),
                "engine": str(self.engine) if self.engine else None, "trtexec": self.trtexec,
                "error": self.error}


def engine_name(precision: str) -> str:
    return f"model.{precision.replace('+', '-')}.engine"


def plan_for(onnx: Path, engine: Path, precision: str, spec: EngineSpec,
             opt_batch: int | None = None) -> BuildPlan:
    """The build plan for ``onnx``: its input name and sample shape read from the graph."""
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
    if precision.startswith("int8"):
        target = read_metadata(onnx).get("quantization", {}).get("target")
        if target != "tensorrt":
            raise EdgevisionError(
                f"{onnx}: INT8 engines are built from an explicit-quantization graph for "
                f"TensorRT (quantize stage with target: tensorrt); this graph's target is "
                f"{target or 'none (not quantized)'}")
    timing_cache = cache_dir() / "tensorrt" / "timing.cache"
    return plan_build(onnx, engine, precision, spec, graph.input[0].name, sample, opt_batch,
                      timing_cache, output_name=graph.output[0].name)


def build_engine(onnx: Path, engine: Path, precision: str, spec: EngineSpec,
                 opt_batch: int | None = None) -> EngineResult:
    """Build one engine (TensorRT Python API or trtexec) and write its metadata file; where
    TensorRT is unavailable, raise with the reason and the equivalent trtexec command."""
    return build_planned(plan_for(onnx, engine, precision, spec, opt_batch), spec.builder)


def build_planned(plan: BuildPlan, builder: str) -> EngineResult:
    """Build the engine ``plan`` describes (see ``build_engine``)."""
    from edgevision.backends.tensorrt import TensorRTBackend

    command = trtexec_text(plan)
    log(f"TensorRT {plan.precision} engine {plan.engine.name}; trtexec equivalent: {command}")
    if builder == "python":
        available = TensorRTBackend.availability()
        if not available.ok:
            raise BackendUnavailableError(f"{available.reason}. Equivalent build: {command}")
    from edgevision.backends.tensorrt.build import build_with_plan

    build_with_plan(plan, builder)
    return EngineResult(plan.precision, plan.onnx, plan.engine, command)


def build_run_engines(run_path: Path, spec: EngineSpec, opt_batch: int | None
                      ) -> list[EngineResult]:
    """Every precision of ``spec`` from the run's graphs; failures (TensorRT missing, a graph
    not quantized for TensorRT, a parser error) are kept as results with ``error`` and, when
    the build could be planned, its trtexec command."""
    results = []
    for precision in spec.precisions:
        onnx = run_path / SOURCE_GRAPHS[precision]
        plan = None
        try:
            if not onnx.is_file():
                raise EdgevisionError(f"{onnx.name} is not in the run (int8 engines need a "
                                      "quantize stage with target: tensorrt)")
            plan = plan_for(onnx, run_path / engine_name(precision), precision, spec, opt_batch)
            results.append(build_planned(plan, spec.builder))
        except EdgevisionError as exc:
            log(f"[yellow]engine {precision} not built: {exc}[/yellow]")
            command = trtexec_text(plan) if plan else ""
            results.append(EngineResult(precision, onnx, None, command, str(exc)))
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
                                          dla_core=meta.dla_core).to_dict()
            for batch in batch_sizes}
