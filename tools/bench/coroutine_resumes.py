"""coroutine_resumes: one task doing M ``await yield_now()``-style yields.

The clock runs inside the task, from just after its first yield to just
after the last; the task returns how many yields it did, which is checked.
Figure: resumes/s = M / elapsed.

impls:
  corosio_py        ``spawn`` one task doing ``await yield_now()``; ``run()``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio / uvloop  ``await asyncio.sleep(0)``.
  trio              ``await trio.sleep(0)``.
  floor_trampoline  bare Python: a deque-driven trampoline resuming one
                    coroutine (``coro.send(None)``) that awaits a bare yield.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any

from tools.bench._harness import (
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Workload,
    asyncio_backend_label,
    check,
    corosio_context,
    new_event_loop,
    now,
    trio_backend_label,
    worker_main,
)

Result = tuple[float, int]  # (elapsed seconds, yields done)


def _corosio(args: RunArgs, lockless: bool) -> Result:
    import corosio_py

    m = args.params["m"]
    yield_now = corosio_py.yield_now

    async def main() -> Result:
        await yield_now()
        done = 0
        t0 = now()
        for _ in range(m):
            await yield_now()
            done += 1
        return now() - t0, done

    with corosio_context(args, lockless=lockless) as ctx:
        task = corosio_py.spawn(ctx, main())
        ran = ctx.run()
        result = task.result()
    check(ran >= m + 2, f"run() returned {ran}, expected at least {m + 2}")
    return result


def _asyncio(args: RunArgs) -> Result:
    import asyncio

    m = args.params["m"]
    sleep = asyncio.sleep

    async def main() -> Result:
        await sleep(0)
        done = 0
        t0 = now()
        for _ in range(m):
            await sleep(0)
            done += 1
        return now() - t0, done

    loop = new_event_loop(args.impl)
    try:
        result: Result = loop.run_until_complete(main())
    finally:
        loop.close()
    return result


def _trio(args: RunArgs) -> Result:
    import trio

    m = args.params["m"]
    sleep = trio.sleep

    async def main() -> Result:
        await sleep(0)
        done = 0
        t0 = now()
        for _ in range(m):
            await sleep(0)
            done += 1
        return now() - t0, done

    result: Result = trio.run(main)
    return result


class _BareYield:
    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


def _floor(args: RunArgs) -> Result:
    m = args.params["m"]
    bare = _BareYield()
    box: list[Result] = []

    async def main() -> None:
        await bare
        done = 0
        t0 = now()
        for _ in range(m):
            await bare
            done += 1
        box.append((now() - t0, done))

    coro: Coroutine[Any, Any, None] = main()
    ready: deque[Coroutine[Any, Any, None]] = deque([coro])
    popleft = ready.popleft
    append = ready.append
    while ready:
        c = popleft()
        try:
            c.send(None)
        except StopIteration:
            continue
        append(c)
    return box[0]


def run(args: RunArgs) -> Measurement:
    m = args.params["m"]
    if args.impl.startswith("corosio_py"):
        elapsed, done = _corosio(args, lockless=args.impl == "corosio_py_hint1")
    elif args.impl in ("asyncio", "uvloop"):
        elapsed, done = _asyncio(args)
    elif args.impl == "trio":
        elapsed, done = _trio(args)
    else:
        elapsed, done = _floor(args)
    check(done == m, f"{done} yields done, expected {m}")
    return Measurement(
        figures={"resumes_per_s": m / elapsed},
        extra={"elapsed_s": elapsed, "yields": done},
    )


WORKLOAD = Workload(
    name="coroutine_resumes",
    title="one task doing M awaits of yield_now() / sleep(0)",
    figures=(Figure("resumes_per_s", "resumes/s", "resumes/s"),),
    impls=(
        Impl("corosio_py", "corosio_py"),
        Impl("corosio_py_hint1", "corosio_py"),
        Impl("asyncio", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop", "uvloop", backend="libuv"),
        Impl("trio", "trio", backend=trio_backend_label()),
        Impl("floor_trampoline", "floor"),
    ),
    sizes={"full": {"m": 200_000}, "quick": {"m": 50_000}},
    run=run,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
