"""The scheduler for any number of threads in ``run*`` (the default).

The shared state (queue, count, flags, the idle list) is guarded by one lock,
``_lock``; each thread inside ``run*`` has a :class:`~._scheduler.Frame`.
``docs/scheduler.md`` tells the whole story; in short:

* **Private posts.**  A handler's posts go to its frame's private queue and
  private count, without the lock, and are published (count first, then the
  queue: the count is never below the handlers others can see) the next
  time the thread takes the lock.  Reactor completions go to the reactor
  thread's ``inbox`` and it runs them itself: a hand-off costs more than the
  handler.  Work that sits in a frame is never stranded: threads about to
  sleep steal half of another frame's inbox or private queue, and the
  *watcher* (below) takes over from a thread stuck in one handler.
* **The thread-pool contract.**  On a free-threaded build (no GIL) work is
  handed to idle threads as soon as it is posted, so N threads run handlers
  in parallel.  Under the GIL, pure-Python handlers cannot run in parallel
  and every hand-off costs a GIL switch and a futex, so the scheduler keeps
  one thread *licensed* to take shared work and lets the others sleep; the
  watcher licenses another as soon as the licensed one has been inside one
  handler for ``WATCH_INTERVAL`` (it blocked, or released the GIL for long:
  a GIL-releasing handler still runs in parallel).  Go's runtime does the
  same (sysmon hands a processor off from a thread stuck in a system call).
* **The watcher** and **stealing** live in :mod:`corosio_py._idle` (the
  base class :class:`~corosio_py._idle.IdleThreads`), with waking and
  sleeping; this module keeps posting, the work accounting and the run loop.
* **Ctrl-C.**  Every lock hold and wait keeps the state consistent when the
  main thread is interrupted (see :mod:`corosio_py._interrupt`).

Lock order: this lock, then a descriptor's or a timer queue's own lock, then
the reactor's wake-up lock; never the other way round.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from . import _interrupt
from ._checks import InvariantChecks
from ._foreign import ForeignInbox, ForeignPosts
from ._idle import WATCH_INTERVAL, IdleThreads, _acquire_uninterrupted
from ._reactor import Reactor
from ._scheduler import (
    REACTOR_SENTINEL,
    Frame,
    Handler,
    InvariantError,
    gil_enabled,
    pass_timeout,
    thread_state,
)
from ._sleep import FdSleepSignal
from ._timers import TimerWaiter

#: The main thread's deferred-interrupt state (its ``pending`` is read as a hint).
_MAIN_INTERRUPT: Final = _interrupt.MAIN

_monotonic = time.monotonic

#: Handlers a thread may run from its own private queue before it visits the
#: lock again (to publish, give the reactor its turn and see a stop).
PRIVATE_STREAK: Final = 256
#: Units of outstanding work a frame counts globally in advance, so that
#: parking operations takes the lock once per this many (work_started).
WORK_RESERVE: Final = 32


class ThreadedScheduler(InvariantChecks, ForeignPosts, IdleThreads):
    """The queue, the reactor sentinel, the work count and the run loops,
    for any number of threads.

    Args:
        reactor: the backend.
        gil: whether Python code runs under a GIL (None: ask the interpreter).
    """

    def __init__(self, reactor: Reactor, gil: bool | None = None) -> None:
        super().__init__(reactor)
        #: Fixed at construction: GIL mode keeps one thread licensed.
        self.gil = gil_enabled() if gil is None else gil
        self._lock = threading.Lock()
        # Every field below is guarded by _lock, except where noted.
        self._reactor_running = False  # a thread is inside a reactor pass
        self._reactor_owner: Frame | None = None  # its frame
        self._reactor_interrupted = False  # that pass will not block (or was woken)
        self._idle: list[Frame] = []  # frames waiting on their wake lock
        self._frames: list[Frame] = []  # every frame of every thread in run*
        self._licensed = 0  # frames with frame.licensed set (GIL mode)
        self._watcher: Frame | None = None  # the frame looking for stuck ones
        self._sampled_at = 0.0  # when the watcher last sampled the frames' ``ran``
        self._quiet = threading.Condition(self._lock)  # notified when _frames empties
        self._on_quiet: Callable[[], object] | None = None  # close() finishing late
        # Posts from threads outside run*, uncounted until taken (lock-free:
        # see _foreign); _foreign_items is its deque, tested as a hint.
        self._foreign = ForeignInbox()
        self._foreign_items = self._foreign.items  # waiting: len(...) > 1

    # ------------------------------------------------------------ posting

    def post(self, handler: Callable[..., object], /, *args: Any) -> None:
        """Queue ``handler(*args)``; it holds one unit of outstanding work until run.

        From a thread running this scheduler (innermost frame) the post is
        private and lock-free, unless another runner is idle and could run it
        in parallel (free-threaded build); from any other thread it goes to
        the foreign inbox (:mod:`._foreign`), which wakes a runner only when
        one armed it before blocking.
        """
        if args:
            handler = functools.partial(handler, *args)
        elif not callable(handler):
            raise TypeError(f"expected a callable, got {type(handler).__name__}")
        frame = thread_state.frame
        # _closed is an unlocked hint here: a post that slips past a close()
        # lands in a private queue that the closing thread's quiet wait drops.
        if frame is not None and frame.sched is self and not self._closed:
            frame.queue.append(handler)  # fast path: private, published later
            frame.work += 1
            if self._idle and not self.gil:  # unlocked hint; the watcher covers a miss
                self._hand_off(frame)
            return
        if self._foreign.put(handler):  # no scheduler lock: see _foreign
            # A runner armed the inbox before blocking: wake one.
            self._lock.acquire()
            try:
                if self._idle or (self._reactor_running and not self._reactor_interrupted):
                    self._wake_one_locked()
            finally:
                self._lock.release()

    def post_counted(self, handler: Handler) -> None:
        """Queue ``handler`` whose unit of work is already counted.

        Used to complete a parked operation or a timer wait: the unit moves
        from the operation to the queued completion.  Dropped once closed.
        """
        frame = thread_state.frame
        if frame is not None and frame.sched is self and not self._closed:
            frame.queue.append(handler)
            if self._idle and not self.gil:
                self._hand_off(frame)
            return
        self._lock.acquire()
        try:
            if self._closed:
                return  # discarded; close() already dropped every unit
            self._queue.append(handler)
            self._wake_one_locked()
        finally:
            self._lock.release()

    def _hand_off(self, frame: Frame) -> None:
        """Publish this frame's private work now and wake an idle thread."""
        self._lock.acquire()
        try:
            self._publish_locked(frame)
            self._wake_one_locked()
        finally:
            self._lock.release()

    def work_started(self) -> None:
        """Add one unit of outstanding work (a parked op, a timer).

        Counted globally at once: a parked operation is visible to the
        reactor on another thread as soon as it is parked, so its unit must
        already be in the global count.  From a thread of this scheduler the
        unit usually comes from the frame's *reserve*: units added to the
        global count in advance (``WORK_RESERVE`` at a time, balanced by a
        negative private ``work``), so a park costs no lock visit -- one
        taken per park was the most contended lock of a free-threaded
        server.  The global count then over-states the work by the unused
        reserve, which only delays a stop until the frame publishes (it
        always does before it sleeps, polls or leaves), never hastens one.
        """
        frame = thread_state.frame
        if frame is not None and frame.sched is self:
            if frame.reserve:
                frame.reserve -= 1
                frame.work += 1
                return
            self._lock.acquire()
            try:
                self._outstanding += 1
                self._take_reserve_locked(frame)
            finally:
                self._lock.release()
            return
        self._lock.acquire()
        try:
            self._outstanding += 1
        finally:
            self._lock.release()

    def _take_reserve_locked(self, frame: Frame) -> None:
        """Count ``WORK_RESERVE`` units globally for ``frame`` to use (see
        :meth:`work_started`); its next publish gives back what is unused."""
        self._outstanding += WORK_RESERVE
        frame.work -= WORK_RESERVE
        frame.reserve = WORK_RESERVE

    def guard_started(self) -> None:
        """A user's unit of work (a guard, ``on_work_started``): refused once closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the IOContext is closed")
            self._outstanding += 1

    def work_finished(self) -> None:
        """Remove one unit; the transition to zero stops the context."""
        frame = thread_state.frame
        if frame is not None and frame.sched is self:
            frame.work -= 1  # published before this thread blocks or leaves
            return
        with self._lock:
            if self._closed:
                return  # close() already dropped every unit
            self._outstanding -= 1
            if self.debug and self._outstanding < 0:
                raise InvariantError("outstanding work count went negative")
            if self._outstanding <= 0 and self._out_of_work_locked():
                self._stop_locked()

    def add_timer(self, waiter: TimerWaiter, deadline: float) -> None:
        """Make ``waiter`` pending until ``deadline`` (one unit of work).

        One lock hold: the unit is counted before the waiter is visible in
        the heap, and a blocked reactor is interrupted if the deadline became
        the earliest.
        """
        self._lock.acquire()
        try:
            self._outstanding += 1
            if (
                self.timers.add(waiter, deadline)
                and self._reactor_running
                and not self._reactor_interrupted
            ):
                self._interrupt_reactor_locked()
        finally:
            self._lock.release()

    # ------------------------------------------------------------ control

    def stop(self) -> None:
        """Make every thread in ``run*`` return as soon as possible."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake_all_locked()
        if self._reactor_running:
            self._interrupt_reactor_locked()

    def stopped(self) -> bool:
        """Whether the context is stopped."""
        with self._lock:
            return self._stopped

    def restart(self) -> None:
        """Clear the stopped flag (not once closed)."""
        with self._lock:
            if not self._closed:
                self._stopped = False

    def outstanding(self) -> int:
        """The published outstanding-work count, foreign posts included
        (for tests and debugging)."""
        with self._lock:
            return self._outstanding + len(self._foreign_items) - 1

    # ------------------------------------------------------------ accounting

    def _publish_locked(self, frame: Frame) -> bool:
        """Move the frame's private count, then its private queue.

        Returns True when handlers became visible in the global queue.
        """
        work = frame.work - frame.stolen
        frame.reserve = 0  # an unused reserve goes back with ``work``
        if work or frame.stolen:
            frame.work = frame.stolen = 0
            self._outstanding += work
            if self._outstanding <= 0 and self._out_of_work_locked():
                self._stop_locked()
        if frame.queue:
            self._splice_locked(frame.queue)
            frame.queue.clear()
            return True
        return False

    def _splice_locked(self, items: deque[Handler], front: bool = False) -> None:
        """Make counted handlers visible in the global queue."""
        if self.debug:
            visible = self._visible_locked() + len(items)
            if self._outstanding < visible:
                raise InvariantError(
                    f"{visible} handlers would be visible but outstanding="
                    f"{self._outstanding} (spliced before their count was published)"
                )
        if front:
            self._queue.extendleft(reversed(items))
        else:
            self._queue.extend(items)

    # ------------------------------------------------------------ run loops

    def run(self, limit: int, deadline: float | None, poll: bool) -> int:
        """Run up to ``limit`` handlers; return how many ran (see the base)."""
        main = _interrupt.enter_run()
        frame = Frame(self, thread_state.frame)
        lock = self._lock
        n = 0
        try:
            with lock:
                if self._closed:
                    return 0
                self._frames.append(frame)
                # GIL mode: a newcomer to run() is licensed only if nobody
                # else is (a poll always is: the caller asked this thread).
                if self.gil and self._licensed and not poll:
                    frame.licensed = False
                else:
                    self._licensed += 1
                if self._idle and self._watcher is None:
                    # Threads that went idle alone sleep untimed: one of them
                    # must now watch over us.
                    self._release_locked(self._idle.pop(), license=False)
            thread_state.frame = frame
            try:
                n = self._loop(frame, limit, deadline, poll, main)
            finally:
                self._leave(frame)
        finally:
            if main:
                _interrupt.leave_run()
        return n

    def _loop(
        self, frame: Frame, limit: int, deadline: float | None, poll: bool, main: bool
    ) -> int:
        lock = self._lock
        interrupt_state = _interrupt.MAIN  # read only when ``main``
        inbox = frame.inbox
        private = frame.queue
        queue = self._queue
        n = 0
        streak = 0
        while n < limit:
            # Unlocked reads of _stopped and the queue length are hints: a
            # stop is acted on at the latest after PRIVATE_STREAK (or BATCH)
            # more handlers, under the lock.
            handler: Handler | None
            if inbox and not self._stopped:
                try:
                    handler = inbox.popleft()
                except IndexError:  # a thief took the rest
                    continue
            elif (
                private
                and streak
                and deadline is None
                and len(queue) == 1
                and not self._stopped
                and len(self._foreign_items) == 1  # a hint: a foreign post ends the streak
            ):
                # Our own posts, still privately counted, and the shared queue
                # holds only the sentinel, so FIFO order is kept: run them
                # without the lock.  Idle threads were handed work at the
                # post (free-threaded) or are not wanted (GIL); the watcher
                # steals from here if a handler of ours blocks.
                streak -= 1
                try:
                    handler = private.popleft()
                except IndexError:
                    continue
            else:
                streak = PRIVATE_STREAK
                lock.acquire()
                try:
                    handler = self._next_locked(frame, deadline, poll, limit > 1)
                finally:
                    lock.release()
                if handler is None:
                    break
            try:
                handler()
            finally:
                frame.work -= 1  # the handler's unit, published lazily
            n += 1
            frame.ran = n
            if main and interrupt_state.pending:
                # Between two handlers the state is whole; the inbox and the
                # private queue are handed back by _leave.
                _interrupt.raise_pending()
        return n

    def _leave(self, frame: Frame) -> None:
        """Pop ``frame``: publish what it holds and wake someone for it."""
        finish = None
        with self._lock:
            self._frames.remove(frame)
            if frame.licensed:
                frame.licensed = False
                self._licensed -= 1
            if self._watcher is frame:
                self._watcher = None
                if not self._stopped:
                    self._find_watcher_locked()
            if self._closed:  # close() ran meanwhile: nothing may be queued
                frame.queue.clear()
                frame.inbox.clear()
                frame.work = frame.stolen = frame.reserve = 0
            published = self._publish_locked(frame)
            if frame.inbox:
                # Already counted; back to the head, where they came from.
                self._splice_locked(frame.inbox, front=True)
                frame.inbox.clear()
                published = True
            if (published or self._frames) and not self._stopped:
                self._wake_one_locked()  # nobody else may be looking (or licensed)
            if self.debug:
                self._check_invariants_locked()
            if self._closed and not self._frames:
                self._quiet.notify_all()
                finish, self._on_quiet = self._on_quiet, None
        thread_state.frame = frame.prev
        if isinstance(frame.wake, FdSleepSignal):
            frame.wake.close()  # unlisted above: no waker can reach it now
        if finish is not None:
            finish()

    def _next_locked(
        self, frame: Frame, deadline: float | None, poll: bool, batch: bool
    ) -> Handler | None:
        """One scheduling step: return a handler to run, or None to return.

        Called with the lock held; may release it around a reactor pass or
        a wait, and always returns with it held.
        """
        queue = self._queue
        while True:
            if _MAIN_INTERRUPT.pending:  # a hint; raise_pending re-checks the thread
                _interrupt.raise_pending()  # a deferred Ctrl-C: the state is whole here
            if len(self._foreign_items) > 1:  # a hint; blocking and stopping re-check
                self._take_foreign_locked()
            self._publish_locked(frame)
            if self.debug:
                self._check_invariants_locked()
            if self._stopped:
                return None
            if self._outstanding <= 0 and self._out_of_work_locked():
                self._stop_locked()
                return None
            if frame.inbox:
                if self._watcher is frame:
                    self._hand_on_watch_locked()
                return frame.inbox.popleft()
            if not frame.licensed:
                if self._licensed == 0 or not self.gil:
                    frame.licensed = True
                    self._licensed += 1
                elif not self._idle_step_locked(frame, deadline, poll):
                    return None
                else:
                    continue
            if queue:
                if self._watcher is frame:
                    self._hand_on_watch_locked()
                handler = queue.popleft()
                if handler is not REACTOR_SENTINEL:
                    if queue:
                        if self._idle and not self.gil:
                            self._wake_one_locked()  # the cascade: more work, a helper
                        elif batch:
                            self._take_batch_locked(frame.inbox)
                    return handler
                if not self._run_reactor_locked(frame, deadline, poll):
                    return None
                if (
                    frame.inbox
                    and not self._stopped
                    and self._watcher is not frame
                    and not _MAIN_INTERRUPT.pending
                ):
                    # Our completions, straight after the pass: nothing of
                    # ours ran since the publish above, so the checks at the
                    # top have nothing new to find.  Their tasks mostly park
                    # again: take the reserve now, while the lock is held,
                    # rather than on the first park.
                    if not frame.reserve:
                        self._take_reserve_locked(frame)
                    return frame.inbox.popleft()
                continue
            # The sentinel is with another thread and nothing is queued.
            if not self.gil and self._steal_locked(frame, self._frames):
                continue
            if not self._idle_step_locked(frame, deadline, poll):
                return None

    def _run_reactor_locked(self, frame: Frame, deadline: float | None, poll: bool) -> bool:
        """We popped the sentinel: run one pass.  False means "return now".

        A timed step past its deadline still makes one non-blocking pass per
        ``run*`` call, so ``run_for(0)`` collects ready I/O and runs the
        handlers that were ready.
        """
        queue = self._queue
        more = bool(queue)
        if deadline is not None and frame.swept and _monotonic() >= deadline:
            queue.append(REACTOR_SENTINEL)  # once per traversal: a busy queue still ends
            return False
        if more and _monotonic() - self._last_pass < self.poll_interval:
            # Polled a moment ago (that counts as this call's pass): run handlers.
            frame.swept = True
            queue.append(REACTOR_SENTINEL)
            return True
        if not more and not poll and not self.gil and self._steal_locked(frame, self._frames):
            queue.append(REACTOR_SENTINEL)  # work held by a busy thread: run it first
            return True
        timeout = pass_timeout(more, poll, deadline)
        # No idle thread watches over the busy ones: the reactor does,
        # between passes no longer than the watcher's period.
        watching = self._watcher is None and len(self._frames) > 1
        if (
            watching
            and (timeout is None or timeout > WATCH_INTERVAL)
            and self._busy_frames_locked(frame)
        ):
            timeout = WATCH_INTERVAL
        if timeout != 0.0 and self._foreign.arm():
            timeout = 0.0  # foreign posts wait: collect ready I/O, do not block
        frame.swept = True
        self._reactor_running = True
        self._reactor_owner = frame
        self._reactor_interrupted = timeout == 0.0
        if more and self._idle and not self.gil:
            self._wake_one_locked()  # someone drains the queue while we poll
        lock = self._lock
        produced = 0
        try:
            lock.release()
            produced = self._reactor_pass(frame.inbox, timeout)
        except BaseException:
            self._end_pass_locked(frame)
            self._wake_one_locked()  # the sentinel is back: someone may want it
            raise
        now = self._end_pass_locked(frame)
        if watching:
            stuck = self._stuck_locked(frame)
            if stuck:
                self._steal_locked(frame, stuck)
            if self._idle and self._watcher is None:
                self._find_watcher_locked()  # an idle thread watches from now on
        if produced > 1 and self._idle and not self.gil:
            # We run our completions ourselves, but an idle thread may steal
            # half of them: one wake per pass, not per handler.
            self._wake_one_locked()
        if deadline is not None and now >= deadline:
            return bool(frame.inbox or len(queue) > 1)
        return bool(produced or more or not poll)

    def _end_pass_locked(self, frame: Frame) -> float:
        """Re-take the lock after a pass and put the sentinel back; the time."""
        lock = self._lock
        try:
            lock.acquire()
        except BaseException as exc:  # a signal handler raised: see _acquire_uninterrupted
            _interrupt.defer(exc)
            _acquire_uninterrupted(lock)
        self._reactor_running = False
        self._reactor_owner = None
        frame.sampled = -1  # busy from now on: not stuck until proven
        self._queue.append(REACTOR_SENTINEL)
        self._last_pass = now = _monotonic()
        return now

    # ------------------------------------------------------------ shutdown

    def begin_close(self) -> bool:
        """Refuse new work and stop; True the first time."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._foreign.close()
            self._stop_locked()
            return True

    def when_quiet(self, finish: Callable[[], object]) -> None:
        """Call ``finish`` once no thread of ours runs a handler (see base)."""
        if self.running_in_this_thread():
            with self._lock:
                if self._frames:
                    self._on_quiet = finish
                    return
        else:
            with self._lock:
                while self._frames:
                    self._quiet.wait()
        finish()
