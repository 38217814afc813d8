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

from collections.abc import Callable, Coroutine
from typing import Any

from tools.bench._harness import (
    Figure,
    Measurement,
    RunArgs,
    Workload,
    check,
    worker_main,
)
from tools.bench._sync_runners import Result, coordination_impls, run_async, timed_rounds


def _body(args: RunArgs, make_lock: Callable[[], Any]) -> Callable[[], Coroutine[Any, Any, Result]]:
    m = args.params["m"]

    async def main() -> Result:
        lock = make_lock()

        async def one() -> None:
            async with lock:
                pass

        return await timed_rounds(m, one)

    return main


def run(args: RunArgs) -> Measurement:
    impl = args.impl
    if impl.startswith("corosio_py"):
        import corosio_py

        make: Callable[[], Any] = corosio_py.Lock
    elif impl == "trio":
        import trio

        make = trio.Lock
    else:
        import asyncio

        make = asyncio.Lock
    elapsed, done = run_async(args, _body(args, make))
    m = args.params["m"]
    check(done == m, f"{done} rounds, expected {m}")
    return Measurement(figures={"rounds_per_s": m / elapsed}, extra={"elapsed_s": elapsed})


WORKLOAD = Workload(
    name="sync_lock",
    title="uncontended lock acquire+release in one task",
    figures=(Figure("rounds_per_s", "acquire+release/s", "rounds/s"),),
    impls=coordination_impls(),
    sizes={"full": {"m": 1_000_000}, "quick": {"m": 200_000}},
    run=run,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
