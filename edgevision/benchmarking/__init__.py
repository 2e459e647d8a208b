"""Benchmark: latency percentiles, throughput and accuracy through the same session."""

from edgevision.benchmarking.agreement import Agreement, agreement
from edgevision.benchmarking.measure import (
    AccuracyResult,
    LatencyStats,
    measure_accuracy,
    measure_latency,
)
from edgevision.benchmarking.report import (
    REPORT_SCHEMA,
    build_report,
    check_measured,
    report_csv,
    report_table,
    write_report,
)
from edgevision.benchmarking.runner import Artifact, BenchmarkRow, benchmark_artifacts

__all__ = ["REPORT_SCHEMA", "AccuracyResult", "Agreement", "Artifact", "BenchmarkRow",
           "LatencyStats", "agreement", "benchmark_artifacts", "build_report", "check_measured",
           "measure_accuracy", "measure_latency", "report_csv", "report_table", "write_report"]
