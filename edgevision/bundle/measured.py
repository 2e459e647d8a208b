"""``measured`` in model.json: the accuracy and batch-1 latency edgevision measured for the
bundled variant on the target's runtime, from the run's reports, with the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgevision.bundle.schema import Machine, Measured, Target
from edgevision.bundle.source import (
    BACKEND_TARGETS,
    Variant,
    read_json,
    reports,
    search_report,
)
from edgevision.rundir import RunDir


def measured(run: RunDir, variant: Variant, target: Target) -> Measured | None:
    """The newest measurement of ``variant`` on a backend running ``target`` (the search's row
    for a search candidate, else a benchmark report's row), or None."""
    if variant.backend is not None:
        return _from_search(run, variant, target)
    for report in reports(run):
        rows = [r for r in report.get("rows", []) if _is_row_of(r, variant, target)]
        rows.sort(key=lambda r: r.get("backend") != target)  # the same-named backend first
        if rows:
            return _from_benchmark(run, report, rows[0])
    return None


def runtime_version(run: RunDir, target: Target) -> str | None:
    """The target runtime's version in the newest report that lists it."""
    library = {"onnxruntime": "onnxruntime", "openvino": "openvino",
               "tensorrt": "tensorrt"}[target]
    for report in [*reports(run), search_report(run) or {}]:
        version = report.get("environment", {}).get("libraries", {}).get(library)
        if version:
            return str(version)
    return None


def _is_row_of(row: dict[str, Any], variant: Variant, target: Target) -> bool:
    return (row.get("variant") == variant.name and not row.get("error")
            and Path(str(row.get("artifact"))).name == Path(variant.path).name
            and BACKEND_TARGETS.get(str(row.get("backend"))) == target)


def _machine(environment: dict[str, Any]) -> Machine:
    gpu = environment.get("gpu")
    return Machine(cpu=environment.get("cpu"), cores=environment.get("cpu_count"),
                   arch=environment.get("machine"), os=environment.get("os"),
                   gpu=gpu.get("name") if isinstance(gpu, dict) else gpu)


def _from_benchmark(run: RunDir, report: dict[str, Any], row: dict[str, Any]) -> Measured:
    accuracy = row.get("accuracy") or {}
    batch1: dict[str, Any] = next((s for s in row.get("latency") or [] if s.get("batch") == 1), {})
    where = ("report.json" if read_json(run.path / "report.json") == report
             else "benchmark/report.json")
    return Measured(backend=str(row["backend"]), report=where, created=report.get("created"),
                    top1=accuracy.get("top1"), top5=accuracy.get("top5"),
                    images=accuracy.get("images"), split=accuracy.get("split"), batch=1,
                    p50_ms=batch1.get("p50_ms"), p90_ms=batch1.get("p90_ms"),
                    p99_ms=batch1.get("p99_ms"), threads=row.get("threads"),
                    machine=_machine(report.get("environment", {})))


def _from_search(run: RunDir, variant: Variant, target: Target) -> Measured | None:
    """The search's row of this file on the variant's backend, else on another backend that
    runs ``target``."""
    report = search_report(run)
    if report is None:
        return None
    rows = [r for r in report.get("rows", []) if r.get("artifact") == variant.path
            and BACKEND_TARGETS.get(str(r.get("backend"))) == target and not r.get("error")]
    rows.sort(key=lambda r: r.get("backend") != variant.backend)
    if not rows:
        return None
    row = rows[0]
    settings = report.get("settings", {})
    return Measured(backend=str(row["backend"]), report="report.json",
                    created=report.get("created"), top1=row.get("top1"), top5=row.get("top5"),
                    images=settings.get("eval_images"), split=settings.get("eval_split"),
                    batch=1, p50_ms=row.get("b1_p50_ms"), p90_ms=None,
                    p99_ms=row.get("b1_p99_ms"), threads=settings.get("threads"),
                    machine=_machine(report.get("environment", {})))
