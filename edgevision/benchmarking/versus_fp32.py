"""Each reduced-precision row against the FP32 model it was made from, on the same backend:
where an INT8 (or FP16) graph runs slower than its FP32 model, the report says so.

Every measured row whose precision is not ``fp32`` (int8, int8+fp32, fp16, int8+fp16: each
exists only to be faster) is compared with one FP32 row of the same backend:

- the one with the same ``origin``: the FP32 ONNX file it was made from, which the quantize
  stage records in the graphs it writes (report /3 has it in every row);
- for a row without an origin (a graph quantized before it was recorded, a copy such
  as ``deploy.onnx``, every row of a /1 or /2 report; a graph without edgevision metadata
  counts as FP32): the one with the same MACs — the variants of one network
  share them (``pruned+distilled`` and ``pruned+distilled+int8``); where several FP32 rows do
  (``pruned`` and ``pruned+distilled``), the one whose variant name the row's extends
  (``pruned+distilled+`` for ``pruned+distilled+int8``), and none when that does not decide.
"""

from __future__ import annotations

import os
from typing import Any

#: the report's key for the comparisons (schema /3)
VERSUS_FP32 = "versus_fp32"
Row = dict[str, Any]


def compare_with_fp32(rows: list[Row]) -> list[Row]:
    """One entry per non-FP32 row with an FP32 counterpart and batch size both measured:
    the two p50s and ``slower`` (the row's p50 above the FP32 one's)."""
    entries = []
    for row in rows:
        if not _measured(row) or row.get("precision") in (None, "fp32"):
            continue
        found = fp32_counterpart(row, rows)
        if found is not None:
            entries += _entries(row, *found)
    return entries


def fp32_counterpart(row: Row, rows: list[Row]) -> tuple[Row, str] | None:
    """The FP32 row ``row`` is compared with, and how it was matched (``origin`` or ``macs``);
    None when there is none."""
    fp32 = [r for r in rows if r.get("precision") == "fp32" and _measured(r)
            and r["backend"] == row["backend"]]
    if row.get("origin"):
        same = [r for r in fp32 if r.get("origin") and _same_file(r["origin"], row["origin"])]
        return (same[0], "origin") if same else None
    same = [r for r in fp32 if row.get("macs") is not None and r.get("macs") == row["macs"]]
    if len(same) > 1:
        same = sorted((r for r in same if row["variant"].startswith(f"{r['variant']}+")),
                      key=lambda r: len(r["variant"]), reverse=True)[:1]
    return (same[0], "macs") if same else None


def versus_fp32(report: dict[str, Any]) -> list[Row]:
    """The report's comparisons: recorded in a /3 report, worked out from the rows of an older
    one."""
    recorded = report.get(VERSUS_FP32)
    return list(recorded) if recorded is not None else compare_with_fp32(report["rows"])


def slower_lines(entries: list[Row]) -> list[str]:
    """``INT8 slower than FP32: pruned+int8 on onnxruntime at batch 1 (2.31 vs 1.98 ms p50,
    FP32: pruned)``, one per slower row and batch size."""
    return [f"{entry['precision'].upper()} slower than FP32: {entry['variant']} on "
            f"{entry['backend']} at batch {entry['batch']} ({entry['p50_ms']:.2f} vs "
            f"{entry['fp32_p50_ms']:.2f} ms p50, FP32: {entry['fp32_variant']})"
            for entry in entries if entry["slower"]]


def _entries(row: Row, fp32: Row, matched_by: str) -> list[Row]:
    fp32_p50 = {s["batch"]: s["p50_ms"] for s in fp32["latency"]}
    return [{"variant": row["variant"], "artifact": row["artifact"], "backend": row["backend"],
             "precision": row["precision"], "fp32_variant": fp32["variant"],
             "fp32_artifact": fp32["artifact"], "matched_by": matched_by,
             "batch": stats["batch"], "p50_ms": stats["p50_ms"],
             "fp32_p50_ms": fp32_p50[stats["batch"]],
             "slower": stats["p50_ms"] > fp32_p50[stats["batch"]]}
            for stats in row["latency"] if stats["batch"] in fp32_p50]


def _measured(row: Row) -> bool:
    return not row.get("error") and bool(row.get("latency"))


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))
