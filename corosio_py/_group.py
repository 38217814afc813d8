"""gather() and TaskGroup: wait for several tasks, cancel the rest on error."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, final

from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._spawn import _require_task, spawn
from ._task_ops import CancelScope
from ._tasks import Task

__all__ = ("TaskGroup", "gather")


class _Watch(Operation):
    """Counts finishing children; one parent task awaits a condition on them.

    ``await watch.until(all_done=...)`` completes when every child is done,
    or (``all_done=False``) as soon as one failed.  Thread-safe: children
    finish on any thread.
    """

    __slots__ = ("_lock", "_remaining", "failed", "_all_done", "_waiter")

    def __init__(self) -> None:
        super().__init__()
        self._awaited = True  # internal, reused: never "unawaited"
        self._lock = threading.Lock()
        self._remaining = 0  # children not yet done (_lock)
        self.failed: list[Task[Any]] = []  # children that raised, in order (_lock)
        # Set by the one waiting task before it awaits (handed to the
        # completing thread through _lock, which start() takes).
        self._all_done = True
        self._waiter: Task[Any] | None = None  # the parked waiting task (_lock)

    def add(self, child: Task[Any]) -> None:
        with self._lock:
            self._remaining += 1
        child.add_done_callback(self._child_done)

    def until(self, *, all_done: bool) -> _Watch:
        self._all_done = all_done
        return self

    def _satisfied_locked(self) -> bool:
        return self._remaining == 0 or (not self._all_done and bool(self.failed))

    def _child_done(self, child: Task[Any]) -> None:
        with self._lock:
            self._remaining -= 1
            if child._exception is not None:
                self.failed.append(child)
            waiter = self._waiter
            if waiter is None or not self._satisfied_locked():
                return
            self._waiter = None
        waiter._sched.wake(waiter.wakeup(None, None))

    def start(self, task: Task[Any]) -> object:
        with self._lock:
            if self._satisfied_locked():
                return None
            self._waiter = task
            return PENDING

    def cancel(self, task: Task[Any]) -> bool:
        with self._lock:
            if self._waiter is not task:
                return False
            self._waiter = None
        task._sched.wake(task.wakeup(None, Cancelled()))
        return True


async def _wait_all_shielded(watch: _Watch, on_cancel: Callable[[], object]) -> bool:
    """Wait until every child is done, even if cancelled meanwhile.

    A cancellation of the waiting task calls ``on_cancel`` (which cancels
    the children) and the wait goes on.  Returns True if that happened.
    """
    cancelled = False
    while True:
        try:
            await watch.until(all_done=True)
            return cancelled
        except Cancelled:
            cancelled = True
            on_cancel()


async def gather(*awaitables: Any, return_exceptions: bool = False) -> list[Any]:
    """Run coroutines (and await tasks) concurrently; results in argument order.

    On the first error the others are cancelled and waited for, and that
    error is raised.  With ``return_exceptions=True`` every child runs to
    its end and an error (``Cancelled`` too, for a child that something
    else cancelled) takes the place of its result; no sibling is cancelled.
    Either way, if the gathering task is cancelled, so are the others.

    :raises TypeError: for a non-awaitable, or a non-bool ``return_exceptions``.
    """
    parent = _require_task("gather()")
    bad = [aw for aw in awaitables if not isinstance(aw, Awaitable)]
    if bad or not isinstance(return_exceptions, bool):
        for aw in awaitables:
            if isinstance(aw, Coroutine):
                aw.close()  # never started: do not leave it unawaited
        if bad:
            raise TypeError(f"gather() takes awaitables, not {type(bad[0]).__name__}")
        raise TypeError(
            f"return_exceptions must be a bool, not {type(return_exceptions).__name__}"
        )
    children = [aw if isinstance(aw, Task) else spawn(parent._ctx, aw) for aw in awaitables]
    watch = _Watch()
    for child in children:
        watch.add(child)

    def cancel_children() -> None:
        for child in children:
            child.cancel()

    try:
        await watch.until(all_done=return_exceptions)
    except Cancelled:
        cancel_children()
        await _wait_all_shielded(watch, cancel_children)
        raise
    if return_exceptions:
        return [_outcome(child) for child in children]
    if watch.failed:
        cancel_children()
        await _wait_all_shielded(watch, cancel_children)
        first = watch.failed[0]
        first._retrieved = True
        assert first._exception is not None
        raise first._exception
    return [child.result() for child in children]


def _outcome(child: Task[Any]) -> Any:
    """A done child's result, or its exception as a value."""
    try:
        return child.result()
    except BaseException as error:  # Cancelled included: returned, not raised
        return error


@final
class TaskGroup:
    """``async with TaskGroup() as tg: tg.spawn(coro)`` -- structured tasks.

    ``tg.create_task(coro)`` is the same as ``tg.spawn(coro)``.

    The block waits for every child.  The first child error cancels the
    other children and the body; the group then raises an
    ``ExceptionGroup`` (``BaseExceptionGroup`` if needed) of the errors, as
    ``asyncio.TaskGroup`` does.
    """

    __slots__ = ("_lock", "_parent", "_watch", "_children", "_scope", "_closing", "_aborted")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _children and _aborted
        self._parent: Task[Any] | None = None  # written once, by __aenter__
        self._watch = _Watch()
        self._children: list[Task[Any]] = []  # (_lock)
        self._scope = CancelScope()  # its fields: the parent task's lock
        # Written by the parent task at __aexit__; read by spawn() (any
        # thread) as a one-field hint, confirmed by the running children.
        self._closing = False
        self._aborted = False  # (_lock)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Task[Any]:
        """Start ``coro`` as a child task of the group."""
        parent = self._parent
        if parent is None:
            raise RuntimeError("TaskGroup.spawn() before 'async with'")
        if self._closing and not self._children_running():
            raise RuntimeError("the TaskGroup is finished")
        child = spawn(parent._ctx, coro)
        with self._lock:
            self._children.append(child)
            aborted = self._aborted
        child.add_done_callback(self._child_done)
        self._watch.add(child)
        if aborted:
            child.cancel()
        return child

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, name: object = None, context: object = None
    ) -> Task[Any]:
        """The same as :meth:`spawn`, under asyncio's name.

        ``name=`` is accepted and ignored (tasks have no names).
        ``context=`` is refused unless None: a corosio_py task has no
        ``contextvars.Context`` of its own to replace.

        :raises TypeError: for a ``context`` other than None.
        """
        if context is not None:
            if isinstance(coro, Coroutine):
                coro.close()  # never started: do not leave it unawaited
            raise TypeError("TaskGroup.create_task() does not support context=")
        return self.spawn(coro)

    def _children_running(self) -> bool:
        with self._lock:
            return any(not child.done() for child in self._children)

    def _abort(self) -> bool:
        """Mark the group aborted and cancel every child; False if it was."""
        with self._lock:
            if self._aborted:
                return False
            self._aborted = True
            children = list(self._children)
        for child in children:
            child.cancel()  # a done child ignores it
        return True

    def _child_done(self, child: Task[Any]) -> None:
        exc = child._exception
        if exc is None or isinstance(exc, Cancelled) or not self._abort():
            return
        parent = self._parent
        if parent is not None:
            parent._cancel_for_scope(self._scope)

    async def __aenter__(self) -> TaskGroup:
        if self._parent is not None:
            raise RuntimeError("a TaskGroup cannot be entered twice")
        self._parent = _require_task("TaskGroup")
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        parent = self._parent
        assert parent is not None
        self._closing = True
        if exc is not None:
            self._abort()
        cancelled_while_waiting = await _wait_all_shielded(self._watch, self._abort)
        ours = parent._close_scope(self._scope)
        errors: list[BaseException] = []
        with self._lock:
            children = list(self._children)
        for child in children:
            child_exc = child._exception
            if child_exc is not None and not isinstance(child_exc, Cancelled):
                child._retrieved = True
                errors.append(child_exc)
        if exc is not None and not isinstance(exc, Cancelled):
            errors.insert(0, exc)
        if errors:
            if all(isinstance(e, Exception) for e in errors):
                raise ExceptionGroup("unhandled errors in a TaskGroup", errors)  # type: ignore[type-var]
            raise BaseExceptionGroup("unhandled errors in a TaskGroup", errors)
        if isinstance(exc, Cancelled) and ours:
            return True  # our own abort of the body, nothing failed
        if cancelled_while_waiting and exc is None:
            raise Cancelled()
        return False
