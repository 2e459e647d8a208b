"""The search report: every candidate's figures, the choice, as versioned JSON (validated by
these pydantic models), CSV and a table sorted by latency."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

SEARCH_SCHEMA = "edgevision.search/1"
#: the table's mark of a candidate slower than its level's FP32 candidate
SLOWER_MARK = "⊘"


class Row(BaseModel):
    """One candidate, measured (or failed: ``error`` set, figures null)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    level: float
    precision: str
    backend: str
    artifact: str | None
    size_bytes: int | None
    macs: int | None
    #: on the report images (the evaluation split, or its report half)
    top1: float | None
    top5: float | None
    drop: float | None
    #: on the selection images: what the choice used (absent from reports written before them)
    select_top1: float | None = None
    select_drop: float | None = None
    b1_p50_ms: float | None
    b1_p99_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    spread_pct: float | None
    throughput_ips: float | None
    speedup: float | None
    within_budget: bool | None
    #: a reduced-precision candidate slower at the search batch than its level's FP32 candidate
    #: on the same backend (never chosen); None: FP32 itself, not compared, or a report from
    #: before the comparison
    slower_than_fp32: bool | None = None
    error: str | None


class Choice(BaseModel):
    """What was chosen, by which rule, and whether the budget was met."""

    model_config = ConfigDict(extra="forbid")
    rule: Literal["fastest within accuracy budget", "most accurate within latency budget"]
    budget: float
    met: bool
    chosen: str | None
    deployed: str | None
    best_reached: str | None
    message: str


class SearchReport(BaseModel):
    """``report.json`` of a search run (schema ``edgevision.search/1``)."""

    # "schema" in JSON; schema_ in Python (BaseModel.schema is a method)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["edgevision.search/1"] = Field(alias="schema")
    created: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    baseline: str
    batch: int
    rows: list[Row]
    choice: Choice
    plot: str | None
    plot_error: str | None
    summary: str | None
    run: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchReport:
        """Validate a report read from JSON."""
        return cls.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def sorted_rows(rows: list[Row]) -> list[Row]:
    """By p50 latency at the search batch; failed candidates last."""
    return sorted(rows, key=lambda r: (r.p50_ms is None, r.p50_ms or 0.0, r.name))


def search_table(report: SearchReport) -> Table:
    """The rich table: sorted by latency, the chosen row marked (and those slower than their
    FP32 candidate), errors in place of figures."""
    env = report.environment
    table = Table(title=f"edgevision search — {env.get('cpu')} ({env.get('cpu_count')} cores), "
                        f"{', '.join(backends(report)) or '-'}, batch {report.batch}"
                        f"; {report.choice.message}", title_justify="left",
                  caption=slower_note(report), caption_justify="left", caption_style="yellow")
    for column in ("", "variant", "backend", "precision", "size MB", "MMACs", "sel. drop",
                   "top-1 %", "drop", "b1 p50/p99 ms", f"b{report.batch} p50/p99 ms",
                   "spread %", "img/s", "speedup"):
        table.add_column(column, justify="left" if column in ("", "variant", "backend",
                                                              "precision")
                         else "right")
    for row in sorted_rows(report.rows):
        table.add_row(*_cells(row, report.choice.chosen))
    return table


def backends(report: SearchReport) -> list[str]:
    """The backends of the report's rows, the target (the baseline's) first."""
    return list(dict.fromkeys(row.backend for row in report.rows))


def fmt(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """A figure for the table and the summary page; "-" when unknown."""
    return "-" if value is None else f"{value / scale:.{digits}f}"


def slower_note(report: SearchReport) -> str | None:
    """The line under the table and the summary's: which candidates are slower than FP32."""
    slower = [row.name for row in sorted_rows(report.rows) if row.slower_than_fp32]
    if not slower:
        return None
    return (f"{SLOWER_MARK} slower than the FP32 candidate of its level on its backend at batch "
            f"{report.batch}, never chosen: {', '.join(slower)}")


def _cells(row: Row, chosen: str | None) -> list[str]:
    mark = ("★" if row.name == chosen else SLOWER_MARK if row.slower_than_fp32
            else "✓" if row.within_budget else "")
    head = [mark, row.name, row.backend, row.precision, fmt(row.size_bytes, 2, 1e6),
            fmt(row.macs, 1, 1e6)]
    if row.error:
        return [*head, f"[red]error: {row.error}[/red]", *[""] * 7]
    return [*head, fmt(row.select_drop), fmt(row.top1), fmt(row.drop),
            f"{fmt(row.b1_p50_ms)}/{fmt(row.b1_p99_ms)}", f"{fmt(row.p50_ms)}/{fmt(row.p99_ms)}",
            fmt(row.spread_pct, 1), fmt(row.throughput_ips, 0), f"{fmt(row.speedup)}x"]


CSV_COLUMNS = list(Row.model_fields)


def search_csv(report: SearchReport) -> str:
    """One CSV line per candidate, sorted by latency."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted_rows(report.rows):
        writer.writerow(row.model_dump())
    return buffer.getvalue()
