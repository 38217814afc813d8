"""What implementations share: the clock, percentiles, one context or event
loop per framework, and running one coroutine on each framework."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._spec import RunArgs

#: The benchmark clock.
now = time.perf_counter


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def new_event_loop(args: RunArgs) -> Any:
    """A fresh asyncio event loop: uvloop's for the ``uvloop`` family."""
    import asyncio

    loop: asyncio.AbstractEventLoop
    if args.family == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def corosio_context(args: RunArgs) -> Any:
    """An ``IOContext`` on ``args.backend`` with the implementation's hint."""
    import corosio_py

    return corosio_py.IOContext(concurrency_hint=args.concurrency_hint, backend=args.backend)


Main = Callable[[], Coroutine[Any, Any, Any]]


def run_corosio(args: RunArgs, main: Main) -> Any:
    """Spawn ``main()`` on a fresh context, ``run()`` it, return its result."""
    import corosio_py

    with corosio_context(args) as ctx:
        task = corosio_py.spawn(ctx, main())
        ctx.run()
        return task.result()


def run_asyncio(args: RunArgs, main: Main) -> Any:
    """Run ``main()`` on a fresh asyncio loop (uvloop's for ``uvloop``)."""
    loop = new_event_loop(args)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_trio(args: RunArgs, main: Main) -> Any:
    """Run ``main()`` with ``trio.run``."""
    import trio

    return trio.run(main)
