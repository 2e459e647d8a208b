"""Benchmark: latency percentiles, throughput and accuracy through the same session."""

from edgevision.benchmark.measure import (
    AccuracyResult,
    LatencyStats,
    measure_accuracy,
    measure_latency,
)
from edgevision.benchmark.report import (
    REPORT_SCHEMA,
    build_report,
    report_csv,
    report_table,
    write_report,
)
from edgevision.benchmark.runner import Artifact, BenchmarkRow, benchmark_artifacts

__all__ = ["REPORT_SCHEMA", "AccuracyResult", "Artifact", "BenchmarkRow", "LatencyStats",
           "benchmark_artifacts", "build_report", "measure_accuracy", "measure_latency",
           "report_csv", "report_table", "write_report"]
