"""Writing results: JSON lines, a Markdown table and a bar chart of ratios."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._spec import COROSIO, Workload

Row = dict[str, Any]
#: En dash: "no value" and ranges, as in the reference measurements.
DASH = "\u2013"


def write_json(path: Path, rows: Sequence[Row]) -> None:
    """One JSON object per line, one line per (cell, figure)."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=False) + "\n")


def fmt(value: float | None) -> str:
    """A number the way the reference measurements prints them (352k, 1,234, 5.47)."""
    if value is None or not math.isfinite(value):
        return DASH
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value / 1000:,.0f}k"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def reference_row(rows: Sequence[Row], row: Row, impl: str) -> Row | None:
    """The row of implementation ``impl`` for the same workload and figure."""
    for other in rows:
        if (
            other["workload"] == row["workload"]
            and other["figure_key"] == row["figure_key"]
            and other["implementation"] == impl
            and other["median"] is not None
        ):
            return other
    return None


def ratio(row: Row, ref: Row | None) -> float | None:
    """How many times better ``row`` is than ``ref`` (>1: row is better)."""
    if ref is None or row["median"] is None or not ref["median"] or not row["median"]:
        return None
    if row["higher_is_better"]:
        return float(row["median"]) / float(ref["median"])
    return float(ref["median"]) / float(row["median"])


def ratios(
    rows: Sequence[Row], workloads: Sequence[Workload]
) -> list[tuple[Row, dict[str, float | None]]]:
    """Every corosio_py row with its ratio to each reference implementation."""
    refs = {w.name: w.references for w in workloads}
    out = []
    for row in rows:
        if not row["implementation"].startswith(COROSIO):
            continue
        columns = refs.get(row["workload"], {})
        out.append((row, {col: ratio(row, reference_row(rows, row, impl))
                          for col, impl in columns.items()}))
    return out


def _fmt_ratio(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def write_markdown(
    path: Path, rows: Sequence[Row], workloads: Sequence[Workload], info: Mapping[str, Any]
) -> None:
    """A table per workload with each corosio_py figure's ratio to asyncio/uvloop."""
    by_row = {id(row): r for row, r in ratios(rows, workloads)}
    lines = [
        "# corosio_py benchmarks",
        "",
        f"* Date: {info['date']}; suite: {info['suite']} "
        f"({info['warmup_excluded']} warm-up run excluded, median of {info['reps']} "
        f"interleaved runs per cell, each in a fresh process); took {info['duration_s']} s.",
        f"* Python: {info['python_implementation']} {info['python']}; "
        f"machine: processor {info['processor'] or '(empty)'!r}, "
        f"CPU {info['cpu_model']!r}, {info['cores']} cores; {info['platform']}.",
        f"* corosio_py: git {info['git']}; backends: {', '.join(info['backends'])}.",
        "* `x asyncio` / `x uvloop` (/ `x threadpool`): how many times better the corosio_py "
        "figure is than the reference implementation's figure measured in this same run "
        "(>1 = corosio_py better; for lower-is-better figures it is reference / corosio_py).",
        "* Noise: a 2-vCPU VM shared with other jobs; ±20-35% run to run is normal "
        ", so only ratios beyond ~1.5x are meaningful. min-max is the full "
        "range of the runs.",
        "",
    ]
    lines += _summary(rows, workloads, by_row, info)
    for workload in workloads:
        mine = [r for r in rows if r["workload"] == workload.name]
        if not mine:
            continue
        columns = list(workload.references)
        refs = ", ".join(f"{k} = `{v}`" for k, v in workload.references.items())
        lines += [
            f"## {workload.name}: {workload.title}",
            "",
            f"Parameters: `{mine[0].get('params')}`; references: {refs}.",
            "",
            "| implementation | backend | threads | figure | unit | median | min-max | p50 | "
            "p99 | runs | " + " | ".join(f"x {c}" for c in columns) + " |",
            "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(columns),
        ]
        for row in mine:
            r = by_row.get(id(row), {})
            arrow = "↑" if row["higher_is_better"] else "↓"
            status = str(row["runs"])
            if row["failures"]:
                status += f" ({row['failures']} FAILED)"
            lines.append(
                f"| {row['implementation']} | {row['backend']} | {row['threads']} | "
                f"{row['figure']} | {row['unit']} {arrow} | **{fmt(row['median'])}** | "
                f"{fmt(row['min'])}{DASH}{fmt(row['max'])} | {fmt(row.get('p50'))} | "
                f"{fmt(row.get('p99'))} | {status} | "
                + " | ".join(_fmt_ratio(r.get(c)) for c in columns)
                + " |"
            )
        errors = sorted({e for row in mine for e in row.get("errors", ())})
        if errors:
            lines.append("")
            lines.extend(f"* error: `{e}`" for e in errors)
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _summary(
    rows: Sequence[Row],
    workloads: Sequence[Workload],
    by_row: Mapping[int, dict[str, float | None]],
    info: Mapping[str, Any],
) -> list[str]:
    """Headline: every corosio_py figure on the default backend, with ratios."""
    backend = info["backends"][0] if info.get("backends") else None
    lines = [
        f"## Summary (corosio_py on {backend})",
        "",
        "| workload | implementation | threads | figure | median | x asyncio | x uvloop |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        for row in rows:
            if (
                row["workload"] != workload.name
                or id(row) not in by_row
                or row["backend"] != backend
            ):
                continue
            r = by_row[id(row)]
            lines.append(
                f"| {row['workload']} | {row['implementation']} | {row['threads']} | "
                f"{row['figure']} ({row['unit']}) | {fmt(row['median'])} | "
                f"{_fmt_ratio(r.get('asyncio'))} | {_fmt_ratio(r.get('uvloop'))} |"
            )
    return [*lines, ""]


def write_png(
    path: Path, rows: Sequence[Row], workloads: Sequence[Workload], info: Mapping[str, Any]
) -> Path | None:
    """One compact chart: per workload, the headline corosio_py figure's ratio
    to asyncio and to uvloop (one bar group each, log scale, 1 = level).

    The headline is the workload's first figure, for its first corosio_py
    implementation on the default backend; every other ratio is in the
    markdown report.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return None
    backend = info["backends"][0] if info.get("backends") else None
    groups: list[tuple[str, dict[str, float | None]]] = []
    for workload in workloads:
        key = workload.figures[0].key
        for row, r in ratios(rows, workloads):
            if (
                row["workload"] == workload.name
                and row["backend"] == backend
                and row.get("figure_key", key) == key
                and (r.get("asyncio") is not None or r.get("uvloop") is not None)
            ):
                groups.append((f"{workload.name}\n{row['implementation']} {row['threads']}t", r))
                break
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(groups) + 2.0), 4.2))
    width = 0.38
    for i, (column, color) in enumerate((("asyncio", "tab:blue"), ("uvloop", "tab:green"))):
        xs = [x + (i - 0.5) * width for x in range(len(groups))]
        values = [r.get(column) or math.nan for _, r in groups]
        ax.bar(xs, values, width=width, label=f"vs {column}", color=color)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8]))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups], fontsize=6, rotation=45,
                  ha="right")
    ax.set_ylabel("times better than the peer (>1: corosio_py ahead)", fontsize=7)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"corosio_py vs asyncio / uvloop, {backend}, median of {info['reps']}: "
        f"Python {info['python']}, {info['cpu_model']} x{info['cores']}, {info['date'][:10]}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
