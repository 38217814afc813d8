"""Task-level benchmarks: coroutine resumes and 100,000 timers, with ratios.

Runs two workloads of :mod:`tools.bench` (``coroutine_resumes`` and
``timers``), each run of each implementation in a fresh subprocess, the
repetitions interleaved, and prints medians and the corosio_py ratios to
asyncio (``sleep(0)``; ``asyncio.sleep`` tasks and ``call_later``), uvloop
and trio measured in the same run::

    python tools/bench_tasks.py [--reps 3] [--quick] [--backend epoll]

Ratios are "times better": higher-is-better figures divide corosio_py by the
reference, lateness divides the reference by corosio_py.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (workload, implementations, reference columns: label -> implementation)
PLAN: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    (
        "coroutine_resumes",
        ("corosio_py", "corosio_py_hint1", "asyncio", "uvloop", "trio", "floor_trampoline"),
        {"asyncio sleep(0)": "asyncio", "uvloop sleep(0)": "uvloop", "trio sleep(0)": "trio"},
    ),
    (
        "timers",
        ("corosio_py", "corosio_py_hint1", "asyncio_tasks", "uvloop_tasks",
         "asyncio_call_later", "uvloop_call_later", "trio", "floor_heap"),
        {"asyncio tasks": "asyncio_tasks", "uvloop tasks": "uvloop_tasks",
         "asyncio call_later": "asyncio_call_later", "trio": "trio"},
    ),
)


def main(argv: list[str] | None = None) -> int:
    from tools.bench import load
    from tools.bench._harness import Cell, run_cell

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the quick sizes (smaller N)")
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--no-trio", action="store_true")
    ns = parser.parse_args(argv)
    size = "quick" if ns.quick else "full"

    import corosio_py

    backend = ns.backend or corosio_py.available_backends()[0]
    plan = []
    for name, impls, refs in PLAN:
        workload = load(name)
        chosen = [i for i in impls if not (ns.no_trio and i.startswith("trio"))]
        cells = [workload.cell(i, backend) for i in chosen]
        refs = {k: v for k, v in refs.items() if v in chosen}
        plan.append((workload, cells, refs))
    print(f"task benchmarks ({size} size, corosio_py backend {backend}, {ns.reps} interleaved "
          f"reps, fresh process per run; Python {platform.python_version()}; "
          "noisy 2-core VM: compare only ratios beyond ~1.5x)", flush=True)

    runs: dict[Cell, list[dict[str, Any]]] = {}
    for rep in range(ns.reps):
        for workload, cells, _ in plan:
            for cell in cells:
                record = run_cell(cell, size, workload.timeout)
                if not record.get("ok"):
                    print(f"  {cell.label}: FAILED: {record.get('error')}", flush=True)
                runs.setdefault(cell, []).append(record)
        print(f"  rep {rep + 1}/{ns.reps} done", flush=True)

    for workload, cells, refs in plan:
        params = next((r["params"] for c in cells for r in runs[c] if r.get("ok")), {})
        print(f"\n{workload.name}: {workload.title} {params}")
        for fig in workload.figures:
            def median(cell: Cell, key: str = fig.key) -> float | None:
                values = [float(r["figures"][key]) for r in runs[cell] if r.get("ok")]
                return statistics.median(values) if values else None

            by_impl = {c.impl: median(c) for c in cells}
            arrow = "higher is better" if fig.higher_is_better else "lower is better"
            header = f"  {fig.label} ({fig.unit}, {arrow})"
            print(header)
            cols = "".join(f" {'x ' + label:>20}" for label in refs)
            print(f"  {'implementation':22} {'median':>12} {'[min - max]':>25}{cols}")
            for cell in cells:
                values = [float(r["figures"][fig.key]) for r in runs[cell] if r.get("ok")]
                if not values:
                    print(f"  {cell.impl:22} {'FAILED':>12}")
                    continue
                mid = statistics.median(values)
                lo, hi = min(values), max(values)
                line = f"  {cell.impl:22} {mid:12,.1f} [{lo:11,.1f} - {hi:11,.1f}]"
                if cell.impl.startswith("corosio_py"):
                    for impl in refs.values():
                        ref = by_impl.get(impl)
                        if not ref:
                            line += f" {'-':>20}"
                            continue
                        ratio = mid / ref if fig.higher_is_better else ref / mid
                        line += f" {ratio:20.2f}"
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
