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

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

Result = tuple[float, int]  # (elapsed seconds, yields done)


def _corosio(args: RunArgs) -> Result:
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

    with corosio_context(args) as ctx:
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

    loop = new_event_loop(args)
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


def measure(args: RunArgs, run: Runner) -> Measurement:
    m = args.params["m"]
    elapsed, done = run(args)
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
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, concurrency_hint=1),
        Impl("asyncio", "asyncio", _asyncio),
        Impl("uvloop", "uvloop", _asyncio),
        Impl("trio", "trio", _trio),
        Impl("floor_trampoline", "floor", _floor),
    ),
    sizes={"full": {"m": 200_000}, "quick": {"m": 50_000}},
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
