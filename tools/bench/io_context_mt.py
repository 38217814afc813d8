"""io_context_mt: the threaded upstream io_context microbenchmarks.

As :mod:`tools.bench.io_context` (handlers/s, counts checked), with threads:

* ``multithreaded/N``: pre-post 100,000 handlers; a feeder thread keeps
  posting batches of 100,000 (``time.sleep(0)`` between) until the deadline
  while N runner threads loop {``poll()``; ``restart()``}; then they
  ``run()`` to drain.
* ``concurrent/N``: N threads each loop {post 10,000 handlers; ``poll()``;
  ``restart()``} until the deadline; then ``run()`` (upstream: N = 4).

impls:
  corosio_py        N = 1, 2, 4, 8 (the cell's threads).
  asyncio / uvloop  one loop thread (they cannot be run by several):
                    ``multithreaded`` pre-posts with ``call_soon`` and a
                    feeder thread posts with ``call_soon_threadsafe``;
                    ``concurrent`` has 4 threads posting batches of 10,000
                    with ``call_soon_threadsafe``.

Not in the default suite: ``python -m tools.bench --workload io_context_mt``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload
from tools.bench._worker import worker_main
from tools.bench.io_context import Result, Tally


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


def corosio_multithreaded(args: RunArgs, duration: float) -> Result:
    """multithreaded/N: a feeder thread posts batches while N threads poll."""
    threads = args.threads
    tally = Tally()
    task = tally.task
    batch = 100_000
    with corosio_context(args) as ctx:
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
    return tally.checked(), elapsed


def corosio_concurrent(args: RunArgs, duration: float) -> Result:
    """concurrent/4: every thread posts batches of 10,000 and polls."""
    threads = args.threads
    tally = Tally()
    task = tally.task
    batch = 10_000
    lock = threading.Lock()
    with corosio_context(args) as ctx:
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
    return tally.checked(), elapsed


def asyncio_multithreaded(args: RunArgs, duration: float) -> Result:
    """A feeder thread posts batches with ``call_soon_threadsafe`` while the loop runs."""
    tally = Tally()
    task = tally.task
    batch = 100_000
    loop = new_event_loop(args)
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
    return tally.checked(), elapsed


def asyncio_concurrent(args: RunArgs, duration: float) -> Result:
    """``args.threads`` threads post batches with ``call_soon_threadsafe`` while the loop runs."""
    threads = args.threads
    tally = Tally()
    task = tally.task
    batch = 10_000
    loop = new_event_loop(args)
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
    return tally.checked(), elapsed


def _corosio(args: RunArgs, duration: float) -> tuple[Result, Result]:
    return corosio_multithreaded(args, duration), corosio_concurrent(args, duration)


def _asyncio(args: RunArgs, duration: float) -> tuple[Result, Result]:
    return asyncio_multithreaded(args, duration), asyncio_concurrent(args, duration)


def measure(args: RunArgs, run: Runner) -> Measurement:
    (mt_ran, mt_s), (cc_ran, cc_s) = run(args, args.params["duration"])
    return Measurement(figures={"multithreaded": mt_ran / mt_s, "concurrent": cc_ran / cc_s})


WORKLOAD = Workload(
    name="io_context_mt",
    title="upstream io_context microbenchmarks: a feeder and N pollers; N posting pollers",
    figures=(
        Figure("multithreaded", "multithreaded: feeder + N polling threads", "handlers/s"),
        Figure("concurrent", "concurrent: N threads post and poll", "handlers/s"),
    ),
    impls=(
        Impl("corosio_py", COROSIO, _corosio, threads=(1, 2, 4, 8), quick_threads=(1, 4)),
        Impl("asyncio", "asyncio", _asyncio, threads=(4,)),
        Impl("uvloop", "uvloop", _asyncio, threads=(4,)),
    ),
    sizes={"full": {"duration": 1.0}, "quick": {"duration": 0.3}},
    measure=measure,
    suite=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
