"""Timing and accuracy through one open backend session."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from edgevision.backends.base import Backend
from edgevision.data import EvalSet


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of ``iterations`` timed runs after ``warmup`` untimed ones."""

    batch: int
    warmup: int
    iterations: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_ips: float
    #: backends that time on the device (TensorRT: CUDA events): GPU compute and copies, ms
    device_times: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyResult:
    """Top-1/top-5 (%) on ``images`` images of ``split``."""

    top1: float
    top5: float
    images: int
    split: str

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def time_runs(session: Backend, batch: np.ndarray, warmup: int, iterations: int) -> np.ndarray:
    """Wall-clock ms of ``iterations`` timed ``session.run(batch)`` calls after ``warmup``
    untimed ones (a backend's device-side times are reset to cover the timed runs only); a
    backend that compiles per shape has compiled before the first of them."""
    session.prepare(batch)
    for _ in range(warmup):
        session.run(batch)
    session.reset_timing_breakdown()
    times = np.empty(iterations, dtype=np.float64)
    for i in range(iterations):
        start = time.perf_counter()
        session.run(batch)
        times[i] = time.perf_counter() - start
    return times * 1000.0


def measure_latency(session: Backend, batch: np.ndarray, warmup: int,
                    iterations: int) -> LatencyStats:
    """Time ``session.run(batch)``: ``warmup`` untimed runs, then ``iterations`` timed ones."""
    ms = time_runs(session, batch, warmup, iterations)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    stats = LatencyStats(
        batch=len(batch), warmup=warmup, iterations=iterations, mean_ms=float(ms.mean()),
        std_ms=float(ms.std()), min_ms=float(ms.min()), p50_ms=float(p50), p90_ms=float(p90),
        p99_ms=float(p99), max_ms=float(ms.max()),
        throughput_ips=float(len(batch) * 1000.0 / p50))
    breakdown = session.timing_breakdown()
    return stats if breakdown is None else replace(stats, device_times=breakdown)


def measure_accuracy(session: Backend, data: EvalSet, batch_size: int,
                     observe: Callable[[np.ndarray, np.ndarray], None] | None = None
                     ) -> AccuracyResult:
    """Top-1 and top-5 of the session's logits on every image of ``data``; ``observe(images,
    logits)`` sees each batch (to compare the logits with another runtime's without a second
    pass of this session).

    A model with a fixed batch dimension gets its last batch zero-padded (padding ignored).
    """
    fixed = session.input_spec.shape[0]
    step = fixed if isinstance(fixed, int) else batch_size
    top1 = top5 = 0
    for images, labels in data.batches(step):
        logits = session.predict(images)  # pads a short last batch where the batch is fixed
        if observe is not None:
            observe(images, logits)
        ranked = np.argsort(-logits, axis=1)[:, :5]
        top1 += int((ranked[:, 0] == labels).sum())
        top5 += int((ranked == labels[:, None]).any(axis=1).sum())
    return AccuracyResult(100.0 * top1 / len(data), 100.0 * top5 / len(data), len(data),
                          data.name)
