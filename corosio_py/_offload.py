"""Blocking calls on helper threads, their outcome handed back to a task.

A blocking call (``getaddrinfo``, a user's function in ``to_thread``) must
never run on a thread of the context -- least of all the reactor.  A
:class:`HelperCall` runs it on a thread of one process-wide helper pool and
resumes the awaiting task with its result or error, exactly once: the
helper thread's outcome and a cancel race to claim the operation under its
lock; the loser does nothing, so an outcome that arrives after a cancel is
simply dropped (the function itself cannot be interrupted).

How the outcome gets back depends on the context:

* Default (any number of threads): the helper thread posts the task's
  resumption (posting from a foreign thread is thread-safe).
* ``concurrency_hint=1``: the scheduler takes no locks, so no other thread
  may touch it -- not even ours.  The operation then registers the read end
  of a socket pair with the reactor; the helper thread only sends one byte
  on it, and the context's own thread completes the operation from the
  readiness report (:meth:`HelperCall.on_ready`).  A socket pair rather
  than a pipe: the send passes MSG_NOSIGNAL, so a wake-up whose reader was
  already closed (cancel) can never raise SIGPIPE.

The pool is a ``concurrent.futures.ThreadPoolExecutor`` made on first use,
with that class's default size -- the same kind of pool as asyncio's
default executor, and it behaves the same way at interpreter exit: idle
threads are woken and end, but exit waits for a function that is still
running.  Calls beyond the pool's size queue until a thread is free.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._descriptor import MSG_NOSIGNAL
from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._socket import configure_socket

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from ._cancel import StopToken
    from ._scheduler import Scheduler
    from ._tasks import Task

__all__ = ("HelperCall",)


# ---------------------------------------------------------------- the pool

#: Guards ``_pool`` and ``_in_flight``; a leaf lock (nothing is taken under it).
_pool_lock = threading.Lock()
_idle = threading.Condition(_pool_lock)
_pool: ThreadPoolExecutor | None = None
#: Calls submitted whose hand-back has not finished (see :func:`settle`).
_in_flight = 0


def _submit(call: Callable[[], object]) -> None:
    """Run ``call()`` on a helper thread (the pool is made on first use)."""
    global _pool, _in_flight
    with _pool_lock:
        pool = _pool
        if pool is None:
            # Imported here: most programs never block on a helper thread.
            from concurrent.futures import ThreadPoolExecutor

            pool = _pool = ThreadPoolExecutor(thread_name_prefix="corosio-helper")
        _in_flight += 1
    try:
        # RuntimeError once the interpreter is shutting down.
        pool.submit(_counted, call)
    except BaseException:
        _call_finished()
        raise


def _counted(call: Callable[[], object]) -> None:
    try:
        call()
    finally:
        _call_finished()


def _call_finished() -> None:
    global _in_flight
    with _pool_lock:
        _in_flight -= 1
        if _in_flight == 0:
            _idle.notify_all()


def settle(timeout: float) -> bool:
    """Wait until no helper call is running or queued; False on timeout.

    For tests: after it returns True every late outcome has been handed
    back or dropped.
    """
    with _pool_lock:
        return _idle.wait_for(lambda: _in_flight == 0, timeout)


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: start afresh.

    (The parent's pool object would count its threads as idle and never
    start one, so a call would wait forever.)  The lock may have been held
    by a thread that does not exist in the child, so it is replaced too.
    """
    global _pool_lock, _idle, _pool, _in_flight
    _pool_lock = threading.Lock()
    _idle = threading.Condition(_pool_lock)
    _pool = None
    _in_flight = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


# ---------------------------------------------------------------- the operation


class HelperCall(Operation):
    """Await ``fn()`` run on a helper thread; also the reactor target of its
    wake socket (``concurrency_hint=1`` only).

    ``_claimed``, ``_finished``, ``_result``, ``_error`` and ``_wake_read``
    are guarded by ``_lock``; ``_task`` and ``_sched`` are written once in
    :meth:`start` before the helper thread can see the operation.
    ``_fn`` and ``_wake_write`` belong to the helper thread once submitted
    (it calls and drops the one, writes and closes the other).
    """

    __slots__ = (
        "__weakref__",
        "_fn",
        "_lock",
        "_claimed",
        "_finished",
        "_task",
        "_sched",
        "_result",
        "_error",
        "_wake_read",
        "_wake_write",
    )

    def __init__(self, fn: Callable[[], object], stop_token: StopToken | None = None) -> None:
        self.stop_token = stop_token
        self._awaited = True  # made by the library's own coroutines, awaited at once
        self._fn = fn
        self._lock = threading.Lock()
        self._claimed = False  # a completion (outcome, cancel, close) took it
        self._finished = False  # fn returned or raised (hint 1: the outcome is stored)
        self._task: Task[Any] | None = None
        self._sched: Scheduler | None = None
        self._result: object = None
        self._error: BaseException | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None

    def start(self, task: Task[Any]) -> object:
        sched = task._sched
        self._task = task
        self._sched = sched
        # Counted before the helper can complete it; the completion moves
        # the unit on with post_counted.  Tracked so that IOContext.close()
        # abandons it and a late outcome posts nothing.
        sched.work_started()
        try:
            task.context._track(self)
            if sched.single_threaded:
                self._open_wake_pipe(sched)
            _submit(self._run)
        except BaseException:
            self._claimed = True  # nobody else can see the op yet
            self._close_wake_pipe()
            if self._wake_write is not None:
                self._wake_write.close()
            sched.work_finished()
            raise
        return PENDING

    # ------------------------------------------------------------ helper thread

    def _run(self) -> None:
        """The helper thread: call, then hand the outcome back once."""
        result: object = None
        error: BaseException | None = None
        try:
            result = self._fn()
        except BaseException as exc:  # delivered to the task, never lost here
            error = exc
        self._fn = _done  # drop the call's references (arguments, context)
        wake = self._wake_write
        if wake is not None:
            # Single-threaded context: store, then wake its reactor; the
            # context's thread completes the op in on_ready.
            with self._lock:
                self._result, self._error = result, error
                self._finished = True
            try:
                wake.send(b"\0", MSG_NOSIGNAL)
            except OSError:
                pass  # the read end is closed: cancelled or abandoned
            finally:
                wake.close()
            return
        with self._lock:
            if self._claimed:
                return  # cancelled or abandoned: drop the late outcome
            self._claimed = True
        task = self._task
        assert task is not None
        task._sched.post_counted(task.wakeup(result, error))

    # ------------------------------------------------------------ wake socket (hint 1)

    def _open_wake_pipe(self, sched: Scheduler) -> None:
        # Sockets are close-on-exec by default (PEP 446).
        reader, writer = socket.socketpair()
        self._wake_read, self._wake_write = reader, writer
        reader.setblocking(False)
        configure_socket(writer)  # SO_NOSIGPIPE where MSG_NOSIGNAL is missing
        sched.reactor.register(reader.fileno(), self)

    def _close_wake_pipe(self) -> None:
        """Deregister and close the read end (the context's thread, or setup)."""
        with self._lock:
            reader, self._wake_read = self._wake_read, None
        if reader is not None:
            sched = self._sched
            assert sched is not None
            sched.reactor.deregister(reader.fileno())
            reader.close()

    def wants_read(self) -> bool:
        """Level-triggered backends: watch the wake socket until the op completes."""
        with self._lock:
            return self._wake_read is not None

    def wants_write(self) -> bool:
        """Never: only the read end is registered."""
        return False

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        """The helper thread wrote its byte: complete on the context's thread."""
        with self._lock:
            if self._claimed or not self._finished:
                return  # already cancelled, or a spurious report
            self._claimed = True
            result, error = self._result, self._error
            self._result = self._error = None
        self._close_wake_pipe()
        task = self._task
        assert task is not None
        out.append(task.wakeup(result, error))

    # ------------------------------------------------------------ cancellation

    def cancel(self, task: Task[Any]) -> bool:
        with self._lock:
            if self._claimed or self._task is not task:
                return False
            self._claimed = True
        self._close_wake_pipe()
        task._sched.post_counted(task.wakeup(None, Cancelled()))
        return True

    def _shutdown(self) -> None:
        """The context is closing: abandon without posting."""
        with self._lock:
            self._claimed = True
        self._close_wake_pipe()


def _done() -> object:
    """What a finished call's ``_fn`` is rebound to."""
    return None
