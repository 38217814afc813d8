"""The scheduler: one queue of completed operations served by N threads.

This module ports SCHEDULER_SEMANTICS section 2.  The moving parts:

* ``_queue`` -- the global FIFO of ready handlers (zero-argument callables),
  guarded by ``_lock``.  It always contains :data:`_REACTOR_TASK`, the
  sentinel, unless a thread is running a reactor pass (invariant S1).
* Whichever thread pops the sentinel becomes the reactor: it releases the
  lock, waits in the OS (blocking only when nothing else is queued and its
  step may block), turns readiness and expired timers into completions, and
  puts the sentinel back at the tail.  So while handlers keep arriving there
  is one non-blocking pass per traversal of the queue and I/O is never
  starved.
* Each thread inside ``run*`` has a :class:`_Frame` with a private queue and
  a private work count.  Posts made by a handler go there without the lock
  and are published (count first, then the splice: invariant W2) the next
  time the thread takes the lock.  Completions collected by a reactor pass
  go to the frame's ``inbox`` and the reactor thread runs them itself: a
  hand-off to another thread costs more than the handler.  When no other
  thread is idle, a thread also moves a small batch of queued handlers to
  its inbox per lock hold, and runs a streak of its own posts straight from
  its private queue (they are counted privately; no lock is needed).
* Idle threads wait on the condition variable formed by ``_lock`` and one
  wake-up lock per frame (``_idle`` is the waiter list).  They are woken one
  at a time as work arrives; ``stop()`` wakes all and interrupts the reactor.
* ``_outstanding`` counts units of future activity (queued handlers, parked
  operations, timer waits, work guards).  The transition to zero stops the
  context.  A handler's own unit is released lazily: the decrement sits in
  the frame's private count until the thread next takes the lock, so the
  global count is never lower than the truth (it can only stop late, never
  early), and every frame publishes before it blocks or leaves.

With ``concurrency_hint=1`` the user promises one thread; :meth:`run` then
takes :meth:`_run_lockless`, which needs no lock, no frames' private queues
and no waiting.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from ._reactor import Reactor
from ._timers import TimerQueue, TimerWaiter

Handler = Callable[[], object]

_monotonic = time.monotonic
_allocate_lock = threading.Lock
#: ``run*`` loops are bounded by this many handlers when "unlimited".
UNLIMITED: Final = 1 << 62
#: While handlers are queued the reactor only polls (never blocks); a poll
#: costs a system call, so it is skipped when the last pass ended less than
#: this long ago.  I/O and timers still get a pass at least this often.
POLL_INTERVAL: Final = 0.0001
#: Handlers a thread takes from the shared queue per lock hold when no other
#: thread is idle (it runs them without the lock, in order).
BATCH: Final = 128
#: Handlers a thread may run from its own private queue before it visits the
#: lock again (to publish, give the reactor its turn and see a stop).
PRIVATE_STREAK: Final = 256


def _reactor_task() -> None:  # pragma: no cover - identity only
    raise AssertionError("the reactor sentinel is never called")


#: The sentinel queue entry: popping it means "run a reactor pass".
_REACTOR_TASK: Final[Handler] = _reactor_task


def _pass_timeout(more: bool, poll: bool, deadline: float | None) -> float | None:
    """How long a reactor pass may block: never while handlers are queued or
    in a poll, else until the step's deadline (None: indefinitely)."""
    if more or poll:
        return 0.0
    if deadline is None:
        return None
    return max(0.0, deadline - _monotonic())


class InvariantError(AssertionError):
    """A scheduler invariant was broken (raised in ``COROSIO_DEBUG=1`` mode)."""


class _Frame:
    """One thread's presence in one ``run*`` call of one scheduler.

    Every field is owned by the thread that created the frame, except
    ``wake``, which other threads release under the scheduler lock after
    popping the frame from the idle list, and ``inbox``, from whose right
    end an idle thread may steal (deque pops are atomic).
    """

    __slots__ = ("sched", "queue", "inbox", "work", "prev", "wake", "task")

    def __init__(self, sched: Scheduler, prev: _Frame | None) -> None:
        self.sched = sched
        self.queue: deque[Handler] = deque()  # posted by this thread's handlers
        self.inbox: deque[Handler] = deque()  # counted globally: completions, batches
        self.work = 0  # private change to the outstanding count, not yet published
        self.prev = prev  # the enclosing frame on this thread (any scheduler)
        self.wake: threading.Lock | None = None
        self.task: Any = None  # the task being resumed in this frame, if any


class _ThreadState(threading.local):
    #: The innermost frame on this thread, of whichever scheduler.
    frame: _Frame | None = None


#: One thread-local for every scheduler: a resumption reads it once.
thread_state: Final = _ThreadState()


class Scheduler:
    """The queue, the reactor sentinel, the work count and the run loops."""

    def __init__(self, reactor: Reactor, single_threaded: bool) -> None:
        self.reactor = reactor
        self.timers = TimerQueue()
        self.single_threaded = single_threaded
        self._lock = threading.Lock()
        self._queue: deque[Handler] = deque([_REACTOR_TASK])
        self._outstanding = 0
        self._stopped = False
        self._closed = False
        self._task_running = False  # a thread is inside a reactor pass
        self._reactor_owner: _Frame | None = None  # its frame (debug checks)
        self._task_interrupted = False  # that pass will not block (or was woken)
        self._last_pass = 0.0  # monotonic end of the last reactor pass (lock)
        self._idle: list[_Frame] = []  # threads waiting on the condition
        self._frames: list[_Frame] = []  # every frame of every thread in run*
        self.debug = os.environ.get("COROSIO_DEBUG", "") not in ("", "0")
        if single_threaded:
            # One thread by promise: no lock, no private queues.
            self.post = self._post_lockless  # type: ignore[method-assign]
            self.post_counted = self._post_counted_lockless  # type: ignore[method-assign]
            self.work_started = self._work_started_lockless  # type: ignore[method-assign]
            self.work_finished = self._work_finished_lockless  # type: ignore[method-assign]

    # ------------------------------------------------------------ posting

    def post(self, handler: Callable[..., object], /, *args: Any) -> None:
        """Queue ``handler(*args)``; it holds one unit of outstanding work until run.

        From a thread running this scheduler (innermost frame) the post is
        private and lock-free; otherwise it takes the lock and wakes a thread.
        """
        if args:
            handler = functools.partial(handler, *args)
        elif not callable(handler):
            raise TypeError(f"expected a callable, got {type(handler).__name__}")
        frame = thread_state.frame
        if frame is not None and frame.sched is self and not self._closed:
            frame.queue.append(handler)  # fast path: private, published later
            frame.work += 1
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the IOContext is closed")
            self._outstanding += 1  # count before visibility (W2)
            self._queue.append(handler)
            if self._idle or (self._task_running and not self._task_interrupted):
                self._wake_one_locked()

    def wake(self, handler: Handler) -> None:
        """Post a task resumption; dropped silently once the context is closed
        (close() abandons every task, so nobody is left to resume)."""
        try:
            self.post(handler)
        except RuntimeError:
            if not self._closed:
                raise

    def post_counted(self, handler: Handler) -> None:
        """Queue ``handler`` whose unit of work is already counted.

        Used to complete a parked operation or a timer wait: the unit moves
        from the operation to the queued completion.
        """
        frame = thread_state.frame
        if frame is not None and frame.sched is self and not self._closed:
            frame.queue.append(handler)
            return
        with self._lock:
            if self._closed:
                return  # discarded; close() already dropped every unit
            self._queue.append(handler)
            self._wake_one_locked()

    def _post_lockless(self, handler: Callable[..., object], /, *args: Any) -> None:
        if args:
            handler = functools.partial(handler, *args)
        elif not callable(handler):
            raise TypeError(f"expected a callable, got {type(handler).__name__}")
        if self._closed:
            raise RuntimeError("the IOContext is closed")
        self._outstanding += 1
        self._queue.append(handler)

    def _post_counted_lockless(self, handler: Handler) -> None:
        if not self._closed:
            self._queue.append(handler)

    def _work_started_lockless(self) -> None:
        self._outstanding += 1

    def _work_finished_lockless(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._stopped = True

    def work_started(self) -> None:
        """Add one unit of outstanding work (a parked op, a guard).

        Always counted globally, at once: a parked operation or a timer is
        visible to the reactor on another thread as soon as it is parked, so
        its unit must already be in the global count (W2).  Only the
        private-queue posts of :meth:`post` may be counted privately.
        """
        with self._lock:
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
            if self._outstanding <= 0:
                self._stop_locked()

    def add_timer(self, waiter: TimerWaiter, deadline: float) -> None:
        """Make ``waiter`` pending until ``deadline`` (one unit of work).

        One lock hold: the unit is counted before the waiter is visible in
        the heap (W2), and a blocked reactor is interrupted if the deadline
        became the earliest.  (Lock order: scheduler lock, then the timer
        queue's leaf lock.)
        """
        with self._lock:
            self._outstanding += 1
            if (
                self.timers.add(waiter, deadline)
                and self._task_running
                and not self._task_interrupted
            ):
                self._task_interrupted = True
                self.reactor.interrupt()

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
        if self._task_running:
            self._task_interrupted = True
            self.reactor.interrupt()

    def stopped(self) -> bool:
        """Whether the context is stopped."""
        with self._lock:
            return self._stopped

    def restart(self) -> None:
        """Clear the stopped flag; queue and count are untouched."""
        with self._lock:
            self._stopped = False

    def outstanding(self) -> int:
        """The published outstanding-work count (for tests and debugging)."""
        with self._lock:
            return self._outstanding

    def running_in_this_thread(self) -> bool:
        """Whether the calling thread is inside a ``run*`` call of ours."""
        frame = thread_state.frame
        while frame is not None:
            if frame.sched is self:
                return True
            frame = frame.prev
        return False

    # ------------------------------------------------------------ signalling

    def _wake_one_locked(self) -> None:
        """Wake an idle thread, else interrupt a blocking reactor (2.6.6)."""
        if self._idle:
            wake = self._idle.pop().wake
            assert wake is not None
            wake.release()
        elif self._task_running and not self._task_interrupted:
            self._task_interrupted = True
            self.reactor.interrupt()

    def _wake_all_locked(self) -> None:
        for frame in self._idle:
            assert frame.wake is not None
            frame.wake.release()
        self._idle.clear()

    def _wait_locked(self, frame: _Frame, timeout: float) -> None:
        """Sleep on the condition until woken or ``timeout`` (-1: forever).

        Called and returns with the lock held.  The caller re-checks its
        state afterwards: wake-ups are "look again", never a promise.
        """
        wake = frame.wake
        if wake is None:
            wake = frame.wake = _allocate_lock()
            wake.acquire()
        self._idle.append(frame)
        self._lock.release()
        woken = False
        try:
            woken = wake.acquire(True, timeout)
        finally:
            self._lock.acquire()
            if not woken:
                if frame in self._idle:
                    self._idle.remove(frame)
                else:
                    # A waker popped us and released (under the lock, which
                    # we now hold): consume it so the next wait blocks.
                    wake.acquire(False)

    # ------------------------------------------------------------ accounting

    def _publish_locked(self, frame: _Frame) -> bool:
        """Move the frame's private count, then its private queue (W2).

        Returns True when handlers became visible in the global queue.
        """
        work = frame.work
        if work:
            frame.work = 0
            self._outstanding += work
            if self._outstanding <= 0:
                if self.debug and self._outstanding < 0:
                    raise InvariantError("outstanding work count went negative")
                self._stop_locked()
        if frame.queue:
            self._splice_locked(frame.queue)
            frame.queue.clear()
            return True
        return False

    def _leave(self, frame: _Frame) -> None:
        """Pop ``frame``: publish what it holds and wake someone for it."""
        with self._lock:
            self._frames.remove(frame)
            if self._closed:  # close() ran meanwhile: nothing may be queued
                frame.queue.clear()
                frame.inbox.clear()
                frame.work = 0
            published = self._publish_locked(frame)
            if frame.inbox:
                # Already counted; back to the head, where they came from.
                self._splice_locked(frame.inbox, front=True)
                frame.inbox.clear()
                published = True
            if published and not self._stopped:
                self._wake_one_locked()  # 2.5.4: nobody else may be looking
            if self.debug:
                self._check_invariants_locked()
        thread_state.frame = frame.prev

    def _splice_locked(self, items: deque[Handler], front: bool = False) -> None:
        """Make counted handlers visible in the global queue (W2 checked)."""
        if self.debug:
            visible = self._visible_locked() + len(items)
            if self._outstanding < visible:
                raise InvariantError(
                    f"W2: {visible} handlers would be visible but outstanding="
                    f"{self._outstanding} (spliced before their count was published)"
                )
        if front:
            self._queue.extendleft(reversed(items))
        else:
            self._queue.extend(items)

    def _visible_locked(self) -> int:
        """Handlers other threads can see or run: each holds a global unit."""
        queued = len(self._queue) - (0 if self._task_running else 1)
        return queued + sum(len(f.inbox) for f in self._frames)

    def _check_invariants_locked(self) -> None:
        if self._outstanding < 0:
            raise InvariantError(f"outstanding work count is {self._outstanding}")
        visible = self._visible_locked()
        if self._outstanding < visible:
            raise InvariantError(
                f"W2: {visible} handlers visible but outstanding={self._outstanding}"
            )
        if self._task_running and self._reactor_owner not in self._frames:
            raise InvariantError(
                "a reactor pass is marked running but the thread that owns the "
                "sentinel has left run*"
            )
        if len(self._queue) > 4096:
            return  # the sentinel scan is O(n): skip it on long queues
        sentinels = self._queue.count(_REACTOR_TASK)
        if sentinels + int(self._task_running) != 1:
            raise InvariantError(
                f"reactor sentinel: {sentinels} queued, pass running={self._task_running}"
            )

    # ------------------------------------------------------------ the reactor pass

    def _reactor_pass(self, out: deque[Handler], timeout: float | None) -> int:
        """One reactor pass; completions go to ``out``.  Lock not held.

        ``timeout``: None blocks, 0 polls, else seconds; the nearest timer
        bounds it.  Returns how many completions were appended.
        """
        timers = self.timers
        if timeout != 0.0:
            deadline = timers.next_deadline()
            if deadline is not None:
                delay = deadline - _monotonic()
                delay = delay if delay > 0.0 else 0.0
                timeout = delay if timeout is None or delay < timeout else timeout
        before = len(out)
        for target, bits in self.reactor.wait(timeout):
            target.on_ready(bits, out)
        if timers.may_have_entries():
            timers.expire(_monotonic(), out)
        return len(out) - before

    # ------------------------------------------------------------ run loops

    def run(self, limit: int, deadline: float | None, poll: bool) -> int:
        """Run up to ``limit`` handlers; return how many ran.

        ``deadline`` (monotonic seconds) bounds the blocking of a timed
        variant; ``poll`` never blocks.  Returns when the context is stopped
        (explicitly or by the work count reaching zero), when the limit is
        reached, or when the deadline passes / a poll finds nothing.
        """
        if self.single_threaded:
            return self._run_lockless(limit, deadline, poll)
        frame = _Frame(self, thread_state.frame)
        lock = self._lock
        with lock:
            self._frames.append(frame)
        thread_state.frame = frame
        n = 0
        inbox = frame.inbox
        private = frame.queue
        frames = self._frames
        queue = self._queue
        streak = 0
        try:
            while n < limit:
                # Unlocked reads of _stopped and _frames are hints: a stop or
                # a second runner is acted on at the latest after
                # PRIVATE_STREAK more handlers, under the lock.
                handler: Handler | None
                if inbox and not self._stopped:
                    try:
                        handler = inbox.popleft()
                    except IndexError:  # an idle thread stole the rest
                        continue
                elif (
                    private
                    and streak
                    and deadline is None
                    and len(frames) == 1
                    and len(queue) == 1
                    and not self._stopped
                ):
                    # Our own posts, still privately counted; no other thread
                    # runs the context to share them with, and the shared
                    # queue holds only the sentinel, so FIFO order is kept:
                    # run them without the lock.
                    streak -= 1
                    handler = private.popleft()
                else:
                    streak = PRIVATE_STREAK
                    with lock:
                        handler = self._next_locked(frame, deadline, poll, limit > 1)
                    if handler is None:
                        break
                try:
                    handler()
                finally:
                    frame.work -= 1  # the handler's unit, published lazily
                n += 1
        finally:
            self._leave(frame)
        return n

    def _next_locked(
        self, frame: _Frame, deadline: float | None, poll: bool, batch: bool
    ) -> Handler | None:
        """One step of 2.4: return a handler to run, or None to return.

        Called with the lock held; may release it around a reactor pass or
        a wait, and always returns with it held.
        """
        queue = self._queue
        while True:
            self._publish_locked(frame)
            if self.debug:
                self._check_invariants_locked()
            if self._stopped:
                return None
            if self._outstanding <= 0:
                self._stop_locked()
                return None
            if frame.inbox:
                return frame.inbox.popleft()
            if queue:
                handler = queue.popleft()
                if handler is not _REACTOR_TASK:
                    if queue:
                        if self._idle:
                            self._wake_one_locked()  # the cascade: more work, a helper
                        elif batch:
                            self._take_batch_locked(frame.inbox)
                    return handler
                if not self._run_reactor_locked(frame, deadline, poll):
                    return None
                continue
            # The sentinel is with another thread and nothing is queued.
            if self._steal_locked(frame):
                continue
            if poll:
                return None
            if deadline is None:
                self._wait_locked(frame, -1)
                continue
            remaining = deadline - _monotonic()
            if remaining <= 0.0:
                return None
            self._wait_locked(frame, remaining)

    def _take_batch_locked(self, inbox: deque[Handler]) -> None:
        """No thread is idle: take a few more handlers, to run without the lock.

        They stay counted globally (like reactor completions) and go back to
        the head of the queue if this thread leaves before running them.
        The sentinel is never taken, so I/O keeps its turn.  Every thread
        steals from other inboxes before it sleeps or blocks in the reactor
        (:meth:`_steal_locked`), and a reactor already blocked is interrupted
        so that it does too: a handler that blocks while the rest of its
        batch waits behind it cannot starve threads that could run them.
        """
        queue = self._queue
        size = BATCH
        for _ in range(size - 1):
            if not queue or queue[0] is _REACTOR_TASK:
                break
            inbox.append(queue.popleft())
        if inbox and self._task_running and not self._task_interrupted:
            self._task_interrupted = True
            self.reactor.interrupt()

    def _steal_locked(self, frame: _Frame) -> bool:
        """Before sleeping or blocking: take half of another thread's inbox.

        Inbox items are counted globally, so they may run on any thread.
        The owner pops from the left without the lock; we pop from the right
        (deque pops are atomic, a documented guarantee, not the GIL's), so
        each item goes to exactly one thread.
        """
        for other in self._frames:
            victim = other.inbox
            if other is frame or not victim:
                continue
            stolen: list[Handler] = []
            for _ in range((len(victim) + 1) // 2):
                try:
                    stolen.append(victim.pop())
                except IndexError:
                    break
            if stolen:
                stolen.reverse()
                frame.inbox.extend(stolen)
                return True
        return False

    def _run_reactor_locked(self, frame: _Frame, deadline: float | None, poll: bool) -> bool:
        """We popped the sentinel: run one pass.  False means "return now"."""
        queue = self._queue
        more = bool(queue)
        if deadline is not None and _monotonic() >= deadline:
            queue.append(_REACTOR_TASK)  # checked once per traversal: a busy queue still ends
            return False
        if more and _monotonic() - self._last_pass < POLL_INTERVAL:
            queue.append(_REACTOR_TASK)  # polled a moment ago: run handlers
            return True
        if not more and not poll and self._steal_locked(frame):
            queue.append(_REACTOR_TASK)  # work held by a busy thread: run it first
            return True
        timeout = _pass_timeout(more, poll, deadline)
        self._task_running = True
        self._reactor_owner = frame
        self._task_interrupted = timeout == 0.0
        if more and self._idle:
            self._wake_one_locked()  # someone drains the queue while we poll
        self._lock.release()
        produced = 0
        try:
            produced = self._reactor_pass(frame.inbox, timeout)
        except BaseException:
            self._lock.acquire()
            self._task_running = False
            self._reactor_owner = None
            queue.append(_REACTOR_TASK)  # 2.11.1 PORT DECISION: stay usable
            self._wake_one_locked()
            raise
        self._lock.acquire()
        self._task_running = False
        self._reactor_owner = None
        queue.append(_REACTOR_TASK)
        self._last_pass = now = _monotonic()
        if produced > 1 and self._idle:
            # We run our completions ourselves, but an idle thread may steal
            # half of them: one wake per pass, not per handler.
            self._wake_one_locked()
        if deadline is not None and now >= deadline:
            return False
        return bool(produced or more or not poll)

    def _run_lockless(self, limit: int, deadline: float | None, poll: bool) -> int:
        """The ``concurrency_hint=1`` loop: one thread, no lock, no hand-off.

        Handlers' units are released in bulk when the sentinel comes round:
        the count can only be high in between, and it reaches zero only once
        the queue holds nothing but the sentinel, which is then popped next.
        """
        frame = _Frame(self, thread_state.frame)
        thread_state.frame = frame
        queue = self._queue
        popleft = queue.popleft
        n = settled = 0
        try:
            if self._outstanding <= 0:
                self._stopped = True
            while n < limit and not self._stopped:
                handler = popleft()
                if handler is not _REACTOR_TASK:
                    try:
                        handler()
                    finally:
                        n += 1
                    continue
                self._outstanding -= n - settled
                settled = n
                more = bool(queue)
                if not more and self._outstanding <= 0:
                    self._stopped = True
                    queue.append(_REACTOR_TASK)
                    break
                if deadline is not None and _monotonic() >= deadline:
                    queue.append(_REACTOR_TASK)
                    break
                if more and _monotonic() - self._last_pass < POLL_INTERVAL:
                    queue.append(_REACTOR_TASK)
                    continue
                try:
                    produced = self._reactor_pass(queue, _pass_timeout(more, poll, deadline))
                finally:
                    queue.append(_REACTOR_TASK)
                    self._last_pass = now = _monotonic()
                if deadline is not None and now >= deadline:
                    break
                if poll and not (produced or more):
                    break
        finally:
            self._outstanding -= n - settled
            if self._outstanding <= 0:
                self._stopped = True
            thread_state.frame = frame.prev
        return n

    # ------------------------------------------------------------ shutdown

    def shutdown(self) -> list[Handler]:
        """Close the scheduler: stop, refuse new posts, return queued handlers.

        Waits for a reactor pass in progress on another thread to end (the
        stop interrupted it) so the reactor can be closed safely.
        """
        with self._lock:
            self._closed = True
            self._stop_locked()
        while True:
            with self._lock:
                if not self._task_running:
                    drained = [h for h in self._queue if h is not _REACTOR_TASK]
                    self._queue.clear()
                    self._queue.append(_REACTOR_TASK)
                    self._outstanding = 0
                    return drained
            time.sleep(0.0005)

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` ran."""
        return self._closed
