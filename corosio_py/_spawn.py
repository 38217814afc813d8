"""The entry points of tasks: :func:`spawn`, :func:`run`, :func:`current_task`
and :func:`current_executor`.

They create and look up :class:`~corosio_py._tasks.Task` objects; the driver
that runs them is in :mod:`corosio_py._tasks`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from ._context import Executor, IOContext
from ._ops import Operation
from ._scheduler import thread_state
from ._strand import Strand
from ._tasks import Task

__all__ = ("current_executor", "current_task", "run", "spawn")

T = TypeVar("T")


def _context_of(ctx_or_executor: object) -> IOContext:
    if isinstance(ctx_or_executor, IOContext):
        return ctx_or_executor
    if isinstance(ctx_or_executor, Executor):
        return ctx_or_executor.context
    raise TypeError(
        f"expected an IOContext or Executor, got {type(ctx_or_executor).__name__}"
    )


def spawn(ctx_or_executor: IOContext | Executor, coro: Awaitable[T]) -> Task[T]:
    """Start ``coro`` as a task on the context; returns the :class:`Task`.

    On a :class:`Strand`, every step of the task runs on that strand.

    The task is queued (it never runs inline), so it counts as outstanding
    work until it finishes.  Raises ``RuntimeError`` on a closed context.
    """
    ctx = _context_of(ctx_or_executor)
    if isinstance(coro, Coroutine):
        body: Coroutine[Any, Any, T] = coro
    elif isinstance(coro, Awaitable):
        if isinstance(coro, Operation):
            # Handed over to be awaited: a cancel before the first step
            # means it never starts, which is no "never awaited" mistake.
            coro._awaited = True
        body = _await(coro)  # an operation such as sleep() or read_some()
    else:
        raise TypeError(f"spawn() needs a coroutine or awaitable, got {type(coro).__name__}")
    task = Task(ctx, body)
    if isinstance(ctx_or_executor, Strand):
        # Every step enters the strand: the strand's tasks never overlap.
        task._executor = ctx_or_executor
        task._resume_cb = ctx_or_executor._task_resumer(task)
    try:
        ctx._task_started(task)
        ctx._sched.post(task._resume_cb)
    except BaseException:
        ctx._task_finished(task)
        task._coro = None
        body.close()
        raise
    return task


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def current_task() -> Task[Any] | None:
    """The task running on this thread, or None outside any task."""
    frame = thread_state.frame
    return frame.task if frame is not None else None


def current_executor() -> Executor:
    """The executor the running task was spawned on (its context's
    executor, or its strand).

    :raises RuntimeError: outside a task.
    """
    task = current_task()
    if task is None:
        raise RuntimeError("current_executor() called outside a corosio_py task")
    return task._executor


def _require_task(what: str) -> Task[Any]:
    task = current_task()
    if task is None:
        raise RuntimeError(f"{what} must be used inside a corosio_py task")
    return task


def run(coro: Coroutine[Any, Any, T], *, threads: int = 1, backend: str | None = None) -> T:
    """Run ``coro`` on a new context served by ``threads`` threads.

    Returns its result or raises its exception.  When it finishes the
    context is closed: other unfinished tasks are cancelled (their
    coroutines closed).

    :raises TypeError: for a non-coroutine or a non-int ``threads``.
    :raises ValueError: for ``threads < 1`` or an unknown ``backend``
        (``coro`` is closed, so no "never awaited" warning follows).
    """
    if not isinstance(coro, Coroutine):
        raise TypeError(f"run() needs a coroutine, got {type(coro).__name__}")
    try:
        # The coroutine is closed on every refusal: never "never awaited".
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int, not {type(threads).__name__}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        ctx = IOContext(backend=backend)
    except BaseException:
        coro.close()
        raise
    with ctx:
        main = spawn(ctx, coro)
        main.add_done_callback(lambda _: ctx.stop())
        errors: list[BaseException] = []

        def serve() -> None:
            while not main.done() and not ctx.stopped():
                try:
                    ctx.run()
                except BaseException as error:  # a posted function raised
                    errors.append(error)
                    ctx.stop()

        workers = [
            threading.Thread(target=serve, name=f"corosio-run-{i}", daemon=True)
            for i in range(1, threads)
        ]
        for worker in workers:
            worker.start()
        try:
            serve()
        finally:
            ctx.stop()
            for worker in workers:
                worker.join()
        if errors and not main.done():
            raise errors[0]
        if not main.done():
            raise RuntimeError("the context stopped before the coroutine finished")
        return main.result()
