"""The search end to end: build candidates → measure on the target → choose → deploy → report
(JSON, CSV, table, Pareto plot, Markdown page)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from edgevision.benchmarking.environment import environment
from edgevision.errors import first_line
from edgevision.io import atomic_path, write_json_atomic, write_text_atomic
from edgevision.progress import console, log
from edgevision.recipe.search import SearchSpec
from edgevision.search.build import Candidate, build_candidates, level_name
from edgevision.search.measure import (
    MEASUREMENTS_FILE,
    Measurement,
    measure_candidates,
    variants,
)
from edgevision.search.report import Row, SearchReport, search_csv, search_table
from edgevision.search.select import choose, slower_than_fp32, within_budget
from edgevision.search.splits import search_splits

if TYPE_CHECKING:
    from edgevision.stages.state import PipelineState

DEPLOY_FILE = "deploy.onnx"
PLOT_FILE = "pareto.png"
SUMMARY_FILE = "summary.md"


def run_search(state: PipelineState, spec: SearchSpec) -> SearchReport:
    """Search the recipe's variants; write the report files and the deployable model."""
    splits = search_splits(state.dataset, state.eval_set, spec, state.recipe.seed)
    candidates = build_candidates(state, spec, splits)
    state.artifacts = [{"variant": c.name, "path": c.path} for c in candidates if c.path]
    measured = measure_candidates(candidates, spec, splits, state.run.path,
                                  state.run.path / MEASUREMENTS_FILE)
    baseline = f"{level_name(0.0)}/fp32"
    rows = _rows(candidates, measured, spec, baseline)
    choice = choose(rows, spec)
    if choice.chosen is not None:
        source = state.run.path / next(r.artifact for r in rows if r.name == choice.chosen
                                       and r.artifact)
        with atomic_path(state.run.path / DEPLOY_FILE) as tmp:
            shutil.copyfile(source, tmp)
        choice.deployed = DEPLOY_FILE
    report = SearchReport(
        schema_="edgevision.search/1",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        environment=environment(),
        settings={**spec.model_dump(mode="json"), "select_split": splits.select.name,
                  "select_images": len(splits.select), "eval_split": splits.report.name,
                  "eval_images": len(splits.report)},
        baseline=baseline, batch=spec.batch, rows=rows, choice=choice, plot=None,
        plot_error=None, summary=SUMMARY_FILE, run={"recipe": state.recipe.name})
    _plot(report, state)
    _write(report, state)
    console.print(search_table(report))
    (log if choice.met else _warn)(choice.message)
    return report


def _rows(candidates: list[Candidate], measured: dict[str, Measurement], spec: SearchSpec,
          baseline: str) -> list[Row]:
    base = measured.get(baseline)
    base_top1 = base.top1 if base and not base.error else None
    base_select = base.select_top1 if base and not base.error else None
    base_timing = base.timing(spec.batch) if base and not base.error else None
    rows = []
    for variant in variants(candidates, spec):
        candidate = variant.candidate
        m = measured.get(variant.name) or Measurement(variant.name, variant.backend,
                                                      error="not measured")
        big, one = m.timing(spec.batch), m.timing(1)
        row = Row(
            name=variant.name, level=candidate.level, precision=candidate.precision,
            backend=variant.backend, artifact=candidate.path, size_bytes=m.size_bytes,
            macs=candidate.macs, top1=m.top1, top5=m.top5,
            drop=_drop(base_top1, m.top1), select_top1=m.select_top1,
            select_drop=_drop(base_select, m.select_top1),
            b1_p50_ms=one.p50_ms if one else None, b1_p99_ms=one.p99_ms if one else None,
            p50_ms=big.p50_ms if big else None, p90_ms=big.p90_ms if big else None,
            p99_ms=big.p99_ms if big else None, spread_pct=big.spread_pct if big else None,
            throughput_ips=big.throughput_ips if big else None,
            speedup=(base_timing.p50_ms / big.p50_ms) if base_timing and big else None,
            within_budget=None, error=m.error)
        row.within_budget = within_budget(row, spec)
        rows.append(row)
    for row in rows:
        row.slower_than_fp32 = slower_than_fp32(row, rows)
    return rows


def _drop(baseline: float | None, top1: float | None) -> float | None:
    return baseline - top1 if baseline is not None and top1 is not None else None


def _plot(report: SearchReport, state: PipelineState) -> None:
    try:
        from edgevision.search.plot import pareto_plot

        pareto_plot(report, state.run.path / PLOT_FILE)
        report.plot = PLOT_FILE
    except ImportError as exc:
        report.plot_error = (f"matplotlib is not installed ({first_line(exc)}): "
                             "pip install 'edgevision[plot]'")
        _warn(f"no Pareto plot: {report.plot_error}")


def _write(report: SearchReport, state: PipelineState) -> None:
    from edgevision.search.summary import summary_markdown

    data: dict[str, Any] = report.to_json()
    write_json_atomic(state.run.path / "report.json", data)
    write_text_atomic(state.run.path / "report.csv", search_csv(report))
    write_text_atomic(state.run.path / SUMMARY_FILE, summary_markdown(report))
    log(f"search report: {state.run.path / 'report.json'}, report.csv, {SUMMARY_FILE}"
        + (f", {PLOT_FILE}" if report.plot else ""))


def _warn(message: str) -> None:
    log(f"[yellow]{message}[/yellow]")
