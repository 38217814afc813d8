"""HelperCall: await a blocking call run on a helper thread.

A blocking call (``getaddrinfo``, a user's function in ``to_thread``) must
never run on a thread of the context -- least of all the reactor.  A
:class:`HelperCall` runs it on a thread of the process-wide helper pool
(:mod:`corosio_py._workers`) and resumes the awaiting task with its result
or error, exactly once: the helper thread's outcome and a cancel race to
claim the operation under its lock; the loser does nothing, so an outcome
that arrives after a cancel is simply dropped (the function itself cannot
be interrupted).

The winner queues the task's resumption with ``post_counted``, which any
thread may call on both schedulers (with ``concurrency_hint=1`` the
append is atomic and interrupts the reactor when the caller is not the
context's running thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._workers import submit

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("HelperCall",)


class HelperCall(Operation):
    """Await ``fn()`` run on a helper thread.

    ``_claimed`` is guarded by ``_lock``; ``_task`` is written once in
    :meth:`start` before the helper thread can see the operation.  ``_fn``
    belongs to the helper thread once submitted (it calls and drops it).
    """

    __slots__ = ("__weakref__", "_fn", "_lock", "_claimed", "_task")

    def __init__(self, fn: Callable[[], object], stop_token: StopToken | None = None) -> None:
        self.stop_token = stop_token
        self._awaited = True  # made by the library's own coroutines, awaited at once
        self._fn = fn
        self._lock = threading.Lock()
        self._claimed = False  # a completion (outcome, cancel, close) took it
        self._task: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        sched = task._sched
        self._task = task
        # Counted before the helper can complete it; the completion moves
        # the unit on with post_counted.  Tracked so that IOContext.close()
        # abandons it and a late outcome posts nothing.
        sched.work_started()
        try:
            task.context._track(self)
            submit(self._run)
        except BaseException:
            self._claimed = True  # nobody else can see the op yet
            sched.work_finished()
            raise
        return PENDING

    def _run(self) -> None:
        """The helper thread: call, then hand the outcome back once."""
        result: object = None
        error: BaseException | None = None
        try:
            result = self._fn()
        except BaseException as exc:  # delivered to the task, never lost here
            error = exc
        self._fn = _done  # drop the call's references (arguments, context)
        with self._lock:
            if self._claimed:
                return  # cancelled or abandoned: drop the late outcome
            self._claimed = True
        task = self._task
        assert task is not None
        task._sched.post_counted(task.wakeup(result, error))

    def cancel(self, task: Task[Any]) -> bool:
        with self._lock:
            if self._claimed or self._task is not task:
                return False
            self._claimed = True
        task._sched.post_counted(task.wakeup(None, Cancelled()))
        return True

    def _shutdown(self) -> None:
        """The context is closing: abandon without posting."""
        with self._lock:
            self._claimed = True


def _done() -> object:
    """What a finished call's ``_fn`` is rebound to."""
    return None
