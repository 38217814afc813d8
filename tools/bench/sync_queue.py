"""sync_queue: N items through a bounded queue from one task to another.

The producer puts 0..N-1 into a queue of ``maxsize`` 64 and the consumer
sums what it gets; the sum is checked.  Figure: items/s = N / elapsed
(from the start of both tasks to the consumer's last item).

impls:
  corosio_py        ``corosio_py.Queue(64)``, two tasks.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio / uvloop  ``asyncio.Queue(64)``.
  trio              ``trio.open_memory_channel(64)``.
"""

from __future__ import annotations

from tools.bench._runners import Main, now
from tools.bench._spec import Figure, Measurement, RunArgs, Runner, Workload, check
from tools.bench._sync_runners import Result, coordination_impls
from tools.bench._worker import worker_main

MAXSIZE = 64


def _corosio(args: RunArgs) -> Main:
    import corosio_py
    n = args.params["n"]

    async def main() -> Result:
        q: corosio_py.Queue[int] = corosio_py.Queue(MAXSIZE)

        async def produce() -> None:
            for i in range(n):
                await q.put(i)

        async def consume() -> int:
            total = 0
            for _ in range(n):
                total += await q.get()
            return total

        t0 = now()
        producer = corosio_py.spawn(corosio_py.current_executor(), produce())
        total = await consume()
        await producer
        return now() - t0, total

    return main


def _asyncio(args: RunArgs) -> Main:
    import asyncio
    n = args.params["n"]

    async def main() -> Result:
        q: asyncio.Queue[int] = asyncio.Queue(MAXSIZE)

        async def produce() -> None:
            for i in range(n):
                await q.put(i)

        t0 = now()
        producer = asyncio.ensure_future(produce())
        total = 0
        for _ in range(n):
            total += await q.get()
        await producer
        return now() - t0, total

    return main


def _trio(args: RunArgs) -> Main:
    import trio
    n = args.params["n"]

    async def main() -> Result:
        send, receive = trio.open_memory_channel[int](MAXSIZE)
        totals: list[int] = []

        async def produce() -> None:
            async with send:
                for i in range(n):
                    await send.send(i)

        async def consume() -> None:
            total = 0
            async with receive:
                async for item in receive:
                    total += item
            totals.append(total)

        t0 = now()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(consume)
        return now() - t0, totals[0]

    return main


def measure(args: RunArgs, run: Runner) -> Measurement:
    n = args.params["n"]
    elapsed, total = run(args)
    check(total == n * (n - 1) // 2, f"sum {total}, expected {n * (n - 1) // 2}")
    return Measurement(figures={"items_per_s": n / elapsed}, extra={"elapsed_s": elapsed})


WORKLOAD = Workload(
    name="sync_queue",
    title="items through a bounded queue (64) between two tasks",
    figures=(Figure("items_per_s", "items/s", "items/s"),),
    impls=coordination_impls(_corosio, _asyncio, _trio),
    sizes={"full": {"n": 1_000_000}, "quick": {"n": 200_000}},
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
