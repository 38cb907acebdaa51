"""Output: the console table, results.json and the results.png chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.model import Group, Row

COLUMNS = ("name", "median", "min-max", "ratio", "target", "result", "note")
NOTE_WIDTH = 70
CHART_COLUMNS = 2


def fmt(value: float | None) -> str:
    """About three significant digits, no exponent."""
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2e}"


def _cells(group: Group, row: Row) -> list[str]:
    spread = row.spread
    ratio = group.ratio(row)
    target = group.targets.get(row.name)
    note = row.note if row.status == "ok" else f"{row.status.upper()}: {row.note}"
    return [
        row.name,
        fmt(row.median) if row.usable else row.status,
        f"{fmt(spread[0])}-{fmt(spread[1])}" if spread else "-",
        f"{ratio:.2f}x" if ratio is not None else "-",
        target.label if target else "",
        _result(group, row),
        note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 3] + "...",
    ]


def _result(group: Group, row: Row) -> str:
    """Verdict plus the value it was judged on, e.g. ``miss (1.15x)``."""
    verdict, value = group.verdict(row), group.target_value(row)
    target = group.targets.get(row.name)
    if target is None or value is None:
        return verdict
    shown = fmt(value) if target.relative_to is None else f"{value:.2f}x"
    return f"{verdict} ({shown})"


def render_table(groups: Sequence[Group]) -> str:
    blocks = [[list(COLUMNS)]]
    for group in groups:
        blocks.append([_cells(group, row) for row in group.rows])
    widths = [max(len(r[i]) for b in blocks for r in b) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(blocks[0][0]), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    for group, rows in zip(groups, blocks[1:], strict=True):
        out.append(f"\n== {group.title} [{group.unit}; ratio vs {group.baseline}]")
        if group.note:
            out.append(f"   ({group.note})")
        out.extend(line(cells) for cells in rows)
    return "\n".join(out)


def summary(groups: Sequence[Group]) -> str:
    verdicts = [g.verdict(r) for g in groups for r in g.rows if g.targets.get(r.name)]
    counts = {v: verdicts.count(v) for v in ("hit", "miss", "n/a")}
    return "targets: " + ", ".join(f"{n} {v}" for v, n in counts.items())


def write_json(path: Path, groups: Sequence[Group], meta: dict[str, Any]) -> None:
    data = {"meta": meta, "groups": [g.to_json() for g in groups]}
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_chart(path: Path, groups: Sequence[Group]) -> str:
    """Bar chart of ratios to each group's baseline; returns a status message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: chart skipped (pip install matplotlib)"
    shown = [g for g in groups if any(r.usable for r in g.rows)]
    if not shown:
        return "nothing to chart"
    nrows = math.ceil(len(shown) / CHART_COLUMNS)
    fig, axes = plt.subplots(nrows, CHART_COLUMNS, figsize=(7 * CHART_COLUMNS, 2.6 * nrows), squeeze=False)
    for ax, group in zip(axes.flat, shown, strict=False):
        _draw_group(ax, group)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"


def _draw_group(ax: Any, group: Group) -> None:
    rows = [r for r in group.rows if r.usable]
    ratios = [group.ratio(r) or 0.0 for r in rows]
    colors = [_bar_color(group, r) for r in rows]
    ax.barh([r.name for r in rows], ratios, color=colors)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    for target in group.targets.values():
        if target.relative_to == group.baseline:
            ax.axvline(target.limit, color="tab:red", linestyle="--", linewidth=0.8)
    better = "higher" if group.higher_is_better else "lower"
    ax.set_title(f"{group.title}\n(x {group.baseline}, {better} is better)", fontsize=8)
    ax.tick_params(labelsize=7)


def _bar_color(group: Group, row: Row) -> str:
    return {"hit": "tab:green", "miss": "tab:red"}.get(group.verdict(row), "tab:blue")
