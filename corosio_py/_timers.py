"""The timer queue: a heap of deadlines that sets the reactor's wait timeout.

One queue per context.  Entries are :class:`TimerWaiter` objects, one per
pending wait; the heap holds ``(deadline, seq, waiter)`` tuples so ordering is
decided by C tuple comparison (asyncio's ``TimerHandle.__lt__`` written in
Python is what makes its ``call_at`` slow).

Exactly-once: a waiter is completed by whoever
detaches it under the queue's lock -- expiry, a cancel, a stop token.  The
loser finds ``pending`` false and does nothing.  Detached entries that are
still in the heap are skipped lazily and compacted when they outnumber the
live ones, so a server that arms and cancels a timeout per request does not
grow the heap without bound.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

Completion = Callable[[], object]


class TimerWaiter(Protocol):
    """One pending wait in the heap (structural: operations are waiters too).

    ``pending`` is guarded by the owning :class:`TimerQueue`'s lock.
    """

    deadline: float
    pending: bool

    def expired(self) -> Completion:
        """Return the completion to queue now that the deadline has passed.

        Called once, on the reactor thread, after the waiter was detached.
        The completion inherits the waiter's unit of outstanding work.
        """
        ...


class TimerQueue:
    """A min-heap of waiters keyed by deadline, guarded by its own lock.

    Lock order: this lock is a leaf -- nothing else is acquired while it is
    held, so it may be taken with or without the scheduler lock.
    """

    __slots__ = ("_lock", "_heap", "_seq", "_dead")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, TimerWaiter]] = []
        self._seq = itertools.count()
        self._dead = 0  # detached waiters still in the heap

    def add(self, waiter: TimerWaiter, deadline: float) -> bool:
        """Make ``waiter`` pending until ``deadline``.

        Returns True when it became the earliest deadline, in which case the
        caller must interrupt a reactor that may be blocked on a later one.
        """
        entry = (deadline, next(self._seq), waiter)
        with self._lock:
            waiter.deadline = deadline
            waiter.pending = True
            heapq.heappush(self._heap, entry)
            return self._heap[0] is entry

    def remove(self, waiter: TimerWaiter) -> bool:
        """Detach ``waiter`` if still pending; True if this call detached it."""
        with self._lock:
            if not waiter.pending:
                return False
            self._detach_locked(waiter)
            return True

    def remove_all(self, waiters: list[TimerWaiter]) -> list[TimerWaiter]:
        """Detach every still-pending waiter of ``waiters``; return those."""
        with self._lock:
            claimed = [w for w in waiters if w.pending]
            for w in claimed:
                self._detach_locked(w)
            return claimed

    def _detach_locked(self, waiter: TimerWaiter) -> None:
        waiter.pending = False
        self._dead += 1
        heap = self._heap
        if self._dead > 64 and self._dead * 2 > len(heap):
            self._heap = [e for e in heap if e[2].pending]
            heapq.heapify(self._heap)
            self._dead = 0

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, or None when nothing is pending."""
        if not self._heap:
            # Unlocked peek: a waiter added after it interrupts the pass that
            # is about to block (Scheduler.add_timer), so none is missed.
            return None
        with self._lock:
            heap = self._heap
            while heap and not heap[0][2].pending:
                heapq.heappop(heap)
                self._dead -= 1
            return heap[0][0] if heap else None

    def may_have_entries(self) -> bool:
        """Unlocked hint: False only if the heap was empty a moment ago.

        A waiter added concurrently interrupts the reactor pass, so the next
        pass sees it; the hint only spares a clock read per pass.
        """
        return bool(self._heap)

    def expire(self, now: float, out: deque[Completion]) -> int:
        """Detach every waiter due at ``now``; append their completions.

        Completions go to ``out`` in deadline order; returns how many.
        """
        heap = self._heap
        if not heap or heap[0][0] > now:
            return 0  # unlocked peek: a racing add re-checks via interrupt
        due: list[TimerWaiter] = []
        with self._lock:
            heap = self._heap
            pop = heapq.heappop
            while heap and heap[0][0] <= now:
                waiter = pop(heap)[2]
                if waiter.pending:
                    waiter.pending = False
                    due.append(waiter)
                else:
                    self._dead -= 1
        for waiter in due:
            out.append(waiter.expired())
        return len(due)

    def clear(self) -> list[TimerWaiter]:
        """Detach and return every pending waiter (context shutdown)."""
        with self._lock:
            live = [e[2] for e in sorted(self._heap) if e[2].pending]
            for waiter in live:
                waiter.pending = False
            self._heap = []
            self._dead = 0
            return live

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap) - self._dead
