"""sync_lock: one task doing M uncontended ``async with lock:`` rounds.

The clock runs inside the task; the task returns how many rounds it did,
which is checked.  Figure: acquire+release/s = M / elapsed.

impls:
  corosio_py        ``corosio_py.Lock`` (thread-safe, FIFO) in a task.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio / uvloop  ``asyncio.Lock``.
  trio              ``trio.Lock``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.bench._runners import Main
from tools.bench._spec import Figure, Measurement, RunArgs, Runner, Workload, check
from tools.bench._sync_runners import coordination_impls, timed_rounds
from tools.bench._worker import worker_main


def _rounds(args: RunArgs, make_lock: Callable[[], Any]) -> Main:
    m = args.params["m"]

    async def main() -> tuple[float, int]:
        lock = make_lock()

        async def one() -> None:
            async with lock:
                pass

        return await timed_rounds(m, one)

    return main


def _corosio(args: RunArgs) -> Main:
    import corosio_py

    return _rounds(args, corosio_py.Lock)


def _asyncio(args: RunArgs) -> Main:
    import asyncio

    return _rounds(args, asyncio.Lock)


def _trio(args: RunArgs) -> Main:
    import trio

    return _rounds(args, trio.Lock)


def measure(args: RunArgs, run: Runner) -> Measurement:
    elapsed, done = run(args)
    m = args.params["m"]
    check(done == m, f"{done} rounds, expected {m}")
    return Measurement(figures={"rounds_per_s": m / elapsed}, extra={"elapsed_s": elapsed})


WORKLOAD = Workload(
    name="sync_lock",
    title="uncontended lock acquire+release in one task",
    figures=(Figure("rounds_per_s", "acquire+release/s", "rounds/s"),),
    impls=coordination_impls(_corosio, _asyncio, _trio),
    sizes={"full": {"m": 1_000_000}, "quick": {"m": 200_000}},
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
