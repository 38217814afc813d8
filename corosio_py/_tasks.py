"""Tasks: the coroutine driver that runs ``async def`` code on an IOContext.

:class:`Task` and its driver (:meth:`Task._step`).  The entry points
(``spawn``, ``run``, ``current_task``) are in :mod:`corosio_py._spawn`; the
small operations on tasks (joining, ``yield_now``, cancel scopes) in
:mod:`corosio_py._task_ops`.

A task is resumed by whichever thread runs its queued resumption, never by
two threads at once: a resumption is queued only by the single party that
completed (claimed) the operation the task was suspended on.  Everything the
driver shares with other threads -- the current operation, a pending cancel
request, whether a step is running (so that ``IOContext.close()`` never
closes a running coroutine) -- is guarded by ``Task._lock``; the result and
done callbacks by ``Task._done_lock``.  Lock order: task lock, then an
operation's own lock (descriptor, timer queue, another task's done lock,
a stop source's lock), then the scheduler lock.

Cancellation never loses data: a cancel that arrives after the awaited
operation completed leaves the result to be delivered and stays pending
until the task's next suspension (see :meth:`Task._step`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, final

from ._cancel import StopToken, check_token
from ._context import Executor, IOContext
from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._scheduler import Handler, InvariantError, thread_state
from ._task_ops import _YIELD, _JoinOp

if TYPE_CHECKING:
    from ._task_ops import CancelScope

__all__ = ("Task",)

T = TypeVar("T")
logger = logging.getLogger("corosio_py")

#: Completions a task may consume inline in one resumption before it is
#: re-queued: one busy socket must not starve the others.
INLINE_BUDGET = 16



#: Marker for "cancel requested by Task.cancel()" in ``Task._cancel_requested``.
_BY_TASK_CANCEL = "task"

#: The delivery slot's "no operation outcome" marker (see ``Task._value``).
_NOTHING: Final = object()


@final
class Task(Generic[T]):
    """A coroutine running on an :class:`IOContext`; also awaitable.

    Create with :func:`spawn`.  ``await task`` returns its result or raises
    its exception (or ``Cancelled``).
    """

    __slots__ = (
        "__weakref__",
        "_coro",
        "_ctx",
        "_sched",
        "_lock",
        "_done_lock",
        "_op",
        "_token",
        "_suspension",
        "_cancel_requested",
        "_cancel_count",
        "_stepping",
        "_abandon_requested",
        "_value",
        "_exc",
        "_resume_cb",
        "_done",
        "_result",
        "_exception",
        "_callbacks",
        "_retrieved",
        "_wakeups",
        "_executor",
    )

    def __init__(self, ctx: IOContext, coro: Coroutine[Any, Any, T]) -> None:
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._ctx = ctx
        self._sched = ctx._sched
        self._lock = threading.Lock()
        # A leaf lock, never held while taking another: a shared stripe
        # saves an allocation per task.
        self._done_lock = _DONE_LOCKS[(id(self) >> 4) & (len(_DONE_LOCKS) - 1)]
        # Guarded by ``_lock`` (the task lock):
        self._op: Operation | None = None  # last operation started
        self._suspension = 0  # numbers the suspensions
        self._cancel_requested: object = None  # None, _BY_TASK_CANCEL or a CancelScope
        self._cancel_count = 0  # Task.cancel() calls that took effect
        self._stepping = False  # a thread is inside _step (close() must not close coro)
        self._abandon_requested = False  # close() ran during a step: abandon at its end
        # ``_coro`` is read under ``_lock`` at the start of a step and cleared
        # under it by _abandon; _finish clears it on the stepping thread.
        # Owned by whoever runs the task (one thread at a time, handed over
        # through the scheduler queue, whose lock orders the accesses):
        self._token: StopToken | None = None  # the parked operation's stop token
        # The delivery slot: written once by the claimer of the awaited
        # operation before it queues the resumption, read by that resumption.
        # _NOTHING: the resumption carries no operation's outcome (the first
        # step, a yield point), so a pending cancel can be delivered there.
        self._value: object = _NOTHING
        self._exc: BaseException | None = None
        self._resume_cb: Handler = self._step
        # Guarded by ``_done_lock``; ``_done`` is written last and may be read
        # without the lock as a single-field hint (done()).
        self._done = False
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Task[T]], object]] | None = None  # made on demand
        self._retrieved = False
        self._wakeups = 0  # COROSIO_DEBUG: completions queued since the last resume
        # Written once, before the task is queued: where it runs (the
        # context's executor or a strand); current_executor() returns it.
        self._executor: Executor = ctx._executor

    # ------------------------------------------------------------ public API

    def done(self) -> bool:
        """Whether the coroutine finished (returned, raised or was cancelled)."""
        return self._done  # one field, written last under the done lock

    def cancelled(self) -> bool:
        """Whether the task finished by ``Cancelled``."""
        with self._done_lock:  # two fields: read them together
            return self._done and isinstance(self._exception, Cancelled)

    def result(self) -> T:
        """The coroutine's return value; raises its exception or ``Cancelled``.

        :raises RuntimeError: while the task is still pending.
        """
        with self._done_lock:
            if not self._done:
                raise RuntimeError("the task is not done")
            self._retrieved = True
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The coroutine's exception or None; raises ``Cancelled`` if cancelled.

        :raises RuntimeError: while the task is still pending.
        """
        with self._done_lock:
            if not self._done:
                raise RuntimeError("the task is not done")
            self._retrieved = True
        if isinstance(self._exception, Cancelled):
            raise self._exception
        return self._exception

    def cancel(self) -> bool:
        """Request cancellation; False once the task is done.  Any thread.

        The operation the task is suspended on completes with ``Cancelled``
        at its ``await``; a running (or queued) task is cancelled at its next
        suspension.  An operation that already completed (bytes received or
        sent, a connection accepted) still delivers its result: the
        cancellation then lands at the task's next suspension.  A task
        cancelled before its first step never runs.
        """
        with self._lock:
            if self._done:
                return False
            self._cancel_count += 1
            op = self._op
            if op is not None and op.cancel(self):
                return True
            self._cancel_requested = _BY_TASK_CANCEL
            return True

    def add_done_callback(self, fn: Callable[[Task[T]], object]) -> None:
        """Call ``fn(task)`` when done (on the finishing thread), or now."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        with self._done_lock:
            if not self._done:
                self._add_callback_locked(fn)
                return
        fn(self)

    def _add_callback_locked(self, fn: Callable[[Task[T]], object]) -> None:
        if self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def remove_done_callback(self, fn: Callable[[Task[T]], object]) -> int:
        """Remove every registration of ``fn``; return how many."""
        with self._done_lock:
            if self._done or self._callbacks is None:
                return 0
            before = len(self._callbacks)
            self._callbacks = [cb for cb in self._callbacks if cb != fn]
            return before - len(self._callbacks)

    @property
    def context(self) -> IOContext:
        """The context the task runs on."""
        return self._ctx

    def __await__(self) -> Generator[Any, Any, T]:
        return _JoinOp(self).__await__()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        coro = self._coro
        name = getattr(coro, "__qualname__", "?")
        with self._done_lock:
            done, exc, result = self._done, self._exception, self._result
        if not done:
            state = "pending"
        elif isinstance(exc, Cancelled):
            state = "cancelled"
        elif exc is not None:
            state = f"exception={exc!r}"
        else:
            state = f"result={result!r}"
        return f"<Task {name} {state}>"

    def __del__(self) -> None:
        exc = self._exception
        if exc is not None and not self._retrieved and not isinstance(exc, Cancelled):
            logger.error("Task exception was never retrieved: %r", self, exc_info=exc)

    # ------------------------------------------------------------ the driver

    def wakeup(self, value: object, exc: BaseException | None) -> Handler:
        """Store the outcome of the awaited operation; return the handler
        that resumes the task (the caller queues it exactly once)."""
        if self._sched.debug:
            self._check_single_wakeup()
        self._value = value
        self._exc = exc
        return self._resume_cb

    def _check_single_wakeup(self) -> None:
        """COROSIO_DEBUG: an operation must be completed exactly once."""
        with self._done_lock:
            if self._wakeups:
                raise InvariantError(f"{self!r} was completed twice before it resumed")
            self._wakeups += 1

    def _step(self) -> None:
        """Resume the coroutine.  A queued handler; see the module docstring.

        The outcome of a completed operation is always delivered, even when
        a cancel (``Task.cancel()``, a stop token, a timeout) arrived after
        it completed: the request stays pending and lands at the task's next
        suspension, so no data is lost ("Cancellation never loses data").
        Only a resumption that carries no outcome (the first step, a yield
        point) takes a pending request at once.
        """
        lock = self._lock
        value = self._value
        exc = self._exc
        self._value = _NOTHING
        self._exc = None
        if self._sched.debug:
            with self._done_lock:
                self._wakeups = 0
        token = self._token
        if token is not None:
            self._token = None
            token._source._unregister(id(self))
        lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
        try:
            coro = self._coro
            if coro is not None:
                self._stepping = True
                if self._cancel_requested is not None and (
                    value is _NOTHING or isinstance(exc, Cancelled)
                ):
                    # Nothing completed, so nothing is lost: cancel here.  (A
                    # request made while a Cancelled was already on its way
                    # merges with it.)
                    self._cancel_requested = None
                    if exc is None:
                        exc = Cancelled()
        finally:
            lock.release()
        if coro is None:
            # Abandoned by IOContext.close(): release a result nobody gets.
            if value is not _NOTHING and self._op is not None:
                self._op.discard(value)
            return
        if value is _NOTHING:
            value = None
            if token is not None and token.stop_requested and exc is None:
                exc = Cancelled()  # a yield point under a stopped token
        frame = thread_state.frame
        assert frame is not None, "a task is resumed by a thread in run*"
        prev = frame.task
        frame.task = self
        budget = INLINE_BUDGET
        try:
            while True:
                try:
                    if exc is None:
                        yielded = coro.send(value)
                    else:
                        yielded = coro.throw(exc)
                except StopIteration as stop:
                    self._finish(stop.value, None)
                    return
                except BaseException as error:
                    self._finish(None, error)
                    if isinstance(error, (Exception, Cancelled, GeneratorExit)):
                        return
                    raise  # KeyboardInterrupt, SystemExit: leave run()
                value, exc = None, None
                if yielded is _YIELD or yielded is None:
                    # A yield point: a pending cancel lands here; otherwise
                    # the task is re-queued with no outcome (_NOTHING).
                    lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
                    try:
                        if self._take_request_locked():
                            exc = Cancelled()
                            continue
                        abandon = self._end_step_locked()
                    finally:
                        lock.release()
                    if abandon:
                        break  # close() ran meanwhile: abandon below
                    self._sched.wake(self._resume_cb)
                    return
                if not isinstance(yielded, Operation):
                    exc = TypeError(f"a corosio_py task cannot await {type(yielded).__name__}")
                    continue
                lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
                try:
                    if self._take_request_locked():
                        exc = Cancelled()  # the operation never starts
                        continue
                    self._op = yielded
                    self._suspension += 1
                    token = yielded.stop_token
                    if token is not None:
                        try:
                            check_token(token)
                        except TypeError as error:
                            exc = error  # a bad stop_token= fails at the await
                            continue
                        if not self._watch_token(yielded, token):
                            exc = Cancelled()  # already stopped: never starts
                            continue
                        self._token = token
                    try:
                        value = yielded.start(self)
                    except BaseException as error:
                        value, exc = None, error
                    if value is PENDING:
                        abandon = self._end_step_locked()
                        if not abandon:
                            return
                    elif token is not None:
                        self._token = None
                        token._source._unregister(id(self))
                finally:
                    lock.release()
                if value is PENDING:
                    break  # close() ran meanwhile: abandon below
                if exc is not None:
                    continue
                budget -= 1
                if budget <= 0:
                    # Re-queued with the result: delivered even if a cancel
                    # lands before the task runs again.
                    with self._lock:
                        abandon = self._end_step_locked()
                    if not abandon:
                        self._sched.wake(self.wakeup(value, None))
                        return
                    if self._op is not None:
                        self._op.discard(value)
                    break
        finally:
            frame.task = prev
        self._abandon()

    def _end_step_locked(self) -> bool:
        """The step is about to give the coroutine up (task lock held).

        Returns True if ``IOContext.close()`` asked to abandon the task while
        it ran; the caller then abandons it instead of suspending it.
        """
        self._stepping = False
        return self._abandon_requested

    def _take_request_locked(self) -> bool:
        if self._cancel_requested is None:
            return False
        self._cancel_requested = None
        return True

    def _watch_token(self, op: Operation, token: StopToken) -> bool:
        """Cancel ``op`` when its stop token fires; False if already stopped.

        Called under the lock before the operation starts, so a firing
        callback waits for the lock and then finds the operation parked (and
        claims it) or already completed.
        """
        fired = functools.partial(self._token_fired, op, self._suspension)
        return token._source._register(id(self), fired)

    def _token_fired(self, op: Operation, suspension: int) -> None:
        with self._lock:
            if self._op is op and self._suspension == suspension:
                op.cancel(self)

    def _cancel_for_scope(self, scope: CancelScope) -> None:
        """A scope (timeout, task group) cancels the current or next suspension."""
        with self._lock:
            if self._done or not scope.active:
                return
            scope.fired = True
            op = self._op
            if op is not None and op.cancel(self):
                return
            if self._cancel_requested is None:
                self._cancel_requested = scope

    def _close_scope(self, scope: CancelScope) -> bool:
        """A scope ends: drop its unconsumed request; return whether it fired."""
        with self._lock:
            scope.active = False
            if self._cancel_requested is scope:
                self._cancel_requested = None
            return scope.fired

    def _finish(self, value: T | None, exc: BaseException | None) -> None:
        with self._done_lock:
            self._result = value
            self._exception = exc
            self._done = True  # last: done() reads it without the lock
            callbacks, self._callbacks = self._callbacks, None
        self._coro = None
        self._ctx._task_finished(self)
        self._resume_cb = _finished_step  # break the task <-> bound method cycle
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:
                logger.exception("exception in a done callback of %r", self)

    def _abandon(self) -> None:
        """Context shutdown: close the coroutine, report ``Cancelled``.

        Never closes a coroutine that another thread is running: during a
        step it only marks the task, and the step abandons it when it gives
        the coroutine up (or the task finishes by itself first).
        """
        with self._lock:
            if self._stepping:
                self._abandon_requested = True
                return
            coro, self._coro = self._coro, None
            op = self._op
            if coro is not None and op is not None:
                op.abandon(self)  # before reading the slot: see Operation.abandon
        if coro is None:
            return  # finished, or already abandoned
        # A resumption queued with a completed result nobody will receive
        # (its step, should it still run, finds no coroutine and returns).
        value, self._value = self._value, _NOTHING
        if value is not _NOTHING and op is not None:
            op.discard(value)
        try:
            coro.close()  # runs its finally blocks
        except (RuntimeError, ValueError):
            logger.exception("closing the coroutine of %r failed", self)
        self._finish(None, Cancelled("the IOContext was closed"))


#: The stripes of the tasks' done locks (a power of two).
_DONE_LOCKS: Final = tuple(threading.Lock() for _ in range(64))


def _finished_step() -> None:
    """The resumption handler of a finished task: nothing to resume."""
