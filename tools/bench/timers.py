"""timers: N timers with deadlines spread uniformly (seeded) over a window.

Deadline i is ``start + offset_i`` with ``offset_i`` uniform in [0, window)
(the same seeded offsets for every implementation); ``start`` is taken just
before the first timer is scheduled.  Figures: timers/s = N / (time from
``start`` until the last timer fired), and the lateness of each firing
(fire time - deadline, ``time.monotonic``) as a mean with p50/p99.  With
100,000 timers in 100 ms every implementation is overloaded, so lateness is
mostly backlog.  Checked: every timer fired exactly once.

impls:
  corosio_py        N tasks spawned before ``run()``; each, when it first
                    runs, does ``await sleep(deadline - monotonic())``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_tasks / uvloop_tasks     N tasks each ``await asyncio.sleep(d)``.
  asyncio_call_at / uvloop_call_at ``loop.call_at(deadline, cb)`` x N.
  asyncio_call_later / uvloop_call_later  ``loop.call_later(delay, cb)`` x N
                    (not in the suite: run with ``--impl``).
  trio              N tasks in a nursery, each ``await trio.sleep_until``.
  floor_heap        bare Python: a heapq of deadlines; ``time.sleep`` until
                    the earliest, then pop and call everything due.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time

from tools.bench._runners import corosio_context, new_event_loop, percentile
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

mono = time.monotonic


def offsets(n: int, window: float) -> list[float]:
    rng = random.Random(12345)
    return [rng.random() * window for _ in range(n)]


class _Record:
    """Collects each firing's lateness and the time of the last firing."""

    __slots__ = ("late", "last")

    def __init__(self) -> None:
        self.late: list[float] = []
        self.last = 0.0

    def fired(self, deadline: float) -> None:
        t = mono()
        self.late.append(t - deadline)
        if t > self.last:
            self.last = t


def _corosio(args: RunArgs, offs: list[float], rec: _Record) -> float:
    import corosio_py

    sleep = corosio_py.sleep

    async def waiter(deadline: float) -> None:
        await sleep(deadline - mono())
        rec.fired(deadline)

    with corosio_context(args) as ctx:
        start = mono()
        for off in offs:
            corosio_py.spawn(ctx, waiter(start + off))
        ran = ctx.run()
    check(ran >= 2 * len(offs), f"run() returned {ran}, expected at least {2 * len(offs)}")
    return start


def _asyncio_tasks(args: RunArgs, offs: list[float], rec: _Record) -> float:
    import asyncio

    sleep = asyncio.sleep
    loop = new_event_loop(args)
    box: list[float] = []

    async def waiter(deadline: float) -> None:
        await sleep(deadline - mono())
        rec.fired(deadline)

    async def main() -> None:
        start = mono()
        box.append(start)
        tasks = [loop.create_task(waiter(start + off)) for off in offs]
        for task in tasks:
            await task

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return box[0]


def _asyncio_call_at(
    args: RunArgs, offs: list[float], rec: _Record, later: bool = False
) -> float:
    loop = new_event_loop(args)
    n = len(offs)
    fired = rec.fired

    def cb(deadline: float) -> None:
        fired(deadline)
        if len(rec.late) == n:
            loop.stop()

    try:
        # The loop's clock (uvloop: libuv's, ms resolution) and monotonic()
        # are read back to back; deadlines are converted between the two.
        loop_start = loop.time()
        start = mono()
        if later:
            call_later, time_ = loop.call_later, loop.time
            for off in offs:
                call_later(loop_start + off - time_(), cb, start + off)
        else:
            call_at = loop.call_at
            for off in offs:
                call_at(loop_start + off, cb, start + off)
        loop.run_forever()
    finally:
        loop.close()
    return start


def _asyncio_call_later(args: RunArgs, offs: list[float], rec: _Record) -> float:
    return _asyncio_call_at(args, offs, rec, later=True)


def _trio(args: RunArgs, offs: list[float], rec: _Record) -> float:
    import trio

    box: list[float] = []

    async def waiter(trio_deadline: float, deadline: float) -> None:
        await trio.sleep_until(trio_deadline)
        rec.fired(deadline)

    async def main() -> None:
        trio_start = trio.current_time()
        start = mono()
        box.append(start)
        async with trio.open_nursery() as nursery:
            for off in offs:
                nursery.start_soon(waiter, trio_start + off, start + off)

    trio.run(main)
    return box[0]


def _floor(args: RunArgs, offs: list[float], rec: _Record) -> float:
    heap: list[tuple[float, int]] = []
    start = mono()
    push = heapq.heappush
    for i, off in enumerate(offs):
        push(heap, (start + off, i))
    pop = heapq.heappop
    fired = rec.fired
    while heap:
        t = mono()
        if heap[0][0] > t:
            time.sleep(heap[0][0] - t)
            continue
        while heap and heap[0][0] <= t:
            fired(pop(heap)[0])
    return start


def measure(args: RunArgs, run: Runner) -> Measurement:
    n, window = args.params["n"], args.params["window"]
    offs = offsets(n, window)
    rec = _Record()
    start = run(args, offs, rec)
    check(len(rec.late) == n, f"{len(rec.late)} timers fired, expected {n}")
    elapsed = rec.last - start
    check(elapsed > 0, "no time elapsed")
    late = sorted(rec.late)
    ms = 1000.0
    return Measurement(
        figures={"timers_per_s": n / elapsed, "lateness_ms": statistics.fmean(late) * ms},
        latency={"lateness_ms": (percentile(late, 0.5) * ms, percentile(late, 0.99) * ms)},
        extra={
            "elapsed_s": elapsed,
            "fired": len(late),
            "early": sum(1 for x in late if x < 0),
        },
    )


WORKLOAD = Workload(
    name="timers",
    title="N timers spread over a window; time until the last fired, and lateness",
    figures=(
        Figure("timers_per_s", "timers/s", "timers/s"),
        Figure("lateness_ms", "mean lateness", "ms", higher_is_better=False, latency=True),
    ),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, concurrency_hint=1),
        Impl("asyncio_tasks", "asyncio", _asyncio_tasks),
        Impl("uvloop_tasks", "uvloop", _asyncio_tasks),
        Impl("asyncio_call_at", "asyncio", _asyncio_call_at),
        Impl("uvloop_call_at", "uvloop", _asyncio_call_at),
        Impl("asyncio_call_later", "asyncio", _asyncio_call_later, suite=False),
        Impl("uvloop_call_later", "uvloop", _asyncio_call_later, suite=False),
        Impl("trio", "trio", _trio, quick=False),
        Impl("floor_heap", "floor", _floor),
    ),
    sizes={
        "full": {"n": 100_000, "window": 0.1},
        "quick": {"n": 20_000, "window": 0.1},
    },
    measure=measure,
    # corosio_py runs tasks: compare with the task forms.
    references={"asyncio": "asyncio_tasks", "uvloop": "uvloop_tasks"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
