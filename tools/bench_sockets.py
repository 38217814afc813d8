"""Socket benchmarks: latency, throughput, fan-out and accept churn, with ratios.

Runs four workloads of :mod:`tools.bench`, each run of each implementation in
a fresh subprocess, the repetitions interleaved, and prints medians and
every corosio_py ratio to asyncio streams, asyncio protocols (or the
low-level ``sock_*`` API for accept churn), uvloop, trio and a minimal
hand-written ``select.epoll`` loop (the pure-Python floor), all measured in
the same run::

    python tools/bench_sockets.py [--reps 3] [--quick] [--backend epoll] [--no-trio]

* socket_latency: 64-byte ping-pong on one loopback connection,
  50,000 timed round trips after 1,000 warm-up ones.
* socket_throughput: 1 GiB in 64 KiB writes over one loopback connection.
* fan_out: 100 connections x 1,000 round trips of 64 bytes.
* accept_churn: 5,000 sequential connect / accept+close / EOF+close cycles.

These are the reference measurements (the workloads' ``anchor`` size; the
``make bench`` suite runs them smaller).  Ratios are "times better":
higher-is-better figures divide corosio_py by the reference, times divide
the reference by corosio_py.  The machine is a noisy 2-core VM: only
ratios beyond ~1.5x mean something.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_STREAMS = ("asyncio_streams", "asyncio_protocol", "uvloop_streams", "uvloop_protocol",
            "trio", "floor_epoll")

#: (workload, implementations after the corosio_py ones)
PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("socket_latency", _STREAMS),
    ("socket_throughput", _STREAMS),
    ("fan_out", _STREAMS),
    ("accept_churn", ("asyncio_streams", "asyncio_sock", "uvloop_streams", "uvloop_sock",
                      "trio", "floor_epoll")),
)
COROSIO = ("corosio_py", "corosio_py_hint1")


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def main(argv: list[str] | None = None) -> int:
    from tools.bench import load
    from tools.bench._harness import Cell, run_cell

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the quick sizes (about a minute)")
    parser.add_argument("--size", default=None, help="a workload size: anchor (default), "
                        "full (the make-bench size) or quick")
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--no-trio", action="store_true")
    parser.add_argument("--workload", action="append",
                        help="only these workloads (comma-separated or repeated)")
    ns = parser.parse_args(argv)
    size = ns.size or ("quick" if ns.quick else "anchor")
    only = {w.strip() for v in ns.workload or () for w in v.split(",") if w.strip()}

    import corosio_py

    backend = ns.backend or corosio_py.available_backends()[0]
    plan = []
    for name, peers in PLAN:
        if only and name not in only:
            continue
        workload = load(name)
        chosen = [i for i in (*COROSIO, *peers) if not (ns.no_trio and i == "trio")]
        plan.append((workload, [workload.cell(i, backend) for i in chosen]))
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"socket benchmarks ({size} size, corosio_py backend {backend}, {ns.reps} interleaved "
          f"reps, fresh process per run; Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {load_avg} at start; "
          "compare only ratios beyond ~1.5x)", flush=True)

    runs: dict[Cell, list[dict[str, Any]]] = {}
    for rep in range(ns.reps):
        for workload, cells in plan:
            for cell in cells:
                record = run_cell(cell, size, workload.timeout * 2)
                if not record.get("ok"):
                    print(f"  {cell.label}: FAILED: {record.get('error')}", flush=True)
                runs.setdefault(cell, []).append(record)
        load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"  rep {rep + 1}/{ns.reps} done (load average {load_avg})", flush=True)

    summary: list[str] = []
    for workload, cells in plan:
        params = next((r["params"] for c in cells for r in runs[c] if r.get("ok")), {})
        print(f"\n{workload.name}: {workload.title} {params}")
        peers = [c for c in cells if not c.impl.startswith("corosio_py")]
        for fig in workload.figures:
            def values(cell: Cell, key: str = fig.key) -> list[float]:
                return [float(r["figures"][key]) for r in runs[cell] if r.get("ok")]

            def tails(cell: Cell, key: str = fig.key) -> tuple[float, float] | None:
                good = [r["latency"][key] for r in runs[cell] if r.get("ok")]
                if not good:
                    return None
                return (statistics.median(float(g[0]) for g in good),
                        statistics.median(float(g[1]) for g in good))

            medians = {c.impl: statistics.median(values(c)) for c in cells if values(c)}
            arrow = "higher is better" if fig.higher_is_better else "lower is better"
            print(f"  {fig.label} ({fig.unit}, {arrow}; median of runs, [min - max]"
                  + (", median p50 / p99" if fig.latency else "") + ")")
            for cell in cells:
                vals = values(cell)
                if not vals:
                    print(f"    {cell.impl:18} FAILED")
                    continue
                line = (f"    {cell.impl:18} {_fmt(statistics.median(vals)):>10} "
                        f"[{_fmt(min(vals)):>9} - {_fmt(max(vals)):>9}]")
                tail = tails(cell) if fig.latency else None
                if tail is not None:
                    line += f"  p50 {_fmt(tail[0]):>8}  p99 {_fmt(tail[1]):>8}"
                print(line)
            for cell in cells:
                mine = medians.get(cell.impl)
                if not cell.impl.startswith("corosio_py") or mine is None:
                    continue
                parts = []
                for peer in peers:
                    ref = medians.get(peer.impl)
                    if not ref:
                        continue
                    ratio = mine / ref if fig.higher_is_better else ref / mine
                    parts.append(f"x{ratio:.2f} vs {peer.impl}")
                text = f"{cell.impl} [{backend}]: " + ", ".join(parts)
                print(f"    ratios {text}")
                summary.append(f"  {workload.name:18} {fig.label:28} {_fmt(mine):>10}  {text}")
    print("\nsummary (x = times better than the peer; >1 means corosio_py is better)")
    print("\n".join(summary))
    failed = sum(1 for records in runs.values() for r in records if not r.get("ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
