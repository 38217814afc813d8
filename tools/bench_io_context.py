"""The upstream io_context microbenchmarks, mirrored for corosio_py.

Mirrors ``perf/bench/corosio/io_context`` and
prints handlers/s, with asyncio (and uvloop, when installed) measured in the
same run and the ratios printed::

    python tools/bench_io_context.py [--duration 1.0] [--reps 3] [--backend epoll]

corosio_py entries (``_lockless`` = ``concurrency_hint=1``):

* ``single_threaded[_lockless]``: until the deadline {post 1000 trivial
  handlers; ``poll()``; ``restart()``}; then ``run()``.
* ``interleaved[_lockless]``: the same with 100 handlers per batch.
* ``multithreaded/N`` (N = 1, 2, 4, 8): pre-post 100,000 handlers; a feeder
  thread keeps posting batches of 100,000 (``time.sleep(0)`` between) until
  the deadline while N runner threads loop {``poll()``; ``restart()``}; then
  they ``run()`` to drain.
* ``concurrent/4``: 4 threads each loop {post 10,000 handlers; ``poll()``;
  ``restart()``} until the deadline; then ``run()``.

The corosio-only ``high_inline_budget`` / ``large_event_buffer`` entries have
no corosio_py option to mirror and are left out.

asyncio / uvloop (one loop thread, as they cannot be run by several):

* ``single_threaded`` / ``interleaved``: {``call_soon`` x batch;
  ``call_soon(loop.stop)``; ``run_forever()``} until the deadline (the
  ``poll`` equivalent).  Compared with both corosio_py variants.
* ``multithreaded``: pre-post 100,000 with ``call_soon``; a feeder thread
  posts batches of 100,000 with ``call_soon_threadsafe`` until the deadline
  while the loop runs.  Compared with every ``multithreaded/N``.
* ``concurrent``: 4 threads post batches of 10,000 with
  ``call_soon_threadsafe`` while the loop runs.  Compared with
  ``concurrent/4``.

Every handler increments a counter (``itertools.count``, atomic under the
GIL); each entry checks that the count equals the number of posts.  Items/s
= handlers run / elapsed, where elapsed runs until everything posted ran.
Repetitions are interleaved; the median is printed (min-max in brackets).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

now = time.perf_counter


class Tally:
    """A counting trivial handler (safe to call from any thread)."""

    __slots__ = ("_tick", "posted", "task")

    def __init__(self) -> None:
        tick = itertools.count().__next__
        self._tick = tick
        self.posted = 0

        def task() -> None:
            tick()

        self.task = task

    def ran(self) -> int:
        """How many times ``task`` ran (call once, at the end)."""
        return self._tick()

    def check(self, name: str) -> int:
        ran = self.ran()
        if ran != self.posted:
            raise SystemExit(f"{name}: {ran} handlers ran but {self.posted} were posted")
        return ran


Result = tuple[int, float]  # (handlers run, elapsed seconds)


# ---------------------------------------------------------------- corosio_py


def _context(backend: str | None, lockless: bool) -> Any:
    import corosio_py

    return corosio_py.IOContext(concurrency_hint=1 if lockless else None, backend=backend)


def corosio_batches(backend: str | None, duration: float, batch: int, lockless: bool) -> Result:
    """single_threaded (batch 1000) / interleaved (batch 100)."""
    tally = Tally()
    task = tally.task
    with _context(backend, lockless) as ctx:
        post, poll, restart = ctx.post, ctx.poll, ctx.restart
        t0 = now()
        deadline = t0 + duration
        while now() < deadline:
            for _ in range(batch):
                post(task)
            tally.posted += batch
            poll()
            restart()
        ctx.run()
        elapsed = now() - t0
    return tally.check("corosio batches"), elapsed


def _runners(ctx: Any, n: int, running: threading.Event) -> list[threading.Thread]:
    def runner() -> None:
        poll, restart = ctx.poll, ctx.restart
        while running.is_set():
            poll()
            restart()
        ctx.run()

    threads = [threading.Thread(target=runner, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def corosio_multithreaded(backend: str | None, duration: float, threads: int) -> Result:
    """multithreaded/N: a feeder thread posts batches while N threads poll."""
    tally = Tally()
    task = tally.task
    batch = 100_000
    with _context(backend, False) as ctx:
        post = ctx.post
        for _ in range(batch):
            post(task)
        tally.posted = batch
        running = threading.Event()
        running.set()

        def feeder() -> None:
            while running.is_set():
                for _ in range(batch):
                    post(task)
                tally.posted += batch
                time.sleep(0)

        t0 = now()
        workers = _runners(ctx, threads, running)
        feed = threading.Thread(target=feeder, daemon=True)
        feed.start()
        time.sleep(duration)
        running.clear()
        feed.join()
        for t in workers:
            t.join()
        ctx.restart()
        ctx.run()  # a runner may have left before the feeder's last batch
        elapsed = now() - t0
    return tally.check(f"multithreaded/{threads}"), elapsed


def corosio_concurrent(backend: str | None, duration: float, threads: int = 4) -> Result:
    """concurrent/4: every thread posts batches of 10,000 and polls."""
    tally = Tally()
    task = tally.task
    batch = 10_000
    lock = threading.Lock()
    with _context(backend, False) as ctx:
        running = threading.Event()
        running.set()

        def worker() -> None:
            post, poll, restart = ctx.post, ctx.poll, ctx.restart
            posted = 0
            while running.is_set():
                for _ in range(batch):
                    post(task)
                posted += batch
                poll()
                restart()
            with lock:
                tally.posted += posted
            ctx.run()

        t0 = now()
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for t in workers:
            t.start()
        time.sleep(duration)
        running.clear()
        for t in workers:
            t.join()
        ctx.restart()
        ctx.run()
        elapsed = now() - t0
    return tally.check(f"concurrent/{threads}"), elapsed


# ---------------------------------------------------------------- asyncio / uvloop


def _loop(impl: str) -> Any:
    from tools.bench._harness import new_event_loop

    return new_event_loop(impl)


def asyncio_batches(impl: str, duration: float, batch: int) -> Result:
    tally = Tally()
    task = tally.task
    loop = _loop(impl)
    try:
        call_soon, run_forever, stop = loop.call_soon, loop.run_forever, loop.stop
        t0 = now()
        deadline = t0 + duration
        while now() < deadline:
            for _ in range(batch):
                call_soon(task)
            tally.posted += batch
            call_soon(stop)
            run_forever()
        elapsed = now() - t0
    finally:
        loop.close()
    return tally.check(f"{impl} batches"), elapsed


def asyncio_multithreaded(impl: str, duration: float) -> Result:
    tally = Tally()
    task = tally.task
    batch = 100_000
    loop = _loop(impl)
    try:
        for _ in range(batch):
            loop.call_soon(task)
        tally.posted = batch
        running = threading.Event()
        running.set()

        def feeder() -> None:
            post = loop.call_soon_threadsafe
            while running.is_set():
                for _ in range(batch):
                    post(task)
                tally.posted += batch
                time.sleep(0)
            post(loop.stop)  # FIFO: runs after everything posted before it

        def stopper() -> None:
            running.clear()

        t0 = now()
        feed = threading.Thread(target=feeder, daemon=True)
        feed.start()
        loop.call_later(duration, stopper)
        loop.run_forever()
        feed.join()
        elapsed = now() - t0
    finally:
        loop.close()
    return tally.check(f"{impl} multithreaded"), elapsed


def asyncio_concurrent(impl: str, duration: float, threads: int = 4) -> Result:
    tally = Tally()
    task = tally.task
    batch = 10_000
    loop = _loop(impl)
    lock = threading.Lock()
    try:
        running = threading.Event()
        running.set()
        remaining = [threads]

        def worker() -> None:
            post = loop.call_soon_threadsafe
            posted = 0
            while running.is_set():
                for _ in range(batch):
                    post(task)
                posted += batch
                time.sleep(0)
            with lock:
                tally.posted += posted
                remaining[0] -= 1
                if remaining[0] == 0:
                    post(loop.stop)

        t0 = now()
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for t in workers:
            t.start()
        loop.call_later(duration, running.clear)
        loop.run_forever()
        for t in workers:
            t.join()
        elapsed = now() - t0
    finally:
        loop.close()
    return tally.check(f"{impl} concurrent"), elapsed


# ---------------------------------------------------------------- driver


def entries(
    backend: str | None, duration: float, impls: list[str]
) -> list[tuple[str, str, Callable[[], Result]]]:
    """(name, reference entry, benchmark) for every entry of this run."""
    out: list[tuple[str, str, Callable[[], Result]]] = [
        ("single_threaded", "single_threaded",
         partial(corosio_batches, backend, duration, 1000, False)),
        ("single_threaded_lockless", "single_threaded",
         partial(corosio_batches, backend, duration, 1000, True)),
        ("interleaved", "interleaved", partial(corosio_batches, backend, duration, 100, False)),
        ("interleaved_lockless", "interleaved",
         partial(corosio_batches, backend, duration, 100, True)),
    ]
    out += [
        (f"multithreaded/{n}", "multithreaded",
         partial(corosio_multithreaded, backend, duration, n))
        for n in (1, 2, 4, 8)
    ]
    out.append(("concurrent/4", "concurrent", partial(corosio_concurrent, backend, duration)))
    for impl in impls:
        out += [
            (f"{impl}:single_threaded", "", partial(asyncio_batches, impl, duration, 1000)),
            (f"{impl}:interleaved", "", partial(asyncio_batches, impl, duration, 100)),
            (f"{impl}:multithreaded", "", partial(asyncio_multithreaded, impl, duration)),
            (f"{impl}:concurrent", "", partial(asyncio_concurrent, impl, duration)),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1.0,
                        help="seconds per entry (upstream default: 3.0)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median)")
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--bench", default="", help="only entries starting with this prefix")
    parser.add_argument("--no-uvloop", action="store_true")
    ns = parser.parse_args(argv)

    import platform

    import corosio_py

    impls = ["asyncio"]
    if not ns.no_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop not installed: asyncio only")
        else:
            impls.append("uvloop")
    backend = ns.backend or corosio_py.available_backends()[0]
    todo = [e for e in entries(backend, ns.duration, impls)
            if e[0].startswith(ns.bench) or ":" in e[0]]
    print(
        f"io_context microbenchmarks: corosio_py backend {backend}, duration {ns.duration} s, "
        f"{ns.reps} interleaved reps (median [min-max]); Python {platform.python_version()}; "
        f"noisy 2-core VM: compare only ratios beyond ~1.5x",
        flush=True,
    )
    rates: dict[str, list[float]] = {name: [] for name, _, _ in todo}
    for rep in range(ns.reps):
        for name, _, bench in todo:
            gc.collect()
            items, elapsed = bench()
            rates[name].append(items / elapsed)
        print(f"  rep {rep + 1}/{ns.reps} done", flush=True)

    def med(name: str) -> float | None:
        values = rates.get(name)
        return statistics.median(values) if values else None

    header = f"{'entry':32} {'handlers/s':>12} {'[min - max]':>23}"
    header += "".join(f" {'x ' + impl:>10}" for impl in impls)
    print()
    print(header)
    print("-" * len(header))
    for name, ref, _ in todo:
        values = rates[name]
        line = (f"{name:32} {statistics.median(values):12,.0f} "
                f"[{min(values):10,.0f} - {max(values):10,.0f}]")
        if ref:
            for impl in impls:
                base = med(f"{impl}:{ref}")
                line += f" {statistics.median(values) / base:10.2f}" if base else f" {'-':>10}"
        print(line)
    print("\nx asyncio / x uvloop: corosio_py handlers/s divided by the same-named asyncio/uvloop "
          "entry (call_soon for single_threaded/interleaved, call_soon_threadsafe for "
          "multithreaded/concurrent) from this run.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
