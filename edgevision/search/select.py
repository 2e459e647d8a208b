"""Choosing the variant: the fastest within the accuracy budget, or the most accurate within
the latency budget — from measured figures only, accuracy on the selection images (never the
images whose accuracy is reported). A reduced-precision candidate slower than its level's FP32
candidate on the same backend is never chosen: it only exists to be faster."""

from __future__ import annotations

from edgevision.recipe.search import SearchSpec
from edgevision.search.report import Choice, Row


def within_budget(row: Row, spec: SearchSpec) -> bool | None:
    """Whether a measured row meets the search's budget (None for failed rows)."""
    if row.error or row.p50_ms is None or row.select_drop is None:
        return None
    if spec.accuracy_budget is not None:
        return row.select_drop <= spec.accuracy_budget
    assert spec.latency_budget_ms is not None
    return row.p50_ms <= spec.latency_budget_ms


def fp32_of(row: Row, rows: list[Row]) -> Row | None:
    """The measured FP32 candidate of ``row``'s pruning level on its backend, if any."""
    return next((r for r in rows if r.precision == "fp32" and r.level == row.level
                 and r.backend == row.backend and not r.error and r.p50_ms is not None), None)


def slower_than_fp32(row: Row, rows: list[Row]) -> bool | None:
    """Whether a reduced-precision ``row``'s p50 at the search batch is above its level's FP32
    candidate's on the same backend (None: an FP32 row, or nothing to compare)."""
    fp32 = fp32_of(row, rows)
    if row.precision == "fp32" or row.error or row.p50_ms is None or fp32 is None:
        return None
    assert fp32.p50_ms is not None
    return row.p50_ms > fp32.p50_ms


def choose(rows: list[Row], spec: SearchSpec) -> Choice:
    """The chosen row (``Choice.chosen``), or the best reached when no row meets the budget;
    the message names a candidate passed over for being slower than its FP32 candidate."""
    measured = [r for r in rows if within_budget(r, spec) is not None]
    budgeted = [r for r in measured if within_budget(r, spec)]
    chosen = _best(spec, [r for r in budgeted if not slower_than_fp32(r, rows)])
    passed = _best(spec, budgeted)
    note = _passed_over(passed, rows, spec) if passed and slower_than_fp32(passed, rows) else ""
    rule, budget = _rule(spec)
    if chosen is None:
        best = _best_reached(spec, measured)
        why = ("every candidate within the budget is slower than its level's FP32 candidate"
               if budgeted else _missed(spec, best))
        return Choice(rule=rule, budget=budget, met=False, chosen=None, deployed=None,
                      best_reached=best.name if best else None, message=why + note)
    where = "" if "@" in chosen.name else f" ({chosen.backend})"  # @<backend> says it already
    message = (f"chosen {chosen.name}{where}: {chosen.speedup:.2f}x faster than the baseline at "
               f"batch {spec.batch}, top-1 drop {chosen.select_drop:.2f} points on the "
               f"selection images, {chosen.drop:.2f} on the report images")
    return Choice(rule=rule, budget=budget, met=True, chosen=chosen.name, deployed=None,
                  best_reached=chosen.name, message=message + note)


def _rule(spec: SearchSpec) -> tuple[str, float]:
    if spec.accuracy_budget is not None:
        return "fastest within accuracy budget", spec.accuracy_budget
    assert spec.latency_budget_ms is not None
    return "most accurate within latency budget", spec.latency_budget_ms


def _best(spec: SearchSpec, eligible: list[Row]) -> Row | None:
    """What the rule picks among ``eligible`` rows (all within the budget)."""
    if spec.accuracy_budget is not None:
        return min(eligible, key=lambda r: r.p50_ms or 0.0, default=None)
    return max(eligible, key=lambda r: r.select_top1 or 0.0, default=None)


def _best_reached(spec: SearchSpec, measured: list[Row]) -> Row | None:
    """The closest to the budget: the smallest drop, or the fastest."""
    if spec.accuracy_budget is not None:
        return min(measured, key=lambda r: r.select_drop or 0.0, default=None)
    return min(measured, key=lambda r: r.p50_ms or 0.0, default=None)


def _missed(spec: SearchSpec, best: Row | None) -> str:
    if best is None:
        return "no candidate was measured"
    if spec.accuracy_budget is not None:
        return (f"no candidate within {spec.accuracy_budget} points on the selection images; "
                f"the smallest drop reached is {best.select_drop:.2f} ({best.name})")
    return (f"no candidate within {spec.latency_budget_ms} ms at batch {spec.batch}; the "
            f"fastest reached is {best.p50_ms:.2f} ms ({best.name})")


def _passed_over(row: Row, rows: list[Row], spec: SearchSpec) -> str:
    """``; passed over pruned50/int8 (the fastest within budget): 2.31 ms p50 at batch 1,
    slower than pruned50/fp32 (1.98 ms)``."""
    fp32 = fp32_of(row, rows)
    assert fp32 is not None
    which = "fastest" if spec.accuracy_budget is not None else "most accurate"
    return (f"; passed over {row.name} (the {which} within budget): {row.p50_ms:.2f} ms p50 at "
            f"batch {spec.batch}, slower than {fp32.name} ({fp32.p50_ms:.2f} ms)")
