"""io_context: the upstream io_context microbenchmarks
(``perf/bench/corosio/io_context``), single-threaded.

Each run measures both entries for ``duration`` seconds each; figures are
handlers/s = handlers run / elapsed, where elapsed runs until everything
posted ran.  Every handler increments a counter (``itertools.count``,
atomic under the GIL); the count is checked against the number posted.

* ``single_threaded``: until the deadline {post 1000 trivial handlers;
  ``poll()``; ``restart()``}; then ``run()``.
* ``interleaved``: the same with 100 handlers per batch.

impls:
  corosio_py        ``ctx.post`` / ``poll`` / ``restart``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)`` (upstream's
                    ``_lockless`` entries).
  asyncio / uvloop  {``call_soon`` x batch; ``call_soon(loop.stop)``;
                    ``run_forever()``} (the ``poll`` equivalent).

The threaded entries are :mod:`tools.bench.io_context_mt`; upstream's
``high_inline_budget`` / ``large_event_buffer`` have no corosio_py option to
mirror and are left out.  Not in the default suite: ``python -m tools.bench
--workload io_context,io_context_mt``.
"""

from __future__ import annotations

import itertools

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

#: (handlers run, elapsed seconds)
Result = tuple[int, float]


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

    def checked(self) -> int:
        """How many ran, checked against how many were posted."""
        ran = self.ran()
        check(ran == self.posted, f"{ran} handlers ran but {self.posted} were posted")
        return ran


def corosio_batches(args: RunArgs, duration: float, batch: int) -> Result:
    """{post ``batch`` handlers; ``poll()``; ``restart()``} until the deadline."""
    tally = Tally()
    task = tally.task
    with corosio_context(args) as ctx:
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
    return tally.checked(), elapsed


def asyncio_batches(args: RunArgs, duration: float, batch: int) -> Result:
    """{``call_soon`` x batch; ``call_soon(loop.stop)``; ``run_forever()``} until the deadline."""
    tally = Tally()
    task = tally.task
    loop = new_event_loop(args)
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
    return tally.checked(), elapsed


def measure(args: RunArgs, run: Runner) -> Measurement:
    duration = args.params["duration"]
    figures = {}
    for key, batch in (("single_threaded", 1000), ("interleaved", 100)):
        ran, elapsed = run(args, duration, batch)
        figures[key] = ran / elapsed
    return Measurement(figures=figures)


FIGURES = (
    Figure("single_threaded", "single_threaded: batches of 1000, poll", "handlers/s"),
    Figure("interleaved", "interleaved: batches of 100, poll", "handlers/s"),
)

WORKLOAD = Workload(
    name="io_context",
    title="upstream io_context microbenchmarks: post batches, poll, restart (one thread)",
    figures=FIGURES,
    impls=(
        Impl("corosio_py", COROSIO, corosio_batches),
        Impl("corosio_py_hint1", COROSIO, corosio_batches, concurrency_hint=1),
        Impl("asyncio", "asyncio", asyncio_batches),
        Impl("uvloop", "uvloop", asyncio_batches),
    ),
    sizes={"full": {"duration": 1.0}, "quick": {"duration": 0.3}},
    measure=measure,
    suite=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
