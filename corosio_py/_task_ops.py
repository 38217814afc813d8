"""The small operations on tasks: joining one, yielding, and cancel scopes.

``await task`` (:class:`_JoinOp`), ``await yield_now()`` (:class:`_YieldOp`)
and :class:`CancelScope` (the region a timeout or a task group may cancel)
live here, apart from the driver in :mod:`corosio_py._tasks` that resumes
the tasks.  They reach into a task's fields under the locks the driver
documents (the done lock for a join; the task lock for a scope).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import Cancelled
from ._ops import PENDING, Operation

if TYPE_CHECKING:
    from ._tasks import Task

__all__ = ("CancelScope", "yield_now")


class CancelScope:
    """A region of a task that something may cancel (a timeout, a group).

    ``active`` and ``fired`` are guarded by the task's lock.
    """

    __slots__ = ("active", "fired")

    def __init__(self) -> None:
        self.active = True
        self.fired = False


class _JoinOp(Operation):
    """``await task``: completes when the task is done."""

    __slots__ = ("_target", "_waiter")

    def __init__(self, target: Task[Any]) -> None:
        super().__init__()
        self._target = target
        self._waiter: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        target = self._target
        if target is task:
            raise RuntimeError("a task cannot await itself")
        with target._done_lock:
            if not target._done:
                self._waiter = task
                target._add_callback_locked(self._on_done)
                return PENDING
            target._retrieved = True
        if target._exception is not None:
            raise target._exception
        return target._result

    def _on_done(self, target: Task[Any]) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            target._retrieved = True
            if target._exception is not None:
                waiter._sched.wake(waiter.wakeup(None, target._exception))
            else:
                waiter._sched.wake(waiter.wakeup(target._result, None))

    def cancel(self, task: Task[Any]) -> bool:
        target = self._target
        with target._done_lock:
            if target._done or self._waiter is not task:
                return False
            assert target._callbacks is not None
            target._callbacks.remove(self._on_done)
            self._waiter = None
        task._sched.wake(task.wakeup(None, Cancelled()))
        return True


class _YieldOp(Operation):
    """``await yield_now()``: re-queue the task behind other ready work."""

    __slots__ = ()

    def start(self, task: Task[Any]) -> object:
        # No outcome (_NOTHING in the slot): a pending cancel lands here.
        # wake, not post: a close() that ran meanwhile abandons the task.
        task._sched.wake(task._resume_cb)
        return PENDING


_YIELD = _YieldOp()
_YIELD._awaited = True  # shared by every yield_now(): never "unawaited"


def yield_now() -> Operation:
    """Awaitable: let other ready work run, then continue."""
    return _YIELD
