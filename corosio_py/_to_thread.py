"""to_thread(): run a blocking function on a helper thread, await its result."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ._offload import HelperCall

__all__ = ("to_thread",)

P = ParamSpec("P")
R = TypeVar("R")


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` on a helper thread; return its result.

    The function runs on a thread of a process-wide helper pool, never on a
    thread inside ``run()``, so the context keeps serving other tasks
    meanwhile.  It sees a copy of the caller's context variables, as with
    ``asyncio.to_thread``.  While it runs, the awaiting task counts as
    outstanding work of its context: ``run()`` does not return for lack of
    work.  Its exception is raised here, whatever its type.

    Cancelling the wait (``Task.cancel()``, a ``timeout``) raises
    ``Cancelled`` at once and abandons the result: the function cannot be
    interrupted, so it runs to its end on the helper thread and its return
    value (or error) is dropped.  A function that already returned when the
    cancel lands delivers its result, and the cancellation lands at the
    task's next suspension.

    The helper pool is shared with :func:`resolve` and the files: up to
    ``min(32, cpu_count + 4)`` threads, started on demand; calls beyond that
    wait for a free thread.  Its threads are daemon threads: a function
    still running when the interpreter exits is abandoned -- neither
    :func:`run` nor the exit waits for it, and it is stopped wherever it is
    (its ``finally`` blocks do not run).  Await it if it must finish.

    :raises TypeError: when ``fn`` is not callable.
    :raises Cancelled: when the wait is cancelled.
    """
    if not callable(fn):
        raise TypeError(f"to_thread() needs a callable, got {type(fn).__name__}")
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    result: R = await HelperCall(call)
    return result
