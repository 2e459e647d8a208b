"""Benchmark artifacts on backends: latency at each batch size and accuracy, one session each."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision.backends import Backend, backends_for, get_backend
from edgevision.benchmarking.agreement import (
    REFERENCE_BACKEND,
    Agreement,
    ReferenceComparison,
    reference_label,
)
from edgevision.benchmarking.environment import usable_cores
from edgevision.benchmarking.measure import (
    AccuracyResult,
    LatencyStats,
    measure_accuracy,
    measure_latency,
)
from edgevision.benchmarking.modelstats import ModelStats, artifact_stats
from edgevision.benchmarking.spec import BenchmarkSpec
from edgevision.data import EvalSet
from edgevision.errors import EdgevisionError, first_line
from edgevision.progress import log


@dataclass(frozen=True)
class Artifact:
    """A model file to measure and the variant name it is reported under."""

    variant: str
    path: Path


@dataclass
class BenchmarkRow:
    """One artifact measured on one backend; ``error`` is set instead of figures on failure."""

    variant: str
    artifact: str
    backend: str
    device: str
    precision: str | None = None
    threads: int | None = None
    size_bytes: int | None = None
    macs: int | None = None
    params: int | None = None
    accuracy: AccuracyResult | None = None
    latency: list[LatencyStats] = field(default_factory=list)
    #: outputs vs ONNX Runtime's (CPU) on the same images and ONNX file (other backends' rows)
    agreement: Agreement | None = None
    #: the FP32 ONNX file the artifact is or was made from (itself for an FP32 graph; None
    #: where unknown): what its precision is compared with (``versus_fp32``)
    origin: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "artifact": self.artifact, "backend": self.backend,
            "device": self.device, "precision": self.precision, "threads": self.threads,
            "size_bytes": self.size_bytes, "macs": self.macs, "params": self.params,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "latency": [stats.to_dict() for stats in self.latency],
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "origin": self.origin, "error": self.error,
        }


def benchmark_artifacts(artifacts: list[Artifact], spec: BenchmarkSpec,
                        eval_set: EvalSet | None) -> list[BenchmarkRow]:
    """Measure every artifact on every backend of ``spec`` that runs it.

    A failure (backend unavailable, corrupt file, shape mismatch) becomes a row with ``error``
    set; the other rows are still measured.
    """
    rows: list[BenchmarkRow] = []
    for artifact in artifacts:
        candidates = backends_for(artifact.path, spec.backends)
        if not candidates:
            rows.append(BenchmarkRow(artifact.variant, str(artifact.path), "-", spec.device,
                                     error=f"no backend among {', '.join(spec.backends)} runs "
                                           f"{artifact.path.name}"))
        for backend_cls in candidates:
            rows.append(benchmark_one(artifact, backend_cls, spec, eval_set))
    return rows


def benchmark_one(artifact: Artifact, backend_cls: type[Backend], spec: BenchmarkSpec,
                  eval_set: EvalSet | None) -> BenchmarkRow:
    """Measure one artifact on one backend; errors are recorded in the row."""
    row = BenchmarkRow(artifact.variant, str(artifact.path), backend_cls.name, spec.device)
    try:
        stats: ModelStats = artifact_stats(artifact.path)
        row.size_bytes, row.macs, row.params = stats.size_bytes, stats.macs, stats.params
        threads = spec.threads or usable_cores()
        with backend_cls(artifact.path, threads=threads, device=spec.device) as session:
            info = session.info
            row.precision, row.threads, row.device = info.precision, info.threads, info.device
            row.origin = _origin(session)
            _measure(row, session, spec, eval_set)
    except EdgevisionError as exc:
        row.error = str(exc)
        log(f"[yellow]{artifact.variant} on {backend_cls.name}: {exc}[/yellow]")
    return row


def _origin(session: Backend) -> str | None:
    """The FP32 ONNX file behind the session's artifact (through the ONNX file it is or was
    built from), as a path string; None where unknown."""
    from edgevision.onnxmeta import fp32_origin

    source = session.source_onnx()
    origin = fp32_origin(source) if source is not None else None
    return str(origin) if origin is not None else None


def _measure(row: BenchmarkRow, session: Backend, spec: BenchmarkSpec,
             eval_set: EvalSet | None) -> None:
    if eval_set is None:
        raise EdgevisionError("no evaluation data: give --data or a run directory with a recipe")
    for batch_size in spec.batch_sizes:
        log(f"timing {row.variant} on {row.backend} at batch {batch_size} "
            f"({spec.warmup} warm-up + {spec.iterations} timed runs)")
        row.latency.append(measure_latency(session, eval_set.first(batch_size), spec.warmup,
                                           spec.iterations))
    if spec.accuracy:
        log(f"accuracy of {row.variant} on {row.backend}: {len(eval_set)} {eval_set.name} images")
        with ExitStack() as stack:
            comparison = _reference(row, session, spec, stack)
            row.accuracy = measure_accuracy(session, eval_set, max([*spec.batch_sizes, 32]),
                                            comparison.observe if comparison else None)
            row.agreement = comparison.result() if comparison else None


def _reference(row: BenchmarkRow, session: Backend, spec: BenchmarkSpec,
               stack: ExitStack) -> ReferenceComparison | None:
    """ONNX Runtime (CPU) on the ONNX file the measured artifact is or was built from, open in
    ``stack``, for the rows of other backends; None (logged) where there is none to run."""
    source = session.source_onnx() if row.backend != REFERENCE_BACKEND else None
    if source is None:
        return None
    label = reference_label(source)
    try:
        reference = stack.enter_context(get_backend(REFERENCE_BACKEND)(
            source, threads=spec.threads or usable_cores(), device="cpu"))
    except EdgevisionError as exc:
        log(f"[yellow]no comparison with {label}: {first_line(exc)}[/yellow]")
        return None
    return ReferenceComparison(reference, label)
