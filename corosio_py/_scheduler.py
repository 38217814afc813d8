"""What every scheduler shares: the queue, the work count, the reactor pass.

A scheduler owns one queue of ready handlers (zero-argument callables), the
reactor and its timer queue, and a count of outstanding work.  The queue
always holds :data:`REACTOR_SENTINEL` unless a thread is running a reactor
pass: whichever thread pops it waits in the OS for readiness and timers, turns
them into completions, and puts it back at the tail.  So while handlers keep
arriving there is one non-blocking pass per traversal of the queue and I/O is
never starved.  The count holds one unit per queued handler, parked
operation, timer wait and work guard; its transition to zero stops the
context.

Two schedulers implement this interface (``docs/scheduler.md``):

* :class:`~corosio_py._threaded.ThreadedScheduler`, for any number of
  threads in ``run*`` (the default);
* :class:`~corosio_py._lockless.LocklessScheduler`, for
  ``concurrency_hint=1``: one thread by promise, no locks at all.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._interrupt import blocking, off_thread
from ._reactor import Reactor
from ._timers import TimerQueue, TimerWaiter

if TYPE_CHECKING:
    from ._sleep import SleepSignal

Handler = Callable[[], object]

_monotonic = time.monotonic

#: ``run*`` loops are bounded by this many handlers when "unlimited".
UNLIMITED: Final = 1 << 62
#: While handlers are queued the reactor only polls (never blocks); a poll
#: costs a system call, so it is skipped when the last pass ended less than
#: this long ago.  I/O and timers still get a pass at least this often.
POLL_INTERVAL: Final = 0.0001


def _reactor_sentinel() -> None:  # pragma: no cover - identity only
    raise AssertionError("the reactor sentinel is never called")


#: The queue entry whose popping means "run a reactor pass".
REACTOR_SENTINEL: Final[Handler] = _reactor_sentinel


def gil_enabled() -> bool:
    """Whether this interpreter runs Python code under a GIL.

    ``sys._is_gil_enabled`` exists from 3.13; before that the GIL is always
    on.  ``COROSIO_ASSUME_GIL=0/1`` overrides it (for tests and benchmarks).
    """
    forced = os.environ.get("COROSIO_ASSUME_GIL")
    if forced in ("0", "1"):
        return forced == "1"
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def pass_timeout(more: bool, poll: bool, deadline: float | None) -> float | None:
    """How long a reactor pass may block: never while handlers are queued or
    in a poll, else until the step's deadline (None: indefinitely)."""
    if more or poll:
        return 0.0
    if deadline is None:
        return None
    return max(0.0, deadline - _monotonic())


class ContextClosedError(RuntimeError):
    """A post to a closed context (a ``RuntimeError``, as the API says).

    Its own class so that :meth:`Scheduler.wake` can tell it apart without
    re-reading the scheduler's ``_closed``, which a poster racing ``close()``
    from another thread may not see yet even after the inbox refused it.
    """


class InvariantError(AssertionError):
    """A scheduler invariant was broken (raised in ``COROSIO_DEBUG=1`` mode)."""


class Frame:
    """One thread's presence in one ``run*`` call of one scheduler.

    The lockless scheduler uses only ``sched``, ``prev`` and ``task``; the
    threaded one documents the others where it declares their roles
    (:mod:`corosio_py._threaded`).
    """

    __slots__ = (
        "sched",
        "prev",
        "task",
        "queue",
        "inbox",
        "work",
        "ran",
        "stolen",
        "sampled",
        "idle",
        "licensed",
        "swept",
        "wake",
        "reserve",
    )

    def __init__(self, sched: Scheduler, prev: Frame | None) -> None:
        self.sched = sched
        self.prev = prev  # the enclosing frame on this thread (any scheduler)
        self.task: Any = None  # the task being resumed in this frame, if any
        # Owner only, no lock: this thread's handlers post here.  Thieves pop
        # from the right under the scheduler lock (deque pops are atomic).
        self.queue: deque[Handler] = deque()
        # Counted globally: reactor completions and batches.  The owner pops
        # from the left without the lock, thieves from the right with it.
        self.inbox: deque[Handler] = deque()
        self.work = 0  # owner only: private change to the count, not yet published
        # Owner only: units already in the global count that work_started
        # may use without the lock (balanced by ``work``; see
        # ThreadedScheduler.work_started).  Zeroed at every publish.
        self.reserve = 0
        self.ran = 0  # owner writes; the watcher reads it unlocked (a progress hint)
        self.stolen = 0  # scheduler lock: private posts thieves took (and counted)
        self.sampled = -1  # scheduler lock: ``ran`` at the watcher's last look
        self.idle = False  # scheduler lock: waiting on ``wake``
        self.licensed = True  # scheduler lock: may take shared work (GIL mode)
        self.swept = False  # owner: this run* call made a reactor pass
        # Released by wakers, under the lock; made at the first sleep (a lock
        # under the GIL, a wake-up fd on a free-threaded build: _sleep.py).
        self.wake: SleepSignal | None = None


class _ThreadState(threading.local):
    #: The innermost frame on this thread, of whichever scheduler.
    frame: Frame | None = None


#: One thread-local for every scheduler: a resumption reads it once.
thread_state: Final = _ThreadState()


class Scheduler:
    """The interface :class:`IOContext` and the I/O objects program against,
    and the parts both implementations share."""

    #: True for the ``concurrency_hint=1`` scheduler.
    single_threaded: ClassVar[bool] = False

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.timers = TimerQueue()
        self.debug = os.environ.get("COROSIO_DEBUG", "") not in ("", "0")
        # Guarded by the implementation's discipline (its lock, or the one
        # thread of the lockless scheduler).
        self._queue: deque[Handler] = deque([REACTOR_SENTINEL])
        self._outstanding = 0
        self._stopped = False
        self._closed = False
        self._last_pass = 0.0  # monotonic end of the last reactor pass
        #: Fixed at construction.  Under the GIL every non-blocking pass
        #: releases and re-takes the GIL around the OS call; done more often
        #: than the switch interval, that starves every other Python thread
        #: waiting for the GIL (it is signalled, loses the race, and never
        #: times out to request a switch: CPython's "convoy effect"), so a
        #: busy queue polls at most once per switch interval there.
        self.poll_interval = (
            max(POLL_INTERVAL, sys.getswitchinterval()) if gil_enabled() else POLL_INTERVAL
        )
        # How Ctrl-C ends a blocked pass of the main thread: the reactor's
        # interrupt takes its wake-up lock, which the main thread may hold
        # inside wait() when the signal lands, so it runs on another thread.
        self._poke_reactor = off_thread(reactor.interrupt)

    # -------------------------------------------------------------- interface

    def post(self, handler: Callable[..., object], /, *args: Any) -> None:
        """Queue ``handler(*args)``; one unit of outstanding work until it runs."""
        raise NotImplementedError

    def post_counted(self, handler: Handler) -> None:
        """Queue ``handler`` whose unit of work is already counted (the
        completion of a parked operation or a timer wait)."""
        raise NotImplementedError

    def work_started(self) -> None:
        """Add one unit of outstanding work (a parked operation, a guard)."""
        raise NotImplementedError

    def guard_started(self) -> None:
        """A user's unit of work (a guard, ``on_work_started``): like
        :meth:`work_started`, but ``RuntimeError`` once closed."""
        raise NotImplementedError

    def work_finished(self) -> None:
        """Remove one unit; the transition to zero stops the context."""
        raise NotImplementedError

    def add_timer(self, waiter: TimerWaiter, deadline: float) -> None:
        """Make ``waiter`` pending until ``deadline`` (one unit of work)."""
        raise NotImplementedError

    def run(self, limit: int, deadline: float | None, poll: bool) -> int:
        """Run up to ``limit`` handlers; return how many ran.

        ``deadline`` (monotonic seconds) bounds a timed variant, which runs
        at least the handlers ready now and makes one non-blocking reactor
        pass even when it is already past; ``poll`` never blocks.
        """
        raise NotImplementedError

    def stop(self) -> None:
        """Make every thread in ``run*`` return as soon as possible."""
        raise NotImplementedError

    def stopped(self) -> bool:
        """Whether the context is stopped."""
        raise NotImplementedError

    def restart(self) -> None:
        """Clear the stopped flag; queue and count are untouched."""
        raise NotImplementedError

    def outstanding(self) -> int:
        """The published outstanding-work count (for tests and debugging)."""
        raise NotImplementedError

    def begin_close(self) -> bool:
        """Refuse new work and stop.  True the first time (the caller then
        finishes the close), False when it was already closed or closing."""
        raise NotImplementedError

    def when_quiet(self, finish: Callable[[], object]) -> None:
        """Call ``finish()`` once no thread runs a handler of this scheduler.

        From a thread outside ``run*`` this waits for the others to leave and
        calls it at once; from inside a handler it is called by the last
        thread to leave ``run*`` (the caller's handler must return first).
        """
        raise NotImplementedError

    def drain(self) -> None:
        """After :meth:`begin_close`, once quiet: drop queued handlers and
        the count (their tasks are abandoned by the caller)."""
        self._queue.clear()
        self._queue.append(REACTOR_SENTINEL)
        self._outstanding = 0

    def wake(self, handler: Handler) -> None:
        """Post a task resumption; dropped silently once the context is closed
        (close() abandons every task, so nobody is left to resume)."""
        try:
            self.post(handler)
        except ContextClosedError:
            pass
        except RuntimeError:
            if not self._closed:
                raise

    def running_in_this_thread(self) -> bool:
        """Whether the calling thread is inside a ``run*`` call of ours."""
        frame = thread_state.frame
        while frame is not None:
            if frame.sched is self:
                return True
            frame = frame.prev
        return False

    @property
    def closed(self) -> bool:
        """Whether :meth:`begin_close` ran (a hint when read unlocked: every
        decision that depends on it is re-checked under the owner's lock)."""
        return self._closed

    # -------------------------------------------------------------- reactor pass

    def _reactor_pass(self, out: deque[Handler], timeout: float | None) -> int:
        """One reactor pass; completions go to ``out``.

        ``timeout``: None blocks, 0 polls, else seconds; the nearest timer
        bounds it.  Every readiness report of the pass is delivered and the
        timers are expired even when a target raises; the first error is
        raised afterwards.  Returns how many completions were appended.
        """
        timers = self.timers
        if timeout != 0.0:
            deadline = timers.next_deadline()
            if deadline is not None:
                delay = deadline - _monotonic()
                delay = delay if delay > 0.0 else 0.0
                timeout = delay if timeout is None or delay < timeout else timeout
        before = len(out)
        error: BaseException | None = None
        reactor = self.reactor
        for target, bits in blocking(self._poke_reactor, reactor.wait, timeout):
            try:
                target.on_ready(bits, out)
            except BaseException as exc:
                if error is None:
                    error = exc
        if timers.may_have_entries():
            timers.expire(_monotonic(), out)
        if error is not None:
            raise error
        return len(out) - before
