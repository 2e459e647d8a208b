"""Building the candidates: each pruning level once (prune → distill → export), then its
precisions (quantize stage); every level is cached in the run directory so a re-run or
``--resume`` skips it."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevision.errors import EdgevisionError
from edgevision.io import write_json_atomic
from edgevision.progress import log
from edgevision.recipe.search import SearchSpec
from edgevision.rundir import RunDir, quantized_file
from edgevision.stages import get_stage

if TYPE_CHECKING:
    from edgevision.search.splits import Splits
    from edgevision.stages.state import PipelineState

LEVEL_FILE = "level.json"
#: the quantize stage's graph kind for each search precision (fp32: the exported model.onnx)
PRECISION_KINDS = {"fp16": "fp16", "int8": "int8", "int8-mixed": "int8-mixed", "qat": "int8-qat"}


def precision_file(precision: str, target: str) -> str:
    """The file a level holds for a search precision, for the quantize target."""
    return "model.onnx" if precision == "fp32" else quantized_file(PRECISION_KINDS[precision],
                                                                   target)


@dataclass
class Candidate:
    """One variant to measure: a pruning level in a precision (or the error that stopped it)."""

    name: str
    level: float
    precision: str
    path: str | None  # relative to the run directory
    macs: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def level_name(level: float) -> str:
    """``base`` for the unpruned model, else ``pruned<percent of MACs removed>``."""
    return "base" if level == 0 else f"pruned{level * 100:g}"


def _level_folder(run_root: Path, level: float) -> Path:
    """Where a level's models, checkpoints and ``level.json`` live in the run directory."""
    return run_root / "search" / level_name(level)


def build_candidates(state: PipelineState, spec: SearchSpec, splits: Splits
                     ) -> list[Candidate]:
    """All candidates of the search, building the levels not built yet (the quantize budgets
    measured on ``splits.select``)."""
    candidates: list[Candidate] = []
    for level in spec.prune_levels:
        candidates += _level(state, spec, level, splits)
    return candidates


def _level(state: PipelineState, spec: SearchSpec, level: float, splits: Splits
           ) -> list[Candidate]:
    folder = _level_folder(state.run.path, level)
    done = folder / LEVEL_FILE
    if done.is_file():
        log(f"search: {level_name(level)} already built (cached in {folder})")
        return [Candidate(**c) for c in json.loads(done.read_text(encoding="utf-8"))]
    log(f"search: building {level_name(level)} ({100 * (1 - level):.0f}% of the MACs)")
    try:
        candidates = _build_level(state, spec, level, folder, splits)
    except EdgevisionError as exc:
        log(f"[yellow]search: {level_name(level)} failed: {exc}[/yellow]")
        return [Candidate(f"{level_name(level)}/{p}", level, p, None, error=str(exc))
                for p in spec.precisions]  # not cached: a re-run tries again
    write_json_atomic(done, [c.to_dict() for c in candidates])
    return candidates


def _build_level(state: PipelineState, spec: SearchSpec, level: float,
                 folder: Path, splits: Splits) -> list[Candidate]:
    from edgevision.stages.state import PipelineState, export_models, save_models

    folder.mkdir(parents=True, exist_ok=True)
    sub = PipelineState(state.recipe, RunDir(folder), state.dataset, copy.deepcopy(state.model),
                        resume=state.resume, original=copy.deepcopy(state.model.module).eval())
    if level > 0:
        get_stage("prune").handler(spec.prune_config(level), sub)
        distill = spec.distill_config()
        if distill is not None:
            get_stage("distill").handler(distill, sub)
    save_models(sub)
    export_models(sub)
    target = spec.quantize_config(["int8"]).target
    derived: list[str] = [p for p in ("int8", "fp16") if p in spec.precisions
               or (p == "int8" and {"int8-mixed", "qat"} & set(spec.precisions))]
    if derived:
        budget = _quantize_budget(state, spec, level, splits)
        get_stage("quantize").handler(spec.quantize_config(derived, budget), sub)
    macs = sub.info["model"]["macs"]
    run_root = state.run.path
    candidates = []
    for precision in spec.precisions:
        path = folder / precision_file(precision, target)
        if path.is_file():
            candidates.append(Candidate(f"{level_name(level)}/{precision}", level, precision,
                                        path.relative_to(run_root).as_posix(), macs))
        else:  # int8-mixed / qat exist only when PTQ missed a budget it could still meet
            log(f"search: {level_name(level)}/{precision} not built (INT8 PTQ met the "
                "remaining budget, or pruning alone already spent it)")
    return candidates


def _quantize_budget(state: PipelineState, spec: SearchSpec, level: float, splits: Splits
                     ) -> float | None:
    """The accuracy budget left to quantization at this level: the search's budget minus what
    pruning already cost, the FP32 top-1 of this level against the unpruned model on the
    selection images (None: no FP32 fallback or QAT variant is worth building, or none was
    asked for)."""
    wanted = {"int8-mixed", "qat"} & set(spec.precisions)
    if not wanted or spec.accuracy_budget is None:
        return None
    if level == 0:
        return spec.accuracy_budget
    pruning_cost = (_fp32_top1(state, spec, 0.0, splits)
                    - _fp32_top1(state, spec, level, splits))
    remaining = round(spec.accuracy_budget - pruning_cost, 6)  # top-1s are k/N: no 0.2399999
    where = f"the {len(splits.select)} {splits.select.name} images"
    if remaining <= 0:
        log(f"search: pruning to {level_name(level)} alone costs {pruning_cost:.2f} points on "
            f"{where} (budget {spec.accuracy_budget}): no {'/'.join(sorted(wanted))} variant "
            "can meet it, none is built")
        return None
    log(f"search: pruning to {level_name(level)} costs {pruning_cost:.2f} points on {where}; "
        f"{remaining:.2f} are left to quantization")
    return remaining


def _fp32_top1(state: PipelineState, spec: SearchSpec, level: float, splits: Splits) -> float:
    """A level's FP32 top-1 on the selection images (measured once: the search's measurements
    cache it)."""
    from edgevision.search.measure import MEASUREMENTS_FILE, candidate_accuracy

    run_root = state.run.path
    model = _level_folder(run_root, level) / precision_file("fp32", "cpu")
    candidate = Candidate(f"{level_name(level)}/fp32", level, "fp32",
                          model.relative_to(run_root).as_posix())
    measured = candidate_accuracy(candidate, spec, splits, run_root,
                                  run_root / MEASUREMENTS_FILE)
    assert measured.select_top1 is not None
    return measured.select_top1
