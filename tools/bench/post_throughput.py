"""post_throughput: post N no-op callbacks from the thread, then run them.

The callback is the same tiny counting closure for every implementation; the
count is checked after the run.  Figure: callbacks/s = N / (post + run time);
the post and run phases are recorded separately in ``extra``.

impls:
  corosio_py        ``ctx.post(cb)`` x N from the main thread (outside
                    ``run``: the thread-safe path), then ``ctx.run()``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)`` (lockless).
  asyncio / uvloop  ``loop.call_soon(cb)`` x N, then ``call_soon(loop.stop)``
                    and ``run_forever()``.
  trio              no same-thread call_soon: ``TrioToken.run_sync_soon(cb)``
                    x N from inside ``trio.run`` (one wake-up per call).
  floor_deque       bare Python: ``deque.append(cb)`` x N, then
                    ``popleft()()`` until empty.
"""

from __future__ import annotations

from collections import deque

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main


class Counter:
    """A counting no-op: ``cb`` is the posted callable."""

    __slots__ = ("cb", "count")

    def __init__(self) -> None:
        self.count = 0

        def cb() -> None:
            self.count += 1

        self.cb = cb


def _corosio(args: RunArgs) -> tuple[float, float, int]:
    n = args.params["n"]
    counter = Counter()
    cb = counter.cb
    with corosio_context(args) as ctx:
        post = ctx.post
        t0 = now()
        for _ in range(n):
            post(cb)
        t1 = now()
        ran = ctx.run()
        t2 = now()
    check(ran == n, f"run() returned {ran}, expected {n}")
    return t1 - t0, t2 - t1, counter.count


def _asyncio(args: RunArgs) -> tuple[float, float, int]:
    n = args.params["n"]
    counter = Counter()
    cb = counter.cb
    loop = new_event_loop(args)
    try:
        call_soon = loop.call_soon
        t0 = now()
        for _ in range(n):
            call_soon(cb)
        call_soon(loop.stop)
        t1 = now()
        loop.run_forever()
        t2 = now()
    finally:
        loop.close()
    return t1 - t0, t2 - t1, counter.count


def _trio(args: RunArgs) -> tuple[float, float, int]:
    import trio

    n = args.params["n"]
    counter = Counter()
    cb = counter.cb
    times: list[float] = []

    async def main() -> None:
        done = trio.Event()
        run_sync_soon = trio.lowlevel.current_trio_token().run_sync_soon
        times.append(now())
        for _ in range(n):
            run_sync_soon(cb)
        run_sync_soon(done.set)
        times.append(now())
        await done.wait()
        times.append(now())

    trio.run(main)
    return times[1] - times[0], times[2] - times[1], counter.count


def _floor(args: RunArgs) -> tuple[float, float, int]:
    n = args.params["n"]
    counter = Counter()
    cb = counter.cb
    queue: deque[object] = deque()
    append = queue.append
    popleft = queue.popleft
    t0 = now()
    for _ in range(n):
        append(cb)
    t1 = now()
    while queue:
        popleft()()  # type: ignore[operator]
    t2 = now()
    return t1 - t0, t2 - t1, counter.count


def measure(args: RunArgs, run: Runner) -> Measurement:
    post_s, run_s, count = run(args)
    n = args.params["n"]
    check(count == n, f"{count} callbacks ran, expected {n}")
    return Measurement(
        figures={"callbacks_per_s": n / (post_s + run_s)},
        extra={"post_s": post_s, "run_s": run_s, "ran": count},
    )


WORKLOAD = Workload(
    name="post_throughput",
    title="post N no-op callbacks from the thread, then run",
    figures=(Figure("callbacks_per_s", "callbacks/s (post + run)", "callbacks/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, concurrency_hint=1),
        Impl("asyncio", "asyncio", _asyncio),
        Impl("uvloop", "uvloop", _asyncio),
        Impl("trio", "trio", _trio, quick=False),
        Impl("floor_deque", "floor", _floor),
    ),
    sizes={"full": {"n": 1_000_000}, "quick": {"n": 200_000}},
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
