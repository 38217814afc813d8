"""Public helpers for testing code built on corosio_py."""

from __future__ import annotations

import math
import socket
import time

from ._context import IOContext
from ._scheduler import REACTOR_SENTINEL, Scheduler
from ._socket import TCPSocket
from ._threaded import ThreadedScheduler

__all__ = ("socket_pair", "wait_all_tasks_blocked")

#: Default bound of :func:`wait_all_tasks_blocked`, in seconds.
_DEFAULT_TIMEOUT = 10.0
#: How long the quiet state must hold, unchanged, before it counts.
_SETTLE = 0.01


def socket_pair(ctx: IOContext) -> tuple[TCPSocket, TCPSocket]:
    """Return a connected loopback TCP pair registered with ``ctx``.

    Built synchronously with plain blocking sockets (listen on
    127.0.0.1 port 0, connect, accept), then both ends are adopted:
    non-blocking, close-on-exec, registered with the reactor, endpoints
    cached.  Callable whether or not the context is running; it posts
    nothing, so the context's state (stopped flag, outstanding work) is
    unchanged.  The first socket is the connecting end.

    :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
    :raises RuntimeError: when the context is closed.
    :raises OSError: when the OS refuses (nothing leaks).
    """
    if not isinstance(ctx, IOContext):
        raise TypeError(f"socket_pair needs an IOContext, got {type(ctx).__name__}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Both calls complete at once on loopback (the backlog takes the
            # connection); the timeout only guards against a broken stack.
            client.settimeout(10.0)
            listener.settimeout(10.0)
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    finally:
        listener.close()
    try:
        first = TCPSocket._adopt(ctx, client)
    except BaseException:
        server.close()
        raise
    try:
        second = TCPSocket._adopt(ctx, server)
    except BaseException:
        first.close()
        raise
    return first, second


def wait_all_tasks_blocked(ctx: IOContext, timeout: float = _DEFAULT_TIMEOUT) -> None:
    """Return once every task of ``ctx`` is parked and nothing is queued.

    A handshake for tests, in place of "sleep a little and hope the task
    has parked": call it from a thread that is not running ``ctx`` while
    other threads do (or after a ``run*`` call returned), then assert what
    a blocked task implies or wake it.

    What it guarantees when it returns: at two looks ``_SETTLE`` seconds
    apart, every task of ``ctx`` that is not done was suspended on an
    operation that had been started and returned pending, no task was
    being resumed, no handler was queued (the shared queue, and the private
    queue and inbox of every thread in ``run*``), and no task was resumed
    between the two looks.  What it cannot see: work another thread is
    about to post (``Event.set`` from a plain thread, a timer firing next),
    and readiness the OS has reported but a reactor pass has not yet turned
    into completions; a test must not depend on those not happening.  It
    reads scheduler internals and polls, so it is a test utility, not a
    synchronisation primitive for applications.

    :raises TypeError: when ``ctx`` is not an :class:`IOContext` or
        ``timeout`` is not a number.
    :raises ValueError: when ``timeout`` is not a positive finite number.
    :raises RuntimeError: when called from a thread inside ``ctx``'s
        ``run*`` (it would wait for itself), or the context is closed.
    :raises TimeoutError: when the tasks are still not all blocked after
        ``timeout`` seconds.
    """
    if not isinstance(ctx, IOContext):
        raise TypeError(f"wait_all_tasks_blocked needs an IOContext, got {type(ctx).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number, got {type(timeout).__name__}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive finite number, got {timeout!r}")
    sched = ctx._sched
    if sched.running_in_this_thread():
        raise RuntimeError("wait_all_tasks_blocked called from inside the context's run*")
    deadline = time.monotonic() + timeout
    seen: frozenset[tuple[int, int]] | None = None
    while True:
        if sched.closed:
            raise RuntimeError("the IOContext is closed")
        now = _blocked_tasks(ctx)
        if now is not None and now == seen:
            return
        seen = now
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the tasks of {ctx!r} were not all blocked within {timeout} s")
        # Quiet: look again after the settle time; busy: poll soon.
        time.sleep(_SETTLE if now is not None else 0.001)


def _blocked_tasks(ctx: IOContext) -> frozenset[tuple[int, int]] | None:
    """The (task id, suspension number) of every unfinished task when all
    are parked and nothing is queued; None otherwise."""
    sched = ctx._sched
    if not _nothing_queued(sched):
        return None
    with ctx._registry_lock:
        tasks = list(ctx._tasks)
    marks = []
    for task in tasks:
        with task._lock:
            if task._stepping:
                return None
            suspension = task._suspension
        if task.done():
            continue
        if suspension == 0:
            return None  # never started: its first step is queued or running
        marks.append((id(task), suspension))
    # Again: a task resumed by a completion queued while we looked.
    if not _nothing_queued(sched):
        return None
    return frozenset(marks)


def _nothing_queued(sched: Scheduler) -> bool:
    """Whether no handler waits in any queue of ``sched`` and no thread in
    ``run*`` is resuming a task."""
    if isinstance(sched, ThreadedScheduler):
        with sched._lock:
            if sched._visible_locked():
                return False
            # A frame's private queue is its owner's; its length is read
            # here as a hint, which the second look confirms.
            return all(
                not frame.queue and not frame.inbox and frame.task is None
                for frame in sched._frames
            )
    # The lockless scheduler's queue belongs to its one thread: read its
    # length and head as a hint (deque reads are atomic), confirmed by the
    # second look.  Empty: a reactor pass holds the sentinel.
    queue = sched._queue
    try:
        return not queue or (len(queue) == 1 and queue[0] is REACTOR_SENTINEL)
    except IndexError:
        return False  # emptied between the two reads
