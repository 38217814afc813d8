"""Writing results: JSON lines, a Markdown table and a bar chart of ratios."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._harness import COROSIO, Workload

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
    """Bar charts (log scale) of the corosio_py ratios, one panel per workload."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return None
    all_ratios = ratios(rows, workloads)
    panels = []
    for workload in workloads:
        bars = [
            (row, r) for row, r in all_ratios
            if row["workload"] == workload.name and any(v is not None for v in r.values())
        ]
        if bars:
            panels.append((workload, list(workload.references), bars))
    if not panels:
        return None
    heights = [len(bars) * (0.18 * len(cols) + 0.12) + 0.5 for _, cols, bars in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, sum(heights) + 1.0), sharex=True,
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )
    colors = {"asyncio": "tab:blue", "uvloop": "tab:green", "threadpool": "tab:orange"}
    for ax, (workload, columns, bars) in zip(axes[:, 0], panels, strict=True):
        height = 0.8 / len(columns)
        for i, column in enumerate(columns):
            values = [r.get(column) or math.nan for _, r in bars]
            ys = [y + (i - (len(columns) - 1) / 2) * height for y in range(len(bars))]
            ax.barh(ys, values, height=height, label=f"vs {column}",
                    color=colors.get(column))
        labels = [
            f"{row['implementation']} {row['backend']} {row['threads']}t: {row['figure']}"
            for row, _ in bars
        ]
        ax.set_yticks(range(len(bars)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(f"{workload.name}", fontsize=9, loc="left")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("corosio_py vs reference, times better (>1: corosio_py better; log)")
    fig.suptitle(
        f"corosio_py ratios ({info['suite']} suite, median of {info['reps']}), "
        f"Python {info['python']}, {info['cpu_model']} x{info['cores']}, {info['date'][:10]}",
        fontsize=9,
    )
    total = sum(heights) + 1.0
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / total))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
