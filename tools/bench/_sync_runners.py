"""Helpers of the coordination workloads: run one coroutine on each
framework and time a loop of rounds inside it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tools.bench._harness import (
    Impl,
    RunArgs,
    asyncio_backend_label,
    corosio_context,
    new_event_loop,
    now,
    trio_backend_label,
)

#: (elapsed seconds, a checked count or checksum)
Result = tuple[float, int]


async def timed_rounds(m: int, one: Callable[[], Awaitable[None]]) -> Result:
    """Await ``one()`` m times; the clock starts after a first warm round."""
    await one()
    done = 0
    t0 = now()
    for _ in range(m):
        await one()
        done += 1
    return now() - t0, done


def run_async(args: RunArgs, main: Callable[[], Coroutine[Any, Any, Result]]) -> Result:
    """Run ``main()`` on the framework of ``args.impl`` and return its result."""
    impl = args.impl
    if impl.startswith("corosio_py"):
        import corosio_py

        with corosio_context(args, lockless=impl.endswith("_hint1")) as ctx:
            task = corosio_py.spawn(ctx, main())
            ctx.run()
            return task.result()
    if impl == "trio":
        import trio

        return trio.run(main)  # type: ignore[no-any-return]
    loop = new_event_loop(impl)
    try:
        return loop.run_until_complete(main())  # type: ignore[no-any-return]
    finally:
        loop.close()


def coordination_impls() -> tuple[Impl, ...]:
    """The implementations every coordination workload compares."""
    return (
        Impl("corosio_py", "corosio_py", all_backends=False),
        Impl("corosio_py_hint1", "corosio_py", all_backends=False),
        Impl("asyncio", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop", "uvloop", backend="libuv"),
        Impl("trio", "trio", backend=trio_backend_label(), quick=False),
    )
