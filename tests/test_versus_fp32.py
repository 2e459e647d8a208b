"""A reduced-precision variant slower than its FP32 model on a backend: the benchmark report
says so (JSON, CSV, the line under the table) and the search never chooses it. Rows are
constructed (figures chosen to make the cases), never timed: timings are noisy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper
from rich.console import Console

from edgevision.benchmarking import BenchmarkRow, LatencyStats, build_report
from edgevision.benchmarking.report import REPORT_SCHEMA, report_csv, report_table
from edgevision.benchmarking.spec import BenchmarkSpec
from edgevision.benchmarking.versus_fp32 import compare_with_fp32, slower_lines, versus_fp32
from edgevision.onnxmeta import fp32_origin, fp32_source_entry, read_metadata, set_metadata
from edgevision.recipe.search import SearchSpec
from edgevision.search.report import Choice, Row, SearchReport, search_table
from edgevision.search.select import choose, slower_than_fp32, within_budget
from edgevision.search.summary import summary_markdown

MACS = 40_000_000


def stats(batch: int, p50: float) -> LatencyStats:
    return LatencyStats(batch=batch, warmup=1, iterations=3, mean_ms=p50, std_ms=0.0,
                        min_ms=p50, p50_ms=p50, p90_ms=p50, p99_ms=p50, max_ms=p50,
                        throughput_ips=batch * 1000.0 / p50)


def bench_row(variant: str, precision: str, p50: dict[int, float], origin: str | None,
              artifact: str, macs: int = MACS, backend: str = "onnxruntime") -> BenchmarkRow:
    return BenchmarkRow(variant, artifact, backend, "cpu", precision=precision, threads=2,
                        size_bytes=1, macs=macs, params=1, origin=origin,
                        latency=[stats(b, v) for b, v in p50.items()])


def run_rows(int8_p50: dict[int, float]) -> list[BenchmarkRow]:
    """A run's rows: pruned and pruned+distilled (same MACs, different files), then the INT8
    graph made from pruned+distilled's model.onnx."""
    return [bench_row("pruned", "fp32", {1: 1.0, 8: 5.0}, "run/pruned.onnx", "run/pruned.onnx"),
            bench_row("pruned+distilled", "fp32", {1: 1.98, 8: 10.0}, "run/model.onnx",
                      "run/model.onnx"),
            bench_row("pruned+distilled+int8", "int8", int8_p50, "run/model.onnx",
                      "run/model.int8.onnx")]


def test_report_lists_int8_slower_than_its_fp32_model() -> None:
    report = build_report(run_rows({1: 2.31, 8: 8.0}), BenchmarkSpec(batch_sizes=[1, 8]))
    assert report["schema"] == REPORT_SCHEMA == "edgevision.report/3"
    entries = {e["batch"]: e for e in report["versus_fp32"]}
    # compared with the file it was made from (origin), not pruned's (same MACs, faster)
    assert {e["fp32_variant"] for e in entries.values()} == {"pruned+distilled"}
    assert {e["matched_by"] for e in entries.values()} == {"origin"}
    assert entries[1]["slower"] and not entries[8]["slower"]
    assert slower_lines(report["versus_fp32"]) == [
        "INT8 slower than FP32: pruned+distilled+int8 on onnxruntime at batch 1 "
        "(2.31 vs 1.98 ms p50, FP32: pruned+distilled)"]
    caption = report_table(report).caption
    assert caption == slower_lines(report["versus_fp32"])[0]
    console = Console(width=400, record=True)
    console.print(report_table(report))
    assert "INT8 slower than FP32: pruned+distilled+int8" in console.export_text()
    lines = report_csv(report).splitlines()
    header = lines[0].split(",")
    by_line = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    int8 = {r["batch"]: r for r in by_line if r["variant"] == "pruned+distilled+int8"}
    assert (int8["1"]["fp32_p50_ms"], int8["1"]["slower_than_fp32"]) == ("1.98", "True")
    assert (int8["8"]["fp32_p50_ms"], int8["8"]["slower_than_fp32"]) == ("10.0", "False")
    assert {r["slower_than_fp32"] for r in by_line if r["precision"] == "fp32"} == {""}


def test_int8_faster_than_fp32_is_not_flagged() -> None:
    report = build_report(run_rows({1: 1.5, 8: 8.0}), BenchmarkSpec(batch_sizes=[1, 8]))
    assert len(report["versus_fp32"]) == 2
    assert not any(e["slower"] for e in report["versus_fp32"])
    assert report_table(report).caption is None


def test_other_backends_and_failed_rows_are_not_compared() -> None:
    rows = run_rows({1: 2.31, 8: 8.0})
    rows[1].backend = "openvino"  # its FP32 model was measured elsewhere only
    assert compare_with_fp32([r.to_dict() for r in rows]) == []
    rows = run_rows({1: 2.31, 8: 8.0})
    rows[1].error, rows[1].latency = "failed", []
    assert compare_with_fp32([r.to_dict() for r in rows]) == []


def test_a_version_2_report_is_compared_by_macs() -> None:
    """Rows without ``origin`` (a /2 report): the FP32 row with the same MACs; of several, the
    one whose variant name the INT8 row's extends."""
    rows = [r.to_dict() for r in run_rows({1: 2.31, 8: 8.0})]
    for row in rows:
        del row["origin"]
    rows.append(bench_row("base", "fp32", {1: 3.0, 8: 20.0}, None, "run/base.onnx",
                          macs=2 * MACS).to_dict())
    rows.append(bench_row("int8", "int8", {1: 2.0, 8: 30.0}, None, "run/base.int8.onnx",
                          macs=2 * MACS).to_dict())
    old = {"schema": "edgevision.report/2", "environment": {"cpu": "cpu", "cpu_count": 2},
           "settings": {"threads": 2}, "rows": rows}
    entries = {(e["variant"], e["batch"]): e for e in versus_fp32(old)}
    assert entries[("pruned+distilled+int8", 1)]["fp32_variant"] == "pruned+distilled"
    assert entries[("int8", 8)]["fp32_variant"] == "base"
    assert {e["matched_by"] for e in entries.values()} == {"macs"}
    assert [line.split(" (")[0] for line in slower_lines(versus_fp32(old))] == [
        "INT8 slower than FP32: pruned+distilled+int8 on onnxruntime at batch 1",
        "INT8 slower than FP32: int8 on onnxruntime at batch 8"]
    assert report_table(old).row_count == 5
    assert "slower_than_fp32" in report_csv(old).splitlines()[0]


def _graph(path: Path, metadata: dict[str, Any]) -> Path:
    node = helper.make_node("Relu", ["input"], ["logits"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph)
    set_metadata(model, metadata)
    onnx.save(model, str(path))
    return path


def test_derived_graphs_record_their_fp32_source(tmp_path: Path) -> None:
    fp32 = _graph(tmp_path / "model.onnx", {"precision": "fp32"})
    int8 = _graph(tmp_path / "model.int8.onnx", {"precision": "int8", "fp32_source": "model.onnx"})
    old = _graph(tmp_path / "old.int8.onnx", {"precision": "int8"})
    assert fp32_origin(fp32) == fp32 and fp32_origin(int8) == fp32 and fp32_origin(old) is None
    (tmp_path / "engines").mkdir()
    typed = tmp_path / "engines" / "model.int8-fp16.trt.onnx"
    assert fp32_source_entry(int8, typed) == {"fp32_source": "../model.onnx"}
    _graph(typed, {"precision": "int8+fp16", **fp32_source_entry(int8, typed)})
    assert fp32_origin(typed) == tmp_path / "engines" / ".." / "model.onnx"
    assert fp32_source_entry(old, typed) == {}
    assert read_metadata(typed)["precision"] == "int8+fp16"


def test_a_copied_graph_has_no_origin(tmp_path: Path) -> None:
    """A byte copy keeps ``fp32_source: model.onnx``, which names nothing (a bundle) or
    itself beside the copy: neither is its FP32 model, so it is matched by MACs."""
    int8 = _graph(tmp_path / "model.int8.onnx", {"precision": "int8", "fp32_source": "model.onnx"})
    (tmp_path / "bundle").mkdir()
    copy = tmp_path / "bundle" / "model.onnx"
    copy.write_bytes(int8.read_bytes())
    assert fp32_origin(copy) is None
    elsewhere = tmp_path / "deploy"
    elsewhere.mkdir()
    (elsewhere / "deploy.onnx").write_bytes(int8.read_bytes())
    assert fp32_origin(elsewhere / "deploy.onnx") is None


# --- the search -----------------------------------------------------------------------------

def search_row(name: str, p50: float, select_drop: float, select_top1: float = 90.0,
               backend: str = "onnxruntime") -> Row:
    level = 0.0 if name.startswith("base") else 0.5
    return Row(name=name, level=level, precision=name.split("/")[1], backend=backend,
               artifact=f"search/{name}.onnx", size_bytes=1, macs=1, top1=90.0, top5=99.0,
               drop=select_drop, select_top1=select_top1, select_drop=select_drop,
               b1_p50_ms=p50, b1_p99_ms=p50, p50_ms=p50, p90_ms=p50, p99_ms=p50,
               spread_pct=1.0, throughput_ips=1000.0 / p50, speedup=2.0 / p50,
               within_budget=None, error=None)


def spec(**budget: float | None) -> SearchSpec:
    return SearchSpec.model_validate({"precisions": ["fp32", "int8"], "batch": 1, **budget})


def test_search_passes_over_int8_slower_than_its_fp32() -> None:
    """pruned50/int8 is the fastest within the accuracy budget (its FP32 is outside it) but
    slower than pruned50/fp32: base/fp32 is chosen, and the message says why."""
    rows = [search_row("base/fp32", 2.0, 0.0), search_row("base/int8", 2.5, 0.4),
            search_row("pruned50/fp32", 1.5, 1.2), search_row("pruned50/int8", 1.6, 0.9)]
    assert [slower_than_fp32(r, rows) for r in rows] == [None, True, None, True]
    choice = choose(rows, spec(accuracy_budget=1.0))
    assert choice.met and choice.chosen == "base/fp32"
    assert choice.message.endswith(
        "; passed over pruned50/int8 (the fastest within budget): 1.60 ms p50 at batch 1, "
        "slower than pruned50/fp32 (1.50 ms)")


def test_latency_budget_passes_over_a_more_accurate_slower_int8() -> None:
    rows = [search_row("base/fp32", 2.0, 0.0, 90.0), search_row("base/int8", 2.3, -0.5, 90.5)]
    choice = choose(rows, spec(accuracy_budget=None, latency_budget_ms=3.0))
    assert choice.chosen == "base/fp32"
    assert "passed over base/int8 (the most accurate within budget)" in choice.message


def test_search_chooses_int8_faster_than_fp32() -> None:
    rows = [search_row("base/fp32", 2.0, 0.0), search_row("base/int8", 1.2, 0.3),
            search_row("base/int8@openvino", 2.4, 0.3, backend="openvino")]
    # no FP32 candidate on OpenVINO: nothing to compare that row with
    assert [slower_than_fp32(r, rows) for r in rows] == [None, False, None]
    choice = choose(rows, spec(accuracy_budget=1.0))
    assert choice.chosen == "base/int8" and "passed over" not in choice.message


def test_only_slower_candidates_within_budget_choose_nothing() -> None:
    rows = [search_row("base/fp32", 2.0, 1.5), search_row("base/int8", 2.5, 0.5)]
    choice = choose(rows, spec(accuracy_budget=1.0))
    assert not choice.met and choice.chosen is None
    assert choice.message.startswith("every candidate within the budget is slower")
    assert "passed over base/int8" in choice.message


def search_report(rows: list[Row], choice: Choice) -> SearchReport:
    return SearchReport(schema_="edgevision.search/1", created="2025-01-01T00:00:00+00:00",
                        environment={"cpu": "cpu", "cpu_count": 2}, settings={},
                        baseline="base/fp32", batch=1, rows=rows, choice=choice, plot=None,
                        plot_error=None, summary=None, run={})


def test_search_report_marks_slower_rows_and_reads_older_reports() -> None:
    rows = [search_row("base/fp32", 2.0, 0.0), search_row("base/int8", 2.5, 0.4)]
    for row in rows:
        row.within_budget = within_budget(row, spec(accuracy_budget=1.0))
        row.slower_than_fp32 = slower_than_fp32(row, rows)
    report = search_report(rows, choose(rows, spec(accuracy_budget=1.0)))
    assert search_table(report).caption == ("⊘ slower than the FP32 candidate of its level on "
                                            "its backend at batch 1, never chosen: base/int8")
    assert "| yes, slower than FP32 |" in summary_markdown(report)
    data = report.to_json()
    for row in data["rows"]:  # a report written before the field
        del row["slower_than_fp32"]
    older = SearchReport.from_json(data)
    assert [r.slower_than_fp32 for r in older.rows] == [None, None]
    assert search_table(older).caption is None


@pytest.mark.parametrize("precision", ["fp16", "int8+fp32"])
def test_every_reduced_precision_is_compared(precision: str) -> None:
    rows = run_rows({1: 2.31, 8: 8.0})
    rows[2].precision = precision
    lines = slower_lines(compare_with_fp32([r.to_dict() for r in rows]))
    assert lines and lines[0].startswith(f"{precision.upper()} slower than FP32")
