"""``with timeout(seconds):`` -- cancel what a task awaits when time runs out."""

from __future__ import annotations

import time
from typing import Any, final

from . import _validate
from ._errors import Cancelled
from ._scheduler import Handler
from ._spawn import _require_task
from ._task_ops import CancelScope
from ._tasks import Task

__all__ = ("timeout",)


class _ScopeDeadline:
    """The timer-queue entry (a :class:`TimerWaiter`) of one timeout scope."""

    __slots__ = ("deadline", "pending", "_task", "_scope")

    def __init__(self, task: Task[Any], scope: CancelScope) -> None:
        # The TimerWaiter fields, guarded by the timer queue's lock.
        self.deadline = 0.0
        self.pending = False
        self._task = task
        self._scope = scope

    def expired(self) -> Handler:
        return self._fire

    def _fire(self) -> None:
        self._task._cancel_for_scope(self._scope)


@final
class timeout:  # noqa: N801 - a lower-case context manager, like asyncio.timeout
    """Cancel what the current task awaits inside the block after ``seconds``.

    On expiry the awaited operation completes with ``Cancelled`` and the
    ``with`` raises ``TimeoutError``.  A non-positive ``seconds`` lets the
    body run up to its first suspension, which is cancelled at once;
    ``None`` never expires.  Use it inside a corosio_py task
    (``RuntimeError`` otherwise), as ``with`` or ``async with``.

    Cancellation never loses data: an operation that had already completed
    when the deadline passed (its task not yet resumed) delivers its result,
    and the expiry cancels the next suspension inside the block instead.
    If the block ends without suspending again, nothing was cancelled: it
    exits normally (``expired`` is still True), as trio and asyncio do.
    """

    __slots__ = ("_delay", "_task", "_scope", "_entry", "_cancels_at_enter")

    def __init__(self, seconds: float | None) -> None:
        # None: never expires (no timer entry at all).
        self._delay = None if seconds is None else _validate.seconds(seconds)
        self._task: Task[Any] | None = None
        self._scope = CancelScope()
        self._entry: _ScopeDeadline | None = None
        self._cancels_at_enter = 0

    @property
    def expired(self) -> bool:
        """Whether the deadline passed while the block was running."""
        return self._scope.fired

    def __enter__(self) -> timeout:
        if self._task is not None:
            raise RuntimeError("a timeout object cannot be entered twice")
        task = self._task = _require_task("timeout()")
        self._cancels_at_enter = task._cancel_count
        delay = self._delay
        if delay is None:
            return self  # never expires: nothing to arm
        if delay <= 0.0:
            task._cancel_for_scope(self._scope)
        else:
            entry = self._entry = _ScopeDeadline(task, self._scope)
            task._sched.add_timer(entry, time.monotonic() + min(delay, 1e15))
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        task = self._task
        assert task is not None
        entry = self._entry
        if entry is not None and task._sched.timers.remove(entry):
            task._sched.work_finished()
        fired = task._close_scope(self._scope)
        if fired and isinstance(exc, Cancelled) and task._cancel_count == self._cancels_at_enter:
            raise TimeoutError(f"timed out after {self._delay} s") from None

    async def __aenter__(self) -> timeout:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)
