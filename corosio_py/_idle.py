"""How the threads of :class:`~corosio_py._threaded.ThreadedScheduler`
share work: waking and sleeping, the watcher, batches and stealing.

* **The watcher.**  While more than one thread is in ``run*``, one idle
  thread waits with a short timeout instead of indefinitely, and on each
  timeout looks at every busy frame's ``ran`` counter: a frame that ran no
  handler since the last look is stuck, and the watcher steals its work and
  joins in.
* **Stealing.**  A thread about to sleep takes half of another frame's inbox
  or private queue (:meth:`IdleThreads._steal_locked`), so work that sits in
  a frame is never stranded.

This is a base class of ``ThreadedScheduler`` over the scheduler's own state
(its lock, the idle list, the frames, the licence count), not a set of
helper functions: the methods moved here unchanged, still reading
``self._idle`` and calling ``self._wake_one_locked()``, so the hot paths
(``post``, ``post_counted``, the run loop) make exactly the calls and
attribute lookups they made before (an inherited method is found through
the same per-type cache); helper functions would take the scheduler or its
fields as arguments at every call site.  ``ThreadedScheduler.__init__``
creates every field this class declares; all of them are guarded by
``_lock`` (see :mod:`corosio_py._threaded`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from typing import Final

from . import _interrupt
from ._foreign import ForeignInbox
from ._scheduler import REACTOR_SENTINEL, Frame, Handler, Scheduler
from ._sleep import SleepSignal, new_sleep_signal

_monotonic = time.monotonic

#: Handlers a thread takes from the shared queue per lock hold when no other
#: thread could take them (it runs them without the lock, in order).
BATCH: Final = 128
#: A frame that ran no handler for this long is "stuck" (the watcher's period).
WATCH_INTERVAL: Final = 0.001
#: The watcher's period while no frame is inside a handler (only a reactor
#: blocked in the OS): a handler that starts then blocks is noticed this late.
WATCH_IDLE_INTERVAL: Final = 0.05
#: Longest single condition wait: ``Lock.acquire`` refuses timeouts beyond
#: ``threading.TIMEOUT_MAX``; waiting in slices lets any deadline work.
MAX_WAIT: Final = 3600.0


class IdleThreads(Scheduler):
    """Waking, sleeping, watching and stealing for the threaded scheduler.

    Not used alone: :class:`~corosio_py._threaded.ThreadedScheduler`
    derives from it and initialises the fields declared here.
    """

    # Created by ThreadedScheduler.__init__; guarded by _lock.
    gil: bool
    _lock: threading.Lock
    _reactor_running: bool
    _reactor_owner: Frame | None
    _reactor_interrupted: bool
    _idle: list[Frame]
    _foreign: ForeignInbox
    _frames: list[Frame]
    _licensed: int
    _watcher: Frame | None
    _sampled_at: float

    # ------------------------------------------------------------ signalling

    def _interrupt_reactor_locked(self) -> None:
        self._reactor_interrupted = True
        self.reactor.interrupt()

    def _wake_one_locked(self) -> None:
        """Someone should look at the shared queue.

        Free-threaded: wake an idle thread, else interrupt a blocked
        reactor.  GIL: prefer the reactor thread (it is licensed and runs the
        work itself), and wake an idle thread only when no thread is licensed.
        """
        if self.gil:
            if self._reactor_running and not self._reactor_interrupted:
                self._interrupt_reactor_locked()
            elif self._licensed == 0 and self._idle:
                self._release_locked(self._idle.pop(), license=True)
            return
        if self._idle:
            self._release_locked(self._idle.pop(), license=True)
        elif self._reactor_running and not self._reactor_interrupted:
            self._interrupt_reactor_locked()

    def _release_locked(self, frame: Frame, license: bool) -> None:
        """Wake ``frame``, popped from the idle list."""
        frame.idle = False
        if license and not frame.licensed:
            frame.licensed = True
            self._licensed += 1
        wake = frame.wake
        assert wake is not None
        wake.release()

    def _wake_all_locked(self) -> None:
        for frame in self._idle:
            self._release_locked(frame, license=False)
        self._idle.clear()

    def _sleep_locked(self, frame: Frame, timeout: float) -> bool:
        """Wait on the frame's wake lock until woken or ``timeout`` (-1:
        forever).  Called and returns with the scheduler lock held; True
        when woken.  A wake-up means "look again", never a promise.
        """
        if self._foreign.arm():
            return True  # foreign posts wait: take them instead of sleeping
        wake = frame.wake
        if wake is None:
            wake = frame.wake = new_sleep_signal(self.gil)
        if frame.licensed:
            frame.licensed = False
            self._licensed -= 1
        frame.idle = True
        self._idle.append(frame)
        woken = False
        lock = self._lock
        try:
            lock.release()
            woken = _interrupt.blocking(
                functools.partial(_poke_wake, wake), wake.acquire, True, timeout
            )
        finally:
            _acquire_uninterrupted(lock)
            if frame.idle:
                # Timed out, or poked by Ctrl-C: we are still listed.
                frame.idle = False
                self._idle.remove(frame)
                if woken:
                    woken = False  # the poke, not a waker
            elif not woken:
                # A waker popped us and released (under the lock, which we now
                # hold) as we timed out: consume it so the next wait blocks.
                wake.acquire(False)
                woken = True
            frame.sampled = -1  # busy from now on: not stuck until proven
        return woken

    # ------------------------------------------------------------ the watcher

    def _idle_step_locked(self, frame: Frame, deadline: float | None, poll: bool) -> bool:
        """Nothing for this frame to do now: wait (as the watcher when there is
        none).  False means "return from run*" (a poll, or the deadline)."""
        if poll:
            return False
        if deadline is None:
            timeout = MAX_WAIT
        else:
            timeout = deadline - _monotonic()
            if timeout <= 0.0:
                return False
            timeout = min(timeout, MAX_WAIT)
        if (self._watcher is None or self._watcher is frame) and len(self._frames) > 1:
            self._watch_locked(frame, timeout)
        else:
            self._sleep_locked(frame, timeout)
        return True

    def _watch_locked(self, frame: Frame, timeout: float) -> None:
        """Wait as the watcher: look at the busy frames every WATCH_INTERVAL
        and take over from a stuck one.  Returns when woken, when the
        timeout passes, or when this frame took work."""
        self._watcher = frame
        end = _monotonic() + timeout
        try:
            while True:
                period = WATCH_INTERVAL if self._busy_frames_locked(frame) else WATCH_IDLE_INTERVAL
                remaining = end - _monotonic()
                if remaining <= 0.0:
                    return
                if self._sleep_locked(frame, min(period, remaining)) or self._stopped:
                    return
                stuck = self._stuck_locked(frame)
                if stuck:
                    self._take_over_locked(frame, stuck)
                    return
                if not self.gil and len(self._queue) > 1:
                    return  # free-threaded: queued work is ours to take
        finally:
            if self._watcher is frame:
                self._watcher = None
                if not self._stopped:
                    self._find_watcher_locked()

    def _hand_on_watch_locked(self) -> None:
        """Designated to watch, but about to take work: pass the duty on."""
        self._watcher = None
        self._find_watcher_locked()

    def _find_watcher_locked(self) -> None:
        """The watcher left its post: an idle thread takes it, else a reactor
        blocked without a bound wakes up to watch between its passes."""
        if self._idle:
            successor = self._idle.pop()
            self._watcher = successor  # it must not take work before passing this on
            self._release_locked(successor, license=False)
        elif self._reactor_running and not self._reactor_interrupted:
            self._interrupt_reactor_locked()

    def _busy_frames_locked(self, me: Frame) -> list[Frame]:
        """Frames inside a handler (or about to be): not idle, not blocked in
        the reactor's OS wait."""
        blocked = self._reactor_owner if not self._reactor_interrupted else None
        return [f for f in self._frames if f is not me and not f.idle and f is not blocked]

    def _stuck_locked(self, me: Frame) -> list[Frame]:
        """Busy frames that completed no handler since the last look, taken
        at least WATCH_INTERVAL ago (a frame's sample is reset whenever it
        wakes or ends a reactor pass, so an old sample never convicts a frame
        that only just started its handler)."""
        now = _monotonic()
        if now - self._sampled_at < WATCH_INTERVAL:
            return []
        stuck = [f for f in self._busy_frames_locked(me) if f.ran == f.sampled]
        for f in self._frames:
            f.sampled = f.ran
        self._sampled_at = now
        return stuck

    def _take_over_locked(self, frame: Frame, stuck: list[Frame]) -> None:
        """The watcher found frames stuck in a handler: it takes their work
        and a licence (its ``_watch_locked`` then finds a successor)."""
        if not frame.licensed:
            frame.licensed = True
            self._licensed += 1
        self._steal_locked(frame, stuck)

    # ------------------------------------------------------------ batches and stealing

    def _take_batch_locked(self, inbox: deque[Handler]) -> None:
        """No other thread may take them now: take a few more handlers, to
        run without the lock.

        They stay counted globally (like reactor completions) and go back to
        the head of the queue if this thread leaves before running them.
        The sentinel is never taken, so I/O keeps its turn.  A reactor already
        blocked is interrupted so that it can steal from us; a watcher steals
        them if the handler before them blocks.
        """
        queue = self._queue
        for _ in range(BATCH - 1):
            if not queue or queue[0] is REACTOR_SENTINEL:
                break
            inbox.append(queue.popleft())
        if inbox and self._reactor_running and not self._reactor_interrupted and not self.gil:
            self._interrupt_reactor_locked()

    def _steal_locked(self, frame: Frame, victims: list[Frame]) -> bool:
        """Take half of a victim's inbox, else half of its private queue.

        Inbox items are counted globally, so they may run on any thread.
        Private items are counted in the victim's private count, which only
        its owner touches: the thief counts them globally now and records
        them in ``victim.stolen``, which the owner subtracts when it
        publishes.  Owners pop from the left without the lock; thieves pop
        from the right with it (deque pops are atomic), so each item goes to
        exactly one thread.
        """
        for victim in victims:
            if victim is frame:
                continue
            for source, counted in ((victim.inbox, True), (victim.queue, False)):
                if not source:
                    continue
                stolen: list[Handler] = []
                for _ in range((len(source) + 1) // 2):
                    try:
                        stolen.append(source.pop())
                    except IndexError:
                        break
                if not stolen:
                    continue
                if not counted:
                    self._outstanding += len(stolen)
                    victim.stolen += len(stolen)
                stolen.reverse()
                frame.inbox.extend(stolen)
                return True
        return False


def _poke_wake(wake: SleepSignal) -> None:
    """Ctrl-C pokes an idle main thread: make its wait return."""
    try:
        wake.release()
    except RuntimeError:
        pass  # already released: the wait returns anyway


def _acquire_uninterrupted(lock: threading.Lock) -> None:
    """Take ``lock`` even if a signal handler raises meanwhile.

    Our own SIGINT handler never raises here (this module is protected), but
    a handler the user installed may: its exception is kept and raised at
    the scheduler's next safe point instead of leaving the lock released
    halfway through restoring the state.
    """
    while True:
        try:
            lock.acquire()
            return
        except BaseException as exc:
            _interrupt.defer(exc)
