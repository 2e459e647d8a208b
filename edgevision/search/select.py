"""Choosing the variant: the fastest within the accuracy budget, or the most accurate within
the latency budget — from measured figures only, accuracy on the selection images (never the
images whose accuracy is reported)."""

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


def choose(rows: list[Row], spec: SearchSpec) -> Choice:
    """The chosen row (``Choice.chosen``), or the best reached when no row meets the budget."""
    measured = [r for r in rows if within_budget(r, spec) is not None]
    eligible = [r for r in measured if within_budget(r, spec)]
    if spec.accuracy_budget is not None:
        rule, budget = "fastest within accuracy budget", spec.accuracy_budget
        chosen = min(eligible, key=lambda r: r.p50_ms or 0.0, default=None)
        best = min(measured, key=lambda r: r.select_drop or 0.0, default=None)
        missed = (f"no candidate within {budget} points on the selection images; the smallest "
                  f"drop reached is {best.select_drop:.2f} ({best.name})" if best
                  else "no candidate was measured")
    else:
        assert spec.latency_budget_ms is not None
        rule, budget = "most accurate within latency budget", spec.latency_budget_ms
        chosen = max(eligible, key=lambda r: r.select_top1 or 0.0, default=None)
        best = min(measured, key=lambda r: r.p50_ms or 0.0, default=None)
        missed = (f"no candidate within {budget} ms at batch {spec.batch}; the fastest reached "
                  f"is {best.p50_ms:.2f} ms ({best.name})" if best else
                  "no candidate was measured")
    if chosen is None:
        return Choice(rule=rule, budget=budget, met=False, chosen=None, deployed=None,
                      best_reached=best.name if best else None, message=missed)
    where = "" if "@" in chosen.name else f" ({chosen.backend})"  # @<backend> says it already
    message = (f"chosen {chosen.name}{where}: {chosen.speedup:.2f}x faster than the baseline at "
               f"batch {spec.batch}, top-1 drop {chosen.select_drop:.2f} points on the "
               f"selection images, {chosen.drop:.2f} on the report images")
    return Choice(rule=rule, budget=budget, met=True, chosen=chosen.name, deployed=None,
                  best_reached=chosen.name, message=message)
