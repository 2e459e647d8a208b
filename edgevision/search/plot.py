"""The latency-vs-accuracy Pareto plot (matplotlib, optional extra ``edgevision[plot]``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgevision.io import atomic_path
from edgevision.search.report import SearchReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: one colour per backend, the target's first (the frontier, budget and choice have their own)
BACKEND_COLORS = ("tab:blue", "tab:purple", "tab:brown", "tab:gray")


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (latency, top-1, name) points no other point beats on both (faster and as accurate,
    or as fast and more accurate), sorted by latency."""
    front: list[tuple[float, float, str]] = []
    for latency, top1, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or top1 > front[-1][1]:
            front.append((latency, top1, name))
    return front


def pareto_plot(report: SearchReport, path: Path) -> Path:
    """Write the plot: every measured candidate, the frontier, the budget line, the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r.p50_ms is not None and r.select_top1 is not None]
    points = [(float(r.p50_ms or 0.0), float(r.select_top1 or 0.0), r.name) for r in rows]
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=120)
    measured_backends = dict.fromkeys(r.backend for r in rows)  # the target's first
    for backend, color in zip(measured_backends, BACKEND_COLORS, strict=False):
        mine = [r for r in rows if r.backend == backend]
        axes.scatter([float(r.p50_ms or 0.0) for r in mine],
                     [float(r.select_top1 or 0.0) for r in mine], color=color, zorder=3,
                     label=f"candidate on {backend}")
    target = report.rows[0].backend if report.rows else ""
    for row in rows:  # the colour says the backend; other backends' labels go below the point
        axes.annotate(row.name.split("@")[0],
                      (float(row.p50_ms or 0.0), float(row.select_top1 or 0.0)),
                      textcoords="offset points", fontsize=8,
                      xytext=(5, 4) if row.backend == target else (5, -11))
    front = pareto_front(points)
    axes.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:green",
              label="Pareto frontier")
    _budget_line(axes, report)
    chosen = next((r for r in rows if r.name == report.choice.chosen), None)
    if chosen is not None:
        axes.scatter([float(chosen.p50_ms or 0.0)], [float(chosen.select_top1 or 0.0)], marker="*",
                     s=320, color="tab:red", zorder=4, label=f"chosen: {chosen.name}")
    env = report.environment
    latencies = [p[0] for p in points if p[0] > 0]
    log_scale = bool(latencies) and max(latencies) > 10 * min(latencies)
    if log_scale:  # a fast frontier would be squeezed against the axis otherwise
        from matplotlib.ticker import FuncFormatter

        axes.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 3, 4, 10, 20, not 3×10⁰
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(plain)
    axes.set_xlabel(f"p50 latency at batch {report.batch} (ms{', log scale' if log_scale else ''}"
                    f", {env.get('cpu_count')} cores)")
    axes.set_ylabel(f"top-1 accuracy (%, {report.settings.get('select_split', 'selection')} "
                    "images: what the choice used)")
    axes.set_title(f"latency vs accuracy — {env.get('cpu')}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(figure)
    return path


def _budget_line(axes: Axes, report: SearchReport) -> None:
    baseline = next((r for r in report.rows if r.name == report.baseline), None)
    if report.choice.rule.startswith("fastest") and baseline and baseline.select_top1 is not None:
        level = baseline.select_top1 - report.choice.budget
        axes.axhline(level, color="tab:orange", linestyle="--",
                     label=f"accuracy budget ({report.choice.budget} points below "
                           f"{report.baseline})")
    elif report.choice.rule.startswith("most"):
        axes.axvline(report.choice.budget, color="tab:orange",
                     linestyle="--", label=f"latency budget ({report.choice.budget} ms)")
