"""gil_release: T x sha256 of one 8 MiB block, run on two threads.

``hashlib.sha256`` releases the GIL while hashing large buffers, so two
threads can reach about 2x serial on two cores.  Figure: tasks/s = T /
elapsed.  Checked: every task ran once and produced the right digest.

impls:
  corosio_py         T handlers posted to a context run by ``--threads``
                     threads (default 2; the main thread is one of them).
  threadpool_2       ``ThreadPoolExecutor(max_workers=2).map``.
  asyncio_to_thread  ``asyncio.gather(*(asyncio.to_thread(h) ...))``
                     (default executor: min(32, cpus + 4) workers).
  uvloop_to_thread   the same on uvloop.
  trio_to_thread     a nursery of tasks awaiting ``trio.to_thread.run_sync``.
  serial             one thread, a plain loop (the 1-core floor).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main


def _job(size: int) -> tuple[Callable[[], bytes], bytes]:
    block = bytes(range(256)) * (size // 256)
    expected = hashlib.sha256(block).digest()

    def job() -> bytes:
        return hashlib.sha256(block).digest()

    return job, expected


def _corosio(args: RunArgs, job: Callable[[], bytes], tasks: int) -> tuple[float, list[bytes]]:
    digests: list[bytes] = []
    append = digests.append  # list.append is atomic under the GIL

    def handler() -> None:
        append(job())

    n = args.threads
    with corosio_context(args) as ctx:
        barrier = threading.Barrier(n)
        errors: list[BaseException] = []

        def runner() -> None:
            barrier.wait()
            try:
                ctx.run()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=runner, daemon=True) for _ in range(n - 1)]
        for t in threads:
            t.start()
        t0 = now()
        for _ in range(tasks):
            ctx.post(handler)
        runner()
        for t in threads:
            t.join()
        t1 = now()
    check(not errors, f"run() raised {errors!r}")
    return t1 - t0, digests


def _threadpool(args: RunArgs, job: Callable[[], bytes], tasks: int) -> tuple[float, list[bytes]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        t0 = now()
        digests = list(pool.map(lambda _: job(), range(tasks)))
        t1 = now()
    return t1 - t0, digests


def _asyncio(args: RunArgs, job: Callable[[], bytes], tasks: int) -> tuple[float, list[bytes]]:
    import asyncio

    async def main() -> tuple[float, list[bytes]]:
        t0 = now()
        digests = await asyncio.gather(*(asyncio.to_thread(job) for _ in range(tasks)))
        return now() - t0, list(digests)

    loop = new_event_loop(args)
    try:
        result: tuple[float, list[bytes]] = loop.run_until_complete(main())
    finally:
        loop.close()
    return result


def _trio(args: RunArgs, job: Callable[[], bytes], tasks: int) -> tuple[float, list[bytes]]:
    import trio

    digests: list[bytes] = []

    async def one() -> None:
        digests.append(await trio.to_thread.run_sync(job))

    async def main() -> float:
        t0 = now()
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(one)
        return now() - t0

    elapsed: float = trio.run(main)
    return elapsed, digests


def _serial(args: RunArgs, job: Callable[[], bytes], tasks: int) -> tuple[float, list[bytes]]:
    t0 = now()
    digests = [job() for _ in range(tasks)]
    return now() - t0, digests


def measure(args: RunArgs, run: Runner) -> Measurement:
    tasks, size = args.params["tasks"], args.params["block_bytes"]
    job, expected = _job(size)
    elapsed, digests = run(args, job, tasks)
    check(len(digests) == tasks, f"{len(digests)} hashes done, expected {tasks}")
    check(all(d == expected for d in digests), "a digest is wrong")
    return Measurement(
        figures={"tasks_per_s": tasks / elapsed},
        extra={"elapsed_s": elapsed, "mb_per_s": tasks * size / elapsed / 1e6},
    )


WORKLOAD = Workload(
    name="gil_release",
    title="T x sha256(8 MiB) (releases the GIL) on two threads",
    figures=(Figure("tasks_per_s", "tasks/s", "tasks/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio, threads=(2,)),
        Impl("threadpool_2", "threads", _threadpool, threads=(2,)),
        Impl("asyncio_to_thread", "asyncio", _asyncio),
        Impl("uvloop_to_thread", "uvloop", _asyncio),
        Impl("trio_to_thread", "trio", _trio, quick=False),
        Impl("serial", "floor", _serial),
    ),
    sizes={
        "full": {"tasks": 64, "block_bytes": 8 * 1024 * 1024},
        "quick": {"tasks": 16, "block_bytes": 8 * 1024 * 1024},
    },
    measure=measure,
    references={"asyncio": "asyncio_to_thread", "uvloop": "uvloop_to_thread",
                "threadpool": "threadpool_2"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
