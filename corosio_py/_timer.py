"""Timer and sleep: waits on the scheduler's timer queue."""

from __future__ import annotations

import threading
import time
from typing import Any, final

from . import _validate
from ._cancel import StopToken, check_token
from ._context import IOContext
from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._scheduler import Handler
from ._tasks import Task

__all__ = ("Timer", "sleep")


class _TimerWait(Operation):
    """One ``await`` on a deadline; a :class:`TimerWaiter` in the timer queue.

    One per ``sleep``: ``__init__`` sets its fields itself, as the I/O
    operations do (see ``_io_ops``).
    """

    __slots__ = ("deadline", "pending", "_task", "_timer")

    def __init__(self, deadline: float, timer: Timer | None, stop_token: StopToken | None) -> None:
        Operation.__init__(self, stop_token)
        self.deadline = deadline
        self.pending = False
        self._timer = timer
        self._task: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        sched = task._sched
        timer = self._timer
        if timer is not None and timer._sched is not sched:
            raise ValueError("the Timer belongs to another IOContext")
        self._task = task
        if self.deadline <= time.monotonic():
            # Already expired: still a yield point (other tasks get a turn and
            # a pending cancel lands), never an inline completion.
            sched.post(task.wakeup(None, None))
            return PENDING
        if timer is not None:
            timer._attach(self)
        else:
            sched.add_timer(self, self.deadline)
        return PENDING

    def expired(self) -> Handler:
        task = self._task
        assert task is not None
        return task.wakeup(None, None)

    def cancel(self, task: Task[Any]) -> bool:
        if self._task is not task or not task._sched.timers.remove(self):
            return False
        task._sched.post_counted(task.wakeup(None, Cancelled()))
        return True


def sleep(seconds: float, *, stop_token: StopToken | None = None) -> Operation:
    """Awaitable: suspend the task for ``seconds`` (<= 0: just yield)."""
    return _TimerWait(_validate.deadline_after(seconds), None, check_token(stop_token))


@final
class Timer:
    """A deadline that any number of tasks may ``await timer.wait()`` on.

    ``cancel``, ``cancel_one`` and re-arming may be called from any thread;
    each completes the affected waiters with ``Cancelled``.
    """

    __slots__ = ("_ctx", "_sched", "_expiry", "_lock", "_waiters")

    def __init__(self, ctx: IOContext) -> None:
        if not isinstance(ctx, IOContext):
            raise TypeError(f"Timer needs an IOContext, got {type(ctx).__name__}")
        self._ctx = ctx
        self._sched = ctx._sched
        self._expiry = time.monotonic()
        self._lock = threading.Lock()
        self._waiters: list[_TimerWait] = []  # oldest first (lock)

    @property
    def context(self) -> IOContext:
        """The context whose reactor times this timer."""
        return self._ctx

    def expiry(self) -> float:
        """The deadline as a ``time.monotonic()`` value."""
        return self._expiry

    def expires_at(self, deadline: float) -> int:
        """Set the deadline; cancel pending waiters and return how many."""
        value = _validate.deadline(deadline)
        self._expiry = value
        return self.cancel()

    def expires_after(self, seconds: float) -> int:
        """Set the deadline ``seconds`` from now; cancel waiters, return how many."""
        value = _validate.deadline_after(seconds)
        self._expiry = value
        return self.cancel()

    def wait(self, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: until the expiry; ``Cancelled`` if cancelled first."""
        return _TimerWait(self._expiry, self, check_token(stop_token))

    def cancel(self) -> int:
        """Cancel every pending waiter; return how many were cancelled."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        return self._complete_cancelled(self._sched.timers.remove_all(list(waiters)))

    def cancel_one(self) -> int:
        """Cancel the oldest pending waiter; return 1, or 0 if none."""
        timers = self._sched.timers
        with self._lock:
            while self._waiters:
                waiter = self._waiters.pop(0)
                if timers.remove(waiter):
                    break
            else:
                return 0
        return self._complete_cancelled([waiter])

    def _complete_cancelled(self, waiters: list[Any]) -> int:
        for waiter in waiters:
            task = waiter._task
            self._sched.post_counted(task.wakeup(None, Cancelled()))
        return len(waiters)

    def _attach(self, waiter: _TimerWait) -> None:
        with self._lock:
            self._waiters = [w for w in self._waiters if w.pending]
            self._waiters.append(waiter)
            self._sched.add_timer(waiter, waiter.deadline)

    def __repr__(self) -> str:
        return f"<Timer expiry={self._expiry:.6f} waiters={len(self._waiters)}>"
