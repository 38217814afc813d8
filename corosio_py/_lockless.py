"""The ``concurrency_hint=1`` scheduler: one thread by promise, no locks.

The user promises that only one thread ever touches the context and its
objects, so the queue, the count and the flags need no lock and posts need no
private queue.  The promise is checked where it is cheap: a second thread
entering ``run*`` while the first is inside gets ``RuntimeError`` (an
entry lock taken without blocking) instead of corrupting the queue.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _interrupt
from ._reactor import Reactor
from ._scheduler import (
    REACTOR_SENTINEL,
    Frame,
    Handler,
    Scheduler,
    pass_timeout,
    thread_state,
)
from ._timers import TimerWaiter

_monotonic = time.monotonic


class LocklessScheduler(Scheduler):
    """One thread, one queue, no lock (see the module docstring)."""

    single_threaded = True

    def __init__(self, reactor: Reactor) -> None:
        super().__init__(reactor)
        # Taken without blocking by the outermost run* call: a second thread
        # finds it held and is refused.  _owner/_depth are written only by
        # the thread holding it.
        self._entry = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._on_quiet: Callable[[], object] | None = None

    def post(self, handler: Callable[..., object], /, *args: Any) -> None:
        """Queue ``handler(*args)`` (see the base)."""
        if args:
            handler = functools.partial(handler, *args)
        elif not callable(handler):
            raise TypeError(f"expected a callable, got {type(handler).__name__}")
        if self._closed:
            raise RuntimeError("the IOContext is closed")
        self._outstanding += 1
        self._queue.append(handler)

    def post_counted(self, handler: Handler) -> None:
        """Queue an already-counted completion (dropped once closed).

        The one entry point another thread may use: a coordination
        primitive (``Event.set()`` or ``Queue.put_nowait()`` from a plain
        thread) or a ``Task.cancel()`` completes a parked wait of this
        context's task.  The append is one atomic deque operation; a caller
        that is not the running thread then interrupts the reactor, which
        may be blocked with nothing else to do.  (Reading ``_owner``
        unlocked is safe: it equals the caller's id only if the caller is
        the running thread itself.)
        """
        if not self._closed:
            self._queue.append(handler)
            if self._owner != threading.get_ident():
                self.reactor.interrupt()

    def work_started(self) -> None:
        """Add one unit of outstanding work."""
        self._outstanding += 1

    def guard_started(self) -> None:
        """A user's unit of work: refused once closed."""
        if self._closed:
            raise RuntimeError("the IOContext is closed")
        self._outstanding += 1

    def work_finished(self) -> None:
        """Remove one unit; the transition to zero stops the context."""
        if self._closed:
            return
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._stopped = True

    def add_timer(self, waiter: TimerWaiter, deadline: float) -> None:
        """Make ``waiter`` pending until ``deadline`` (one unit of work)."""
        self._outstanding += 1
        self.timers.add(waiter, deadline)

    def stop(self) -> None:
        """Make ``run*`` return as soon as possible."""
        self._stopped = True
        self.reactor.interrupt()  # stop() from a signal handler or a helper thread

    def stopped(self) -> bool:
        """Whether the context is stopped."""
        return self._stopped

    def restart(self) -> None:
        """Clear the stopped flag (not once closed)."""
        if not self._closed:
            self._stopped = False

    def outstanding(self) -> int:
        """The outstanding-work count."""
        return self._outstanding

    def begin_close(self) -> bool:
        """Refuse new work and stop; True the first time."""
        if self._closed:
            return False
        self._closed = self._stopped = True
        return True

    def when_quiet(self, finish: Callable[[], object]) -> None:
        """Finish now, or when the running ``run*`` call returns."""
        if self._depth and self._owner == threading.get_ident():
            self._on_quiet = finish
        else:
            finish()

    # ------------------------------------------------------------ run loop

    def run(self, limit: int, deadline: float | None, poll: bool) -> int:
        """The lock-free loop; handlers' units are released in bulk when the
        sentinel comes round (the count can only be high in between, and it
        reaches zero only once the queue holds nothing but the sentinel)."""
        ident = threading.get_ident()
        if self._owner != ident:
            if not self._entry.acquire(False):
                raise RuntimeError(
                    "an IOContext with concurrency_hint=1 was run from a second thread "
                    "while another is inside run*"
                )
            self._owner = ident
        self._depth += 1
        main = _interrupt.enter_run()
        frame = Frame(self, thread_state.frame)
        thread_state.frame = frame
        n = 0
        try:
            n = self._loop(frame, limit, deadline, poll, main)
        finally:
            thread_state.frame = frame.prev
            self._depth -= 1
            finish = None
            if self._depth == 0:
                self._owner = None
                finish, self._on_quiet = self._on_quiet, None
                self._entry.release()
            if finish is not None:
                finish()
            if main:
                _interrupt.leave_run()
        return n

    def _loop(
        self, frame: Frame, limit: int, deadline: float | None, poll: bool, main: bool
    ) -> int:
        # The same signature and entry as _threaded's loop, but no lock per
        # step: each loop is its scheduler's hot path, so neither shares code.
        queue = self._queue
        popleft = queue.popleft
        interrupt_state = _interrupt.MAIN  # read only when ``main``
        n = settled = 0
        try:
            if self._closed:
                return 0
            if self._outstanding <= 0:
                self._stopped = True
            while n < limit and not self._stopped:
                handler = popleft()
                if handler is not REACTOR_SENTINEL:
                    try:
                        handler()
                    finally:
                        n += 1
                    if main and interrupt_state.pending:
                        _interrupt.raise_pending()  # between two handlers: whole
                    continue
                if main and interrupt_state.pending:
                    # The sentinel is ours now: put it back before raising,
                    # or the next run* finds the queue empty.
                    queue.appendleft(REACTOR_SENTINEL)
                    _interrupt.raise_pending()
                self._outstanding -= n - settled
                settled = n
                more = bool(queue)
                if not more and self._outstanding <= 0:
                    self._stopped = True
                    queue.append(REACTOR_SENTINEL)
                    break
                if deadline is not None and frame.swept and _monotonic() >= deadline:
                    queue.append(REACTOR_SENTINEL)
                    break
                frame.swept = True  # a pass now, or one a moment ago
                if more and _monotonic() - self._last_pass < self.poll_interval:
                    queue.append(REACTOR_SENTINEL)
                    continue
                try:
                    produced = self._reactor_pass(queue, pass_timeout(more, poll, deadline))
                finally:
                    queue.append(REACTOR_SENTINEL)
                    self._last_pass = now = _monotonic()
                if main and interrupt_state.pending:
                    _interrupt.raise_pending()  # a Ctrl-C poked the wait
                if deadline is not None and now >= deadline and not (produced or more):
                    break
                if poll and not (produced or more):
                    break
        finally:
            if not self._closed:
                self._outstanding -= n - settled
                if self._outstanding <= 0:
                    self._stopped = True
        return n
