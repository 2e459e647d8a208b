"""Outputs vs ONNX Runtime's: the pure comparison on synthetic logits, and how the report shows
it (also for reports written before it existed). The comparison on a real model and real images
is in tests/test_openvino.py (test_native_rows_agree_with_onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.benchmarking import agreement
from edgevision.benchmarking.agreement import AgreementMeter
from edgevision.benchmarking.report import agreement_cell, report_csv, report_table
from edgevision.errors import EdgevisionError


def test_identical_outputs_agree_fully() -> None:
    logits = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32)
    result = agreement(logits, logits.copy(), "onnxruntime (cpu) on m.onnx")
    assert (result.max_abs_diff, result.mean_abs_diff, result.top1_agreement, result.images) == \
        (0.0, 0.0, 1.0, 50)
    assert result.reference == "onnxruntime (cpu) on m.onnx"


def test_differences_and_flipped_top1() -> None:
    reference = np.zeros((4, 3), dtype=np.float32)
    reference[:, 0] = 1.0  # class 0 everywhere
    outputs = reference.copy()
    outputs[1] = [0.0, 2.0, 0.0]  # image 1: class 1 now (|diff| 1 and 2)
    outputs[2, 2] = 0.5  # image 2: still class 0
    result = agreement(outputs, reference)
    assert result.top1_agreement == 0.75
    assert result.max_abs_diff == 2.0
    assert result.mean_abs_diff == pytest.approx((1.0 + 2.0 + 0.5) / 12)


def test_batches_accumulate_like_one_pass() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(70, 10))
    outputs = reference + rng.normal(scale=1e-3, size=reference.shape)
    meter = AgreementMeter()
    for start in range(0, 70, 32):
        meter.add(outputs[start:start + 32], reference[start:start + 32])
    whole, batched = agreement(outputs, reference), meter.result()
    assert batched is not None
    assert (batched.images, batched.max_abs_diff, batched.top1_agreement) == \
        (whole.images, whole.max_abs_diff, whole.top1_agreement)
    assert batched.mean_abs_diff == pytest.approx(whole.mean_abs_diff, rel=1e-12)
    assert AgreementMeter().result() is None


def test_mismatched_shapes_are_a_one_line_error() -> None:
    with pytest.raises(EdgevisionError, match=r"shape \(2, 10\) with the reference's \(2, 5\)"):
        agreement(np.zeros((2, 10)), np.zeros((2, 5)))


def _row(backend: str, agreement: dict[str, object] | None = None) -> dict[str, object]:
    row: dict[str, object] = {
        "variant": "fp32", "artifact": "m.onnx", "backend": backend, "device": "cpu",
        "precision": "fp32", "threads": 2, "size_bytes": 1, "macs": 1, "params": 1,
        "accuracy": {"top1": 80.0, "top5": 98.0, "images": 10, "split": "test"},
        "latency": [{"batch": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "mean_ms": 1.0,
                     "throughput_ips": 1000.0, "warmup": 1, "iterations": 2}],
        "error": None}
    if agreement is not None:
        row["agreement"] = agreement
    return row


def test_report_shows_agreement_and_reads_reports_without_it() -> None:
    env = {"cpu": "cpu", "cpu_count": 2}
    compared = {"max_abs_diff": 3.1e-5, "mean_abs_diff": 1e-6, "top1_agreement": 0.998,
                "images": 500, "reference": "onnxruntime (cpu) on m.onnx"}
    new = {"schema": "edgevision.report/2", "environment": env, "settings": {"threads": 2},
           "rows": [_row("onnxruntime", None) | {"agreement": None},
                    _row("openvino", compared)]}
    table = report_table(new)
    assert "vs ORT top-1/max|Δ|" in [column.header for column in table.columns]
    assert agreement_cell(compared) == "99.8%/3.1e-05" and agreement_cell(None) == "-"
    lines = report_csv(new).splitlines()
    assert "top1_agreement,max_abs_diff" in lines[0]
    assert ",0.998,3.1e-05," in lines[2]
    old = {"schema": "edgevision.report/1", "environment": env, "settings": {"threads": 2},
           "rows": [_row("onnxruntime"), _row("openvino")]}  # rows without the key
    table = report_table(old)
    assert table.row_count == 2
    assert "vs ORT top-1/max|Δ|" not in [column.header for column in table.columns]
    assert len(report_csv(old).splitlines()) == 3
