"""The benchmark harness: workload specs, the per-cell worker and the driver.

Vocabulary:

* A *workload* (one module of :mod:`tools.bench`) defines figures, the
  implementations that run it and one ``run`` function.
* A *cell* is one (workload, implementation, backend, threads) tuple.  Every
  run of a cell is a fresh subprocess::

      python -m tools.bench.<module> --impl NAME --backend B --threads N --size full

  that prints exactly one JSON line (see :func:`worker_main`).
* The driver (:func:`main`) runs one excluded warm-up of every cell, then the
  timed repetitions interleaved (rep 1 of every cell, then rep 2, ...), and
  reduces each (cell, figure) to median, min and max.  Results go to
  ``bench-results/latest.{json,md,png}`` (JSON lines, Markdown, bar chart).

A workload validates what ran (counts, digests) inside the worker and raises
:class:`ValidationError` on a mismatch: a broken implementation reports an
error, never a speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VERSION = platform.python_version()

#: Implementation families.  ``corosio_py`` cells run on every backend.
COROSIO = "corosio_py"


class ValidationError(Exception):
    """What ran does not match what the workload asked for."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ValidationError` with ``message`` unless ``condition``."""
    if not condition:
        raise ValidationError(message)


# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class Figure:
    """One number a workload reports per run."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    #: A latency figure also carries per-run p50/p99 (same unit).
    latency: bool = False


@dataclass(frozen=True)
class Impl:
    """One implementation of a workload."""

    name: str
    #: ``corosio_py`` (one cell per backend), ``asyncio``, ``uvloop``,
    #: ``trio``, ``floor`` or ``threads``.
    family: str
    threads: tuple[int, ...] = (1,)
    #: Part of ``--quick``; ``quick_threads`` narrows the thread counts there.
    quick: bool = True
    quick_threads: tuple[int, ...] | None = None
    #: The backend label recorded for non-corosio implementations.
    backend: str = "-"
    #: False: only run when asked for by name (e.g. by tools/bench_tasks.py).
    suite: bool = True
    #: corosio_py only.  False: run on the first selected backend only (the
    #: default one), e.g. a ``concurrency_hint=1`` variant whose point is the
    #: scheduler, not the reactor.
    all_backends: bool = True


@dataclass(frozen=True)
class RunArgs:
    """What a workload's ``run`` function receives in the worker."""

    impl: str
    #: The corosio_py backend name (None: the default); None for others.
    backend: str | None
    threads: int
    params: Mapping[str, Any]


@dataclass
class Measurement:
    """What a workload's ``run`` function returns (after validating)."""

    figures: dict[str, float]
    #: figure key -> (p50, p99), for latency figures.
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Anything else worth keeping (phase times, counts); recorded as is.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One (workload, implementation, backend, threads) combination."""

    workload: str
    impl: str
    family: str
    backend: str
    threads: int

    @property
    def label(self) -> str:
        return f"{self.impl}[{self.backend}, {self.threads}t]"


def _default_references() -> dict[str, str]:
    return {"asyncio": "asyncio", "uvloop": "uvloop"}


@dataclass(frozen=True)
class Workload:
    """A benchmark: its figures, implementations, sizes and run function."""

    name: str
    title: str
    figures: tuple[Figure, ...]
    impls: tuple[Impl, ...]
    #: ``{"full": {...}, "quick": {...}}``: the parameters of each size.
    sizes: Mapping[str, Mapping[str, Any]]
    run: Callable[[RunArgs], Measurement]
    #: Ratio column -> the implementation whose figure is the reference.
    references: Mapping[str, str] = field(default_factory=_default_references)
    #: A figure key: derive "speed-up vs 1 thread" for corosio_py cells.
    scaling: str | None = None
    #: Seconds before a run of one cell is killed (full size).
    timeout: float = 180.0
    #: Returns why the workload cannot run on this machine (a missing tool),
    #: or None.  The driver skips it with that message instead of failing.
    unavailable: Callable[[], str | None] | None = None
    #: Timed repetitions per cell in the suite when ``--reps`` is not given
    #: (None: the suite default), for workloads whose runs are long.
    reps: int | None = None
    #: False: the warm-up round runs only the first cell (enough to compile
    #: and import the module; every run is a fresh process anyway).
    warmup_all: bool = True

    def impl(self, name: str) -> Impl:
        for impl in self.impls:
            if impl.name == name:
                return impl
        raise KeyError(name)

    def figure(self, key: str) -> Figure:
        for fig in self.figures:
            if fig.key == key:
                return fig
        raise KeyError(key)

    def cell(self, impl: str, backend: str | None = None, threads: int | None = None) -> Cell:
        """The cell of implementation ``impl`` (first thread count by default)."""
        spec = self.impl(impl)
        name = (backend or spec.backend) if spec.family == COROSIO else spec.backend
        return Cell(self.name, impl, spec.family, name, threads or spec.threads[0])

    def cells(self, quick: bool, backends: Sequence[str]) -> list[Cell]:
        """The cells of this workload; ``backends`` for corosio_py cells."""
        out: list[Cell] = []
        for impl in self.impls:
            if not impl.suite or (quick and not impl.quick):
                continue
            threads = impl.quick_threads if quick and impl.quick_threads else impl.threads
            if impl.family != COROSIO:
                names: Sequence[str] = (impl.backend,)
            else:
                names = backends if impl.all_backends else backends[:1]
            out.extend(
                Cell(self.name, impl.name, impl.family, backend, n)
                for backend in names
                for n in threads
            )
        return out


# ---------------------------------------------------------------- helpers for workloads


def now() -> float:
    """The benchmark clock (``time.perf_counter``)."""
    return time.perf_counter()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def new_event_loop(impl: str) -> Any:
    """A fresh asyncio event loop: uvloop's when ``impl`` starts with ``uvloop``."""
    import asyncio

    if impl.startswith("uvloop"):
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def asyncio_backend_label() -> str:
    """The selector asyncio's default loop uses here (``epoll`` on Linux)."""
    import selectors

    name = selectors.DefaultSelector.__name__
    return name.removesuffix("Selector").lower()


def trio_backend_label() -> str:
    """The OS readiness API trio uses here."""
    if sys.platform.startswith("linux"):
        return "epoll"
    if sys.platform == "win32":
        return "iocp"
    return "kqueue"


def corosio_context(args: RunArgs, *, lockless: bool = False) -> Any:
    """An ``IOContext`` on ``args.backend`` (``concurrency_hint=1`` if lockless)."""
    import corosio_py

    hint = 1 if lockless else None
    return corosio_py.IOContext(concurrency_hint=hint, backend=args.backend)


# ---------------------------------------------------------------- the worker


def worker_main(workload: Workload, argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m tools.bench.<module>``: run one cell once.

    Prints one JSON line: workload, implementation, backend, threads,
    python, size, params, ok, and either figures / latency / extra or error.
    Exits non-zero when the run failed or did not validate.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m tools.bench.{workload.name}", description=workload.title
    )
    parser.add_argument("--impl", required=True, choices=[i.name for i in workload.impls])
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", choices=sorted(workload.sizes), default="full")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help=f"override a parameter; full size: {dict(workload.sizes['full'])}",
    )
    ns = parser.parse_args(argv)
    params = dict(workload.sizes[ns.size])
    for item in ns.param:
        key, _, value = item.partition("=")
        if key not in params:
            parser.error(f"unknown parameter {key!r}; known: {', '.join(params)}")
        params[key] = type(params[key])(value)
    impl = workload.impl(ns.impl)
    backend: str | None = None
    if impl.family == COROSIO:
        import corosio_py

        backend = ns.backend or corosio_py.available_backends()[0]
    record: dict[str, Any] = {
        "workload": workload.name,
        "implementation": impl.name,
        "backend": backend if backend is not None else impl.backend,
        "threads": ns.threads,
        "python": PYTHON_VERSION,
        "size": ns.size,
        "params": params,
    }
    code = 0
    try:
        result = workload.run(RunArgs(impl.name, backend, ns.threads, params))
        for fig in workload.figures:
            value = result.figures.get(fig.key)
            check(
                value is not None and math.isfinite(value),
                f"figure {fig.key!r} missing or not finite: {value!r}",
            )
        record.update(
            ok=True,
            figures=result.figures,
            latency={k: list(v) for k, v in result.latency.items()},
            extra=result.extra,
        )
    except ValidationError as error:
        record.update(ok=False, error=f"validation failed: {error}")
        code = 2
    except Exception as error:
        traceback.print_exc()
        record.update(ok=False, error=f"{type(error).__name__}: {error}")
        code = 1
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    if code:
        sys.exit(code)


# ---------------------------------------------------------------- the driver


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
                           fig.higher_is_better, values, size=size, warmup=warmup)
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
            rows.extend(_scaling_rows(workload, cells[workload.name], runs, size, warmup))
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
    parser.add_argument("--reps", type=int, default=None,
                        help="timed repetitions per cell (default 3; --quick 2)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up round")
    parser.add_argument("--out", default=str(ROOT / "bench-results"),
                        help="output directory (default: bench-results)")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    ns = parser.parse_args(argv)

    import corosio_py

    names = _parse_list(ns.workload) or list(WORKLOADS)
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
    size = "quick" if ns.quick else "full"
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
            c for c in workload.cells(ns.quick, backends)
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
                record = run_cell(cell, "quick" if is_warmup else size, timeout)
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
