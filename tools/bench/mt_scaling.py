"""mt_scaling: N threads running one context over H pre-posted Python handlers.

Every handler does the same little pure-Python job (a short arithmetic loop)
and counts itself with ``itertools.count`` (atomic under the GIL).  The
handlers are posted before the clock starts; the clock runs from the
moment the N runners (N-1 extra threads + the main thread) pass a barrier
until all of them have returned from ``run()``.  Checked: the sum of the
``run()`` results and the count both equal H.

Figures: handlers/s; the driver derives each corosio_py cell's speed-up over
its 1-thread thread-safe cell (runs paired by repetition).  On a GIL build
the speed-up is bounded by 1: this workload measures what the scheduler's
locking and hand-offs cost as threads are added.

impls:
  corosio_py        default hint, 1/2/4/8 threads.
  corosio_py_hint1  ``concurrency_hint=1`` (lockless), 1 thread.
  asyncio / uvloop  the same handlers via ``call_soon``, 1 thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

#: Iterations of the arithmetic loop in every handler (about 1 µs of Python).
WORK_ITERATIONS = 16


def make_handler(work: int = WORK_ITERATIONS) -> tuple[Callable[[], None], Callable[[], int]]:
    """The handler (``work`` loop iterations) and a function that reads how
    many times it ran."""
    counter = itertools.count()
    tick = counter.__next__
    iterations = range(work)

    def handler() -> None:
        x = 0
        for i in iterations:
            x += i * i
        tick()

    def ran() -> int:
        # The next value of the counter is how many ticks happened (read once).
        return tick()

    return handler, ran


def _corosio(args: RunArgs) -> tuple[float, int, int]:
    h = args.params["handlers"]
    n = args.threads
    handler, ran = make_handler(args.params.get("iterations", WORK_ITERATIONS))
    with corosio_context(args) as ctx:
        for _ in range(h):
            ctx.post(handler)
        barrier = threading.Barrier(n)
        results: list[int] = []
        errors: list[BaseException] = []

        def runner() -> None:
            barrier.wait()
            try:
                results.append(ctx.run())
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=runner, daemon=True) for _ in range(n - 1)]
        for t in threads:
            t.start()
        t0 = now()
        runner()
        for t in threads:
            t.join()
        t1 = now()
    check(not errors, f"run() raised {errors!r}")
    h = args.params["handlers"]
    check(sum(results) == h, f"run() calls returned {sum(results)} in total, expected {h}")
    return t1 - t0, sum(results), ran()


def _asyncio(args: RunArgs) -> tuple[float, int, int]:
    check(args.threads == 1, f"{args.impl} runs on one thread only")
    h = args.params["handlers"]
    handler, ran = make_handler(args.params.get("iterations", WORK_ITERATIONS))
    loop = new_event_loop(args)
    try:
        for _ in range(h):
            loop.call_soon(handler)
        loop.call_soon(loop.stop)
        t0 = now()
        loop.run_forever()
        t1 = now()
    finally:
        loop.close()
    return t1 - t0, h, ran()


def measure(args: RunArgs, run: Runner) -> Measurement:
    h = args.params["handlers"]
    check(args.threads >= 1, "threads must be >= 1")
    elapsed, _, count = run(args)
    check(count == h, f"{count} handlers ran, expected {h}")
    return Measurement(
        figures={"handlers_per_s": h / elapsed},
        extra={"elapsed_s": elapsed, "ran": count},
    )


WORKLOAD = Workload(
    name="mt_scaling",
    title="N threads run one context over pre-posted pure-Python handlers",
    figures=(Figure("handlers_per_s", "handlers/s", "handlers/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio, threads=(1, 2, 4, 8), quick_threads=(1, 2, 4)),
        Impl("corosio_py_hint1", COROSIO, _corosio, concurrency_hint=1),
        Impl("asyncio", "asyncio", _asyncio),
        Impl("uvloop", "uvloop", _asyncio),
    ),
    sizes={"full": {"handlers": 400_000}, "quick": {"handlers": 100_000}},
    measure=measure,
    scaling="handlers_per_s",
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
