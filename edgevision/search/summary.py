"""A Markdown summary page: the choice, the table sorted by latency, the plot."""

from __future__ import annotations

from edgevision.search.report import SearchReport, backends, fmt, slower_note, sorted_rows


def summary_markdown(report: SearchReport) -> str:
    """The page's text (the plot is referenced by its file name, beside the page)."""
    env = report.environment
    lines = [
        "# edgevision search", "",
        f"**{report.choice.message}** (rule: {report.choice.rule}, budget "
        f"{report.choice.budget}; baseline `{report.baseline}`).", "",
        f"Hardware: {env.get('cpu')}, {env.get('cpu_count')} cores; backends: "
        f"{', '.join(backends(report))}; batch {report.batch}; "
        f"timing: {report.settings.get('rounds')} interleaved rounds × "
        f"{report.settings.get('iterations')} runs per candidate and batch after "
        f"{report.settings.get('warmup')} warm-up runs; created {report.created}.", "",
        f"Chosen on {report.settings.get('select_images')} "
        f"{report.settings.get('select_split')} images (sel. top-1, sel. drop); accuracy "
        f"reported on {report.settings.get('eval_images')} {report.settings.get('eval_split')} "
        "images (top-1, drop).", "",
    ]
    if report.plot:
        lines += [f"![latency vs accuracy]({report.plot})", ""]
    lines += ["| variant | backend | precision | size MB | MMACs | sel. top-1 % | sel. drop | "
              f"top-1 % | drop | b1 p50/p99 ms | b{report.batch} p50/p99 ms | spread % | img/s "
              "| speedup | within budget |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted_rows(report.rows):
        name = f"**{row.name}** ★" if row.name == report.choice.chosen else row.name
        if row.error:
            lines.append(f"| {name} | {row.backend} | {row.precision} | | | error: {row.error} "
                         "| | | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {row.backend} | {row.precision} | {fmt(row.size_bytes, 2, 1e6)} "
            f"| {fmt(row.macs, 1, 1e6)} | {fmt(row.select_top1)} | {fmt(row.select_drop)} "
            f"| {fmt(row.top1)} | {fmt(row.drop)} "
            f"| {fmt(row.b1_p50_ms)}/{fmt(row.b1_p99_ms)} | "
            f"{fmt(row.p50_ms)}/{fmt(row.p99_ms)} | {fmt(row.spread_pct, 1)} | "
            f"{fmt(row.throughput_ips, 0)} | {fmt(row.speedup)}x | "
            f"{'yes' if row.within_budget else 'no'}"
            f"{', slower than FP32' if row.slower_than_fp32 else ''} |")
    note = slower_note(report)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"

