"""The driver: ``python -m tools.bench``.

It runs one excluded warm-up of every cell, then the timed repetitions
interleaved (rep 1 of every cell, then rep 2, ...), each run a fresh
worker process (:mod:`tools.bench._worker`), and reduces each (cell,
figure) to median, min and max.  Results go to
``bench-results/latest.{json,md,png}`` (:mod:`tools.bench._report`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._spec import COROSIO, PYTHON_VERSION, Cell, Workload

ROOT = Path(__file__).resolve().parents[2]



def run_cell(cell: Cell, size: str, timeout: float, params: Iterable[str] = ()) -> dict[str, Any]:
    """Run one cell once in a fresh subprocess; return its JSON record.

    A crash, a timeout or missing output gives ``{"ok": False, "error": ...}``.
    """
    cmd = [
        sys.executable, "-m", f"tools.bench.{cell.workload}",
        "--impl", cell.impl, "--threads", str(cell.threads), "--size", size,
    ]
    if cell.family == COROSIO:
        cmd += ["--backend", cell.backend]
    for item in params:
        cmd += ["--param", item]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                record: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                break
            if not record.get("ok") and proc.stderr:
                record["stderr"] = proc.stderr[-2000:]
            return record
    tail = (proc.stderr or proc.stdout)[-2000:]
    return {"ok": False, "error": f"exit {proc.returncode}, no result line", "stderr": tail}


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def aggregate(
    workloads: Sequence[Workload],
    cells: Mapping[str, Sequence[Cell]],
    runs: Mapping[Cell, Sequence[dict[str, Any]]],
    *,
    size: str,
    warmup: int,
) -> list[dict[str, Any]]:
    """Reduce the runs of every cell to result rows (one per figure)."""
    rows: list[dict[str, Any]] = []
    for workload in workloads:
        for cell in cells[workload.name]:
            records = runs.get(cell, [])
            good = [r for r in records if r.get("ok")]
            errors = sorted({str(r.get("error")) for r in records if not r.get("ok")})
            for fig in workload.figures:
                values = [float(r["figures"][fig.key]) for r in good]
                row = _row(workload, cell, fig.key, fig.label, fig.unit,
                           fig.higher_is_better, values, size=workload.size(size),
                           warmup=warmup)
                row["failures"] = len(records) - len(good)
                if errors:
                    row["errors"] = errors
                if fig.latency:
                    p50 = [float(r["latency"][fig.key][0]) for r in good]
                    p99 = [float(r["latency"][fig.key][1]) for r in good]
                    row["p50"] = statistics.median(p50) if p50 else None
                    row["p99"] = statistics.median(p99) if p99 else None
                if good:
                    row["params"] = good[0].get("params")
                    extras = [r.get("extra") or {} for r in good]
                    numeric = {
                        k for k, v in extras[0].items() if isinstance(v, int | float)
                    }
                    row["extra_median"] = {
                        k: statistics.median(float(e[k]) for e in extras if k in e)
                        for k in sorted(numeric)
                    }
                rows.append(row)
        if workload.scaling:
            rows.extend(_scaling_rows(workload, cells[workload.name], runs,
                                      workload.size(size), warmup))
    return rows


def _row(
    workload: Workload, cell: Cell, key: str, label: str, unit: str,
    higher_is_better: bool, values: Sequence[float], *, size: str, warmup: int,
) -> dict[str, Any]:
    median, low, high = _spread(values) if values else (None, None, None)
    return {
        "workload": workload.name,
        "implementation": cell.impl,
        "figure": label,
        "figure_key": key,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "python": PYTHON_VERSION,
        "backend": cell.backend,
        "threads": cell.threads,
        "warmup_excluded": warmup,
        "runs": len(values),
        "median": median,
        "min": low,
        "max": high,
        "values": list(values),
        "failures": 0,
        "size": size,
    }


def _scaling_rows(
    workload: Workload,
    cells: Sequence[Cell],
    runs: Mapping[Cell, Sequence[dict[str, Any]]],
    size: str,
    warmup: int,
) -> list[dict[str, Any]]:
    """Speed-up of each corosio_py N-thread cell over its 1-thread cell.

    Runs are paired by repetition (they ran back to back in the same
    interleaved rep), so the ratio's spread is the spread of the pairs.
    """
    key = workload.scaling
    assert key is not None
    fig = workload.figure(key)
    base = {
        (c.impl, c.backend): c
        for c in cells
        if c.family == COROSIO and c.threads == 1
    }
    multi = {c.impl for c in cells if c.threads > 1}
    rows = []
    for cell in cells:
        one = base.get((cell.impl, cell.backend))
        if one is None or cell.family != COROSIO or cell.impl not in multi:
            continue
        ratios = []
        for mine, ref in zip(runs.get(cell, []), runs.get(one, []), strict=False):
            if mine.get("ok") and ref.get("ok"):
                ratios.append(float(mine["figures"][key]) / float(ref["figures"][key]))
        rows.append(_row(workload, cell, f"{key}_vs_1thread",
                         f"{fig.label} vs 1 thread", "x", True, ratios,
                         size=size, warmup=warmup))
    return rows


def machine_info() -> dict[str, Any]:
    """Processor name, CPU model, core count, OS and the git revision."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "processor": platform.processor(),
        "cpu_model": model or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": PYTHON_VERSION,
        "python_implementation": platform.python_implementation(),
    }
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "corosio_py"], cwd=ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        info["git"] = rev + (" + uncommitted corosio_py changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = "unknown"
    return info


def _parse_list(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.bench``: run the suite and write bench-results/latest.*."""
    from . import WORKLOADS, load

    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="corosio_py vs asyncio / uvloop / trio / pure-Python floors.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="about one minute: smaller N, fewer reps, default backend only")
    parser.add_argument("--workload", action="append",
                        help=f"only these (comma-separated or repeated): {', '.join(WORKLOADS)}")
    parser.add_argument("--impl", action="append", help="only these implementations")
    parser.add_argument("--backend", action="append",
                        help="corosio_py backends (default: all available; --quick: the default)")
    parser.add_argument("--size", default=None,
                        help="a workload size: full (default), quick (--quick) or anchor "
                        "(the reference measurements; workloads without it run full)")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed repetitions per cell (default 3; --quick 2)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up round")
    parser.add_argument("--out", default=str(ROOT / "bench-results"),
                        help="output directory (default: bench-results)")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    ns = parser.parse_args(argv)

    import corosio_py

    names = _parse_list(ns.workload) or [n for n in WORKLOADS if load(n).suite]
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    workloads = []
    for name in names:
        workload = load(name)
        reason = workload.unavailable() if workload.unavailable else None
        if reason:
            print(f"skipping workload {name}: {reason}", flush=True)
        else:
            workloads.append(workload)
    available = list(corosio_py.available_backends())
    backends = _parse_list(ns.backend) or (available[:1] if ns.quick else available)
    for backend in backends:
        if backend not in available:
            parser.error(f"backend {backend!r} not available; available: {available}")
    impl_filter = set(_parse_list(ns.impl))
    size = ns.size or ("quick" if ns.quick else "full")
    reps = ns.reps if ns.reps is not None else (2 if ns.quick else 3)
    warmup = 0 if ns.no_warmup else 1
    #: Timed reps of each workload (a workload may ask for fewer than the default).
    workload_reps = {
        w.name: reps if ns.reps is not None or not w.reps else min(w.reps, reps)
        for w in workloads
    }

    cells: dict[str, list[Cell]] = {}
    for workload in workloads:
        selected = [
            c for c in workload.cells(ns.quick, backends, named=sorted(impl_filter))
            if not impl_filter or c.impl in impl_filter
        ]
        cells[workload.name] = selected
    total_cells = sum(len(v) for v in cells.values())
    if ns.list:
        for workload in workloads:
            for cell in cells[workload.name]:
                print(f"{workload.name:20} {cell.label}")
        fewer = {k: v for k, v in workload_reps.items() if v != reps}
        print(f"{total_cells} cells x ({warmup} warm-up + {reps} reps)"
              + (f"; reps of {fewer}" if fewer else ""))
        return 0

    print(
        f"corosio_py bench ({size}): {len(workloads)} workloads, {total_cells} cells, "
        f"{warmup} warm-up + {reps} interleaved reps; python {PYTHON_VERSION}; "
        f"backends {', '.join(backends)}",
        flush=True,
    )
    started = time.monotonic()
    runs: dict[Cell, list[dict[str, Any]]] = {}
    rounds = [("warm-up", True)] * warmup + [(f"rep {i}/{reps}", False) for i in range(1, reps + 1)]
    for index, (round_name, is_warmup) in enumerate(rounds):
        for workload in workloads:
            if not is_warmup and index - warmup >= workload_reps[workload.name]:
                continue
            t0 = time.monotonic()
            failed = []
            timeout = workload.timeout / (3 if ns.quick else 1)
            todo = cells[workload.name]
            if is_warmup and not workload.warmup_all:
                todo = todo[:1]
            for cell in todo:
                # The warm-up runs at the quick size: it exists to fill the OS
                # and bytecode caches, not to be measured.
                record = run_cell(cell, "quick" if is_warmup else workload.size(size), timeout)
                if not record.get("ok"):
                    failed.append(f"{cell.label}: {record.get('error')}")
                if not is_warmup:
                    runs.setdefault(cell, []).append(record)
            total = _fmt_seconds(time.monotonic() - started)
            print(
                f"[{round_name:>9}] {workload.name:18} {len(todo):2} cells "
                f"{time.monotonic() - t0:6.1f} s  (total {total})"
                + (f"  FAILED: {'; '.join(failed)}" if failed else ""),
                flush=True,
            )

    rows = aggregate(workloads, cells, runs, size=size, warmup=warmup)
    info = machine_info()
    info.update(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        suite=size, reps=reps, warmup_excluded=warmup, backends=backends,
        duration_s=round(time.monotonic() - started, 1),
    )
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    from ._report import write_json, write_markdown, write_png

    write_json(out / "latest.json", rows)
    write_markdown(out / "latest.md", rows, workloads, info)
    png = write_png(out / "latest.png", rows, workloads, info)
    print(f"wrote {out / 'latest.json'}, {out / 'latest.md'}" + (f", {png}" if png else ""))
    print(f"done in {_fmt_seconds(time.monotonic() - started)}")
    failures = sum(1 for r in rows if r["failures"])
    return 1 if failures else 0
