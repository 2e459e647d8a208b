"""Measuring candidates on the target: accuracy through the session that is timed, latency in
interleaved rounds (each round visits every candidate, in a rotated order) so slow drifts of
the machine hit all candidates alike; medians and the spread between rounds are reported."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.backends import Backend, get_backend
from edgevision.benchmarking.environment import usable_cores
from edgevision.benchmarking.measure import measure_accuracy, time_runs
from edgevision.data import EvalSet
from edgevision.errors import ArtifactError, EdgevisionError
from edgevision.io import write_json_atomic
from edgevision.progress import log, progress_bar
from edgevision.recipe.search import SearchSpec
from edgevision.search.build import Candidate
from edgevision.search.splits import Splits

#: the measurements of a search, relative to its run directory
MEASUREMENTS_FILE = "search/measurements.json"
#: pause before each candidate in a round: ONNX Runtime's idle threads spin-wait for a while
#: after a run and would steal the cores from the next candidate's first timed runs
SETTLE_S = 0.2


@dataclass
class Timing:
    """Latency of one candidate at one batch size over all rounds."""

    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float
    #: the rounds' medians: lowest, highest, and (highest − lowest) / p50 in percent
    round_min_ms: float
    round_max_ms: float
    spread_pct: float
    samples: int


@dataclass
class Measurement:
    """A variant's figures on its backend (or its error)."""

    name: str
    backend: str
    #: ``Backend.runtime()`` of the install that measured it (a cached figure from another
    #: backend or install is measured again)
    runtime: str | None = None
    #: on the report images (the evaluation split, or its report half)
    top1: float | None = None
    top5: float | None = None
    images: int | None = None
    #: on the selection images (what the choice and the budgets use)
    select_top1: float | None = None
    select_images: int | None = None
    #: which images: the selection and report splits' names (a cached figure of other images
    #: is measured again)
    select_split: str | None = None
    report_split: str | None = None
    size_bytes: int | None = None
    timings: list[Timing] = field(default_factory=list)
    error: str | None = None

    def timing(self, batch: int) -> Timing | None:
        return next((t for t in self.timings if t.batch == batch), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        timings = [Timing(**t) for t in data.pop("timings")]
        return cls(**data, timings=timings)


@dataclass(frozen=True)
class Variant:
    """A candidate on one of the search's backends (what one report row measures)."""

    candidate: Candidate
    backend: str
    name: str


def variants(candidates: list[Candidate], spec: SearchSpec) -> list[Variant]:
    """Every candidate on every backend of the search, the target's first."""
    return [Variant(c, backend, spec.variant_name(c.name, backend))
            for backend in spec.backends for c in candidates]


def measure_candidates(candidates: list[Candidate], spec: SearchSpec, splits: Splits,
                       run_dir: Path, cache: Path) -> dict[str, Measurement]:
    """Measure each candidate on each backend (the variants ``cache`` does not hold yet) and
    return every measurement, by variant name.

    Accuracy (on the selection and the report images, through the session that is then timed)
    is measured once per variant (and cached at once). Timing is all-or-nothing:
    whenever any variant lacks it, every runnable variant is timed again in the same
    interleaved rounds, so figures compared in one report always come from one session. A
    backend unavailable here gives its variants the reason as their error.
    """
    done = _load(cache)
    runnable = []
    for variant in variants(candidates, spec):
        _forget_if_foreign(done, variant.name, variant.backend)
        if variant.candidate.error:
            done.setdefault(variant.name, Measurement(variant.name, variant.backend,
                                                      error=variant.candidate.error))
        elif reason := _unavailable(variant.backend):
            done[variant.name] = Measurement(variant.name, variant.backend, error=reason)
        elif variant.candidate.path:
            runnable.append(variant)
    if all(v.name in done and done[v.name].timings and _has_accuracy(done[v.name], splits)
           for v in runnable):
        return done
    batches = sorted({1, spec.batch})
    with contextlib.ExitStack() as stack:
        sessions = _open_sessions(runnable, spec, run_dir, stack, done)
        for name, session in list(sessions.items()):
            if _has_accuracy(done[name], splits):
                continue  # accuracy cached from an earlier (interrupted) search or the build
            try:
                _measure_accuracy(done[name], session, spec, splits)
            except EdgevisionError as exc:  # a candidate that fails to run is kept, with why
                done[name].error = str(exc)
                del sessions[name]
                continue
            _save(cache, done)
        samples = _interleaved_rounds(sessions, spec, splits.report, batches, done)
        for name, by_batch in samples.items():
            if done[name].error is None:
                done[name].timings = [_timing(batch, rounds)
                                      for batch, rounds in by_batch.items()]
    _save(cache, done)
    return done


def candidate_accuracy(candidate: Candidate, spec: SearchSpec, splits: Splits,
                       run_dir: Path, cache: Path) -> Measurement:
    """``candidate``'s top-1 on the selection and report images through the target backend
    (the search's first): from ``cache`` when it holds them (measured by this backend and
    install), else measured and cached, so the search's measurement of the same candidate
    reuses them. Raises when the candidate cannot run."""
    assert candidate.path is not None
    done = _load(cache)
    _forget_if_foreign(done, candidate.name, spec.target)
    measured = done.get(candidate.name)
    if measured is not None and _has_accuracy(measured, splits):
        return measured
    path = run_dir / candidate.path
    if not path.is_file():
        raise ArtifactError(f"{candidate.name}: {path} is missing (its level was not built)")
    measured = Measurement(candidate.name, spec.target, _runtime(spec.target),
                           size_bytes=path.stat().st_size)
    with _session(spec.target, spec, path) as session:
        _measure_accuracy(measured, session, spec, splits)
    done[candidate.name] = measured
    _save(cache, done)
    return measured


def _session(backend: str, spec: SearchSpec, path: Path) -> Backend:
    """An (unopened) session of ``backend``, with the search's threads."""
    return get_backend(backend)(path, threads=spec.threads or usable_cores())


def _runtime(backend: str) -> str:
    return get_backend(backend).runtime()


def _forget_if_foreign(done: dict[str, Measurement], name: str, backend: str) -> None:
    """Drop ``done[name]`` when another backend or install measured it (the search's first
    backend changed, or the cache comes from another environment)."""
    cached = done.get(name)
    if cached is None or cached.error:
        return
    available = get_backend(backend).availability().ok  # else its rows get the reason anyway
    if cached.backend != backend or (available and cached.runtime != _runtime(backend)):
        del done[name]


def _unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot run here (None: it can)."""
    status = get_backend(backend).availability()
    return None if status.ok else f"backend {backend!r} is unavailable: {status.reason}"


def _has_accuracy(measured: Measurement, splits: Splits) -> bool:
    """Both accuracies known, on these very images (a cache from before the selection split,
    or from other splits or sizes, is measured again)."""
    return (measured.top1 is not None and measured.select_top1 is not None
            and (measured.select_split, measured.select_images) == (splits.select.name,
                                                                    len(splits.select))
            and (measured.report_split, measured.images) == (splits.report.name,
                                                             len(splits.report)))


def _measure_accuracy(measured: Measurement, session: Backend, spec: SearchSpec,
                      splits: Splits) -> None:
    batch = max(spec.batch, 32)
    log(f"search: accuracy of {measured.name} ({len(splits.select)} {splits.select.name} "
        f"images to choose on, {len(splits.report)} {splits.report.name} images to report)")
    select = measure_accuracy(session, splits.select, batch)
    measured.select_top1, measured.select_images = select.top1, select.images
    report = measure_accuracy(session, splits.report, batch)
    measured.top1, measured.top5, measured.images = report.top1, report.top5, report.images
    measured.select_split, measured.report_split = splits.select.name, splits.report.name


def _save(cache: Path, done: dict[str, Measurement]) -> None:
    # errors are not cached: a re-run tries those candidates again
    write_json_atomic(cache, {n: m.to_dict() for n, m in done.items() if m.error is None})


def _open_sessions(runnable: list[Variant], spec: SearchSpec, run_dir: Path,
                   stack: contextlib.ExitStack, done: dict[str, Measurement]
                   ) -> dict[str, Backend]:
    sessions: dict[str, Backend] = {}
    for variant in runnable:
        assert variant.candidate.path is not None
        path = run_dir / variant.candidate.path
        measurement = done.get(variant.name)
        if measurement is None or measurement.error:
            measurement = Measurement(variant.name, variant.backend, _runtime(variant.backend),
                                      size_bytes=path.stat().st_size)
            done[variant.name] = measurement
        try:
            sessions[variant.name] = stack.enter_context(_session(variant.backend, spec, path))
        except EdgevisionError as exc:
            measurement.error = str(exc)
            log(f"[yellow]search: {variant.candidate.name} cannot run on {variant.backend}: "
                f"{exc}[/yellow]")
    return sessions


def _interleaved_rounds(sessions: dict[str, Backend], spec: SearchSpec, eval_set: EvalSet,
                        batches: list[int], done: dict[str, Measurement]
                        ) -> dict[str, dict[int, list[np.ndarray]]]:
    names = list(sessions)
    if not names:
        return {}
    inputs = {batch: eval_set.first(batch) for batch in batches}
    samples: dict[str, dict[int, list[np.ndarray]]] = {n: {b: [] for b in batches}
                                                       for n in names}
    with progress_bar() as bar:
        task = bar.add_task("timing (interleaved)", total=spec.rounds * len(names), status="")
        for round_index in range(spec.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                bar.advance(task)
                if done[name].error:
                    continue
                time.sleep(SETTLE_S)  # the previous session's threads stop spin-waiting
                try:
                    for batch in batches:  # warm up again: the previous candidate ran between
                        samples[name][batch].append(
                            time_runs(sessions[name], inputs[batch], spec.warmup,
                                      spec.iterations))
                except EdgevisionError as exc:  # keep timing the others
                    done[name].error = str(exc)
    return samples


def _timing(batch: int, rounds: list[np.ndarray]) -> Timing:
    every = np.concatenate(rounds)
    p50, p90, p99 = (float(v) for v in np.percentile(every, [50, 90, 99]))
    medians = [float(np.median(r)) for r in rounds]
    return Timing(batch, p50, p90, p99, batch * 1000.0 / p50, min(medians), max(medians),
                  100.0 * (max(medians) - min(medians)) / p50, len(every))


def _load(cache: Path) -> dict[str, Measurement]:
    if not cache.is_file():
        return {}
    data = json.loads(cache.read_text(encoding="utf-8"))
    return {name: Measurement.from_dict(entry) for name, entry in data.items()}
