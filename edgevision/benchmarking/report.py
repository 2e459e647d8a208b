"""The benchmark report: versioned JSON, CSV for scripts, a rich table for people."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from edgevision.benchmarking.environment import environment
from edgevision.benchmarking.runner import BenchmarkRow
from edgevision.benchmarking.spec import BenchmarkSpec
from edgevision.benchmarking.versus_fp32 import (
    VERSUS_FP32,
    compare_with_fp32,
    slower_lines,
    versus_fp32,
)
from edgevision.errors import BenchmarkError
from edgevision.io import write_json_atomic, write_text_atomic

#: /2 adds each row's ``agreement`` (outputs vs ONNX Runtime's); /3 adds each row's ``origin``
#: (the FP32 ONNX file it is or was made from) and ``versus_fp32`` (every non-FP32 row's p50
#: against its FP32 model's on the same backend, per batch size; ``slower`` where above). A /1
#: report reads as one with no agreement measured; /1 and /2 ones have their comparisons worked
#: out from the rows (by MACs: they record no origin)
REPORT_SCHEMA = "edgevision.report/3"
REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"
CSV_COLUMNS = ("variant", "backend", "device", "precision", "threads", "batch", "top1", "top5",
               "eval_images", "top1_agreement", "max_abs_diff", "p50_ms", "p90_ms", "p99_ms",
               "mean_ms", "throughput_ips", "fp32_p50_ms", "slower_than_fp32", "warmup",
               "iterations", "size_bytes", "macs", "params", "artifact", "error")


def build_report(rows: list[BenchmarkRow], spec: BenchmarkSpec,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as a JSON-able dict (schema ``edgevision.report/3``)."""
    measured = [row.to_dict() for row in rows]
    return {
        "schema": REPORT_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "settings": spec.model_dump(mode="json"),
        "rows": measured,
        VERSUS_FP32: compare_with_fp32(measured),
        **(extra or {}),
    }


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.csv`` into ``folder`` (atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = write_json_atomic(folder / REPORT_JSON, report)
    csv_path = write_text_atomic(folder / REPORT_CSV, report_csv(report))
    return json_path, csv_path


def reports_measuring(run_path: Path, names: list[str]) -> list[Path]:
    """The reports of a run (its ``report.json`` and ``benchmark/report.json``) with a row
    measuring one of ``names``, files at the top of the run directory."""
    found = []
    for report in (run_path / REPORT_JSON, run_path / "benchmark" / REPORT_JSON):
        try:
            rows = json.loads(report.read_text(encoding="utf-8")).get("rows", [])
        except (OSError, ValueError, AttributeError):
            continue
        measured = {Path(str(row.get("artifact"))) for row in rows if isinstance(row, dict)}
        if any(path.name in names and _in_run(path, run_path) for path in measured):
            found.append(report)
    return found


def _in_run(artifact: Path, run_path: Path) -> bool:
    """Whether a report's artifact path names a file at the top of ``run_path``: relative to it
    (``benchmark .``), through its folder, or in a run since moved (same folder name)."""
    folder = artifact.parent
    return (folder == Path(".") or folder.resolve() == run_path.resolve()
            or folder.name == run_path.resolve().name)


def check_measured(report: dict[str, Any], folder: Path | None) -> None:
    """Raise ``BenchmarkError`` (carrying the report) when every row failed."""
    rows = report["rows"]
    if any(row["error"] is None for row in rows):
        return
    why = ""
    if rows:
        first = f"{rows[0]['variant']} on {rows[0]['backend']}: {rows[0]['error']}"
        why = f" ({'first: ' if len(rows) > 1 else ''}{first.splitlines()[0]})"
    saved = f"; report: {folder / REPORT_JSON}" if folder is not None else ""
    raise BenchmarkError(f"nothing could be measured: every row failed{why}{saved}", report)


def report_csv(report: dict[str, Any]) -> str:
    """One CSV line per row and batch size (one line with the error for failed rows); a
    non-FP32 row's line has its FP32 model's p50 and whether it is slower (blank: not
    compared)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    versus = {(e["variant"], e["backend"], e["artifact"], e["batch"]): e
              for e in versus_fp32(report)}
    for row in report["rows"]:
        accuracy = row["accuracy"] or {}
        base = {key: row[key] for key in ("variant", "backend", "device", "precision", "threads",
                                           "size_bytes", "macs", "params", "artifact", "error")}
        agreement = row.get("agreement") or {}
        base.update(top1=accuracy.get("top1"), top5=accuracy.get("top5"),
                    eval_images=accuracy.get("images"),
                    top1_agreement=agreement.get("top1_agreement"),
                    max_abs_diff=agreement.get("max_abs_diff"))
        for stats in row["latency"] or [{}]:
            compared = versus.get((row["variant"], row["backend"], row["artifact"],
                                   stats.get("batch")), {})
            writer.writerow({**base, **{k: stats.get(k) for k in (
                "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_ips", "warmup",
                "iterations")}, "fp32_p50_ms": compared.get("fp32_p50_ms"),
                "slower_than_fp32": compared.get("slower")})
    return buffer.getvalue()


def report_table(report: dict[str, Any]) -> Table:
    """A rich table: one line per row, fastest first (largest batch), latency columns per batch
    size, speedup vs the first row measured (the FP32 model in a run); under it, a line for
    each reduced-precision row and batch size slower than its FP32 model."""
    batches = sorted({s["batch"] for row in report["rows"] for s in row["latency"]})
    env = report["environment"]
    title = (f"edgevision benchmark — {env['cpu']} ({env['cpu_count']} cores), "
             f"threads {report['settings'].get('threads') or 'all'}")
    slower = slower_lines(versus_fp32(report))
    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption="\n".join(slower) or None, caption_style="yellow")
    compared = any(row.get("agreement") for row in report["rows"])
    for column in ("variant", "backend", "precision", "size MB", "MMACs", "params M", "top-1 %",
                   "top-5 %", *(["vs ORT top-1/max|Δ|"] if compared else [])):
        table.add_column(column, justify="left" if column in ("variant", "backend") else "right")
    for batch in batches:
        table.add_column(f"b{batch} p50/p99 ms", justify="right")
        table.add_column(f"b{batch} img/s", justify="right")
        table.add_column(f"b{batch} speedup", justify="right")
    baseline = _baseline_p50(report["rows"])
    for row in sorted(report["rows"], key=lambda r: _sort_key(r, batches)):
        table.add_row(*_table_cells(row, batches, baseline, compared))
    return table


def agreement_cell(agreement: dict[str, Any] | None) -> str:
    """``99.8%/3.1e-05``: top-1 agreement with ONNX Runtime and the largest |logit difference|;
    ``-`` where not compared."""
    if not agreement:
        return "-"
    return f"{100 * agreement['top1_agreement']:.1f}%/{agreement['max_abs_diff']:.2g}"


def _sort_key(row: dict[str, Any], batches: list[int]) -> tuple[bool, float]:
    """Fastest first at the largest batch size; failed rows last."""
    by_batch = {s["batch"]: s["p50_ms"] for s in row["latency"]}
    p50 = by_batch.get(batches[-1]) if batches else None
    return (row["error"] is not None or p50 is None, p50 or 0.0)


def _baseline_p50(rows: list[dict[str, Any]]) -> dict[int, float]:
    first = next((r for r in rows if not r["error"] and r["latency"]), None)
    return {s["batch"]: s["p50_ms"] for s in first["latency"]} if first else {}


def _table_cells(row: dict[str, Any], batches: list[int], baseline: dict[int, float],
                 compared: bool = False) -> list[str]:
    def fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
        return "-" if value is None else f"{value / scale:.{digits}f}"

    accuracy = row["accuracy"] or {}
    cells = [row["variant"], row["backend"], row["precision"] or "-",
             fmt(row["size_bytes"], 1e6), fmt(row["macs"], 1e6, 1), fmt(row["params"], 1e6, 3),
             fmt(accuracy.get("top1")), fmt(accuracy.get("top5")),
             *([agreement_cell(row.get("agreement"))] if compared else [])]
    if row["error"]:
        return [*cells, f"[red]error: {row['error']}[/red]", *[""] * (3 * len(batches) - 1)]
    by_batch = {s["batch"]: s for s in row["latency"]}
    for batch in batches:
        stats = by_batch.get(batch)
        if stats is None:
            cells += ["-", "-", "-"]
            continue
        speedup = baseline.get(batch, 0.0) / stats["p50_ms"] if stats["p50_ms"] else 0.0
        cells += [f"{stats['p50_ms']:.2f}/{stats['p99_ms']:.2f}",
                  f"{stats['throughput_ips']:.0f}", f"{speedup:.2f}x"]
    return cells
