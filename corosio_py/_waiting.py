"""wait_for() and shield(): await something with a time limit, or out of
reach of the waiting task's cancellation."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from ._errors import Cancelled
from ._group import _wait_all_shielded, _Watch
from ._spawn import _require_task, spawn
from ._tasks import Task
from ._timeout import timeout

__all__ = ("shield", "wait_for")

T = TypeVar("T")


def _close_unstarted(awaitable: object) -> None:
    """Bad arguments: close a coroutine that will never run, so that no
    "never awaited" warning follows the error."""
    if isinstance(awaitable, Coroutine):
        awaitable.close()


def _check_awaitable(awaitable: object, what: str) -> Task[Any]:
    """Validate the awaitable; return the calling task."""
    if not isinstance(awaitable, Awaitable):
        raise TypeError(f"{what} needs an awaitable, got {type(awaitable).__name__}")
    return _require_task(what)


async def wait_for(awaitable: Awaitable[T], seconds: float | None) -> T:
    """Await ``awaitable`` for at most ``seconds``; its result, or ``TimeoutError``.

    A coroutine (or an operation such as ``sock.read_some(buf)``) runs in
    the calling task inside ``timeout(seconds)``: when time runs out, what
    it awaits is cancelled, and if it then ends with ``Cancelled`` this
    raises ``TimeoutError``.  A :class:`Task` is cancelled when time runs
    out and waited for; if it finished anyway (it returned a value or
    raised another error despite the cancel) that outcome is returned or
    raised, as asyncio's ``wait_for`` does from Python 3.12.

    Cancelling the calling task cancels the awaitable too (a Task is
    cancelled and waited for) and raises ``Cancelled``.  ``seconds=None``
    waits as long as it takes; a non-positive value gives the awaitable up
    to its first suspension.

    :raises TypeError: for a non-awaitable, or ``seconds`` that is neither
        a number nor None.
    :raises ValueError: for a NaN ``seconds``.
    :raises RuntimeError: outside a corosio_py task, or when a task waits
        for itself.
    :raises TimeoutError: when time ran out.
    """
    try:
        limit = timeout(seconds)
        caller = _check_awaitable(awaitable, "wait_for()")
    except (TypeError, ValueError, RuntimeError):
        _close_unstarted(awaitable)
        raise
    if not isinstance(awaitable, Task):
        with limit:
            return await awaitable
    if awaitable is caller:
        raise RuntimeError("a task cannot wait for itself")
    return await _wait_for_task(awaitable, limit)


async def _wait_for_task(task: Task[T], limit: timeout) -> T:
    watch = _Watch()
    watch.add(task)
    try:
        with limit:
            await watch.until(all_done=True)
    except TimeoutError:
        if await _cancel_and_wait(task, watch):
            raise Cancelled() from None  # the caller was cancelled meanwhile
        if task.cancelled():
            raise  # the TimeoutError
        # It finished anyway: its own outcome, below.
    except Cancelled:
        await _cancel_and_wait(task, watch)
        raise
    return task.result()


async def _cancel_and_wait(task: Task[Any], watch: _Watch) -> bool:
    """Cancel ``task`` and wait until it is done, even if the caller is
    cancelled meanwhile; return True if it was."""
    task.cancel()
    return await _wait_all_shielded(watch, task.cancel)


async def shield(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, but let it go on if the waiting task is cancelled.

    A coroutine (or another awaitable) is started as a task on the calling
    task's context; a :class:`Task` is awaited as it is.  Cancelling the
    waiting task raises ``Cancelled`` in it at once and only ends its wait:
    the inner task runs on to its end.  Its result is then kept in that
    task -- pass a Task (``shield(spawn(ctx, coro))``) to be able to
    retrieve it -- and, like any task's, its exception is logged if nobody
    retrieves it.

    :raises TypeError: for a non-awaitable.
    :raises RuntimeError: outside a corosio_py task.
    """
    try:
        caller = _check_awaitable(awaitable, "shield()")
    except (TypeError, RuntimeError):
        _close_unstarted(awaitable)
        raise
    inner = awaitable if isinstance(awaitable, Task) else spawn(caller.context, awaitable)
    return await inner
