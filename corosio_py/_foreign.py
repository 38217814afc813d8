"""The inbox of posts made from threads outside ``run*``.

A thread that is not running the scheduler used to take the scheduler lock
for every post: count the unit, queue the handler, maybe wake someone.
With several posting threads that lock became a convoy under the GIL: a
producer preempted while it held the lock stalled the runner and every
other producer (4 producers: 170k posts/s; any lock on the posting path,
even one of its own, cost the same).  Now such a post takes no lock: it
appends to a deque, and the runners move the whole deque into the
scheduler's queue (and count it) in one step when they next look.

**No lost wake-up, without a lock.**  Two deques carry the protocol:
``items`` (the handlers) and ``_wakes`` (one token per runner that armed
the inbox before blocking).

* A runner about to block (a reactor pass that may wait, an idle sleep)
  *arms*: it appends a token to ``_wakes``, then pops the first entry of
  ``items`` and puts it back (a permanent bottom entry, so the deque is
  never empty), then looks at its length: if handlers wait, it does not
  block.
* A poster appends its handler to ``items``, then looks at ``_wakes``.  If
  there is a token, it pops it (one poster wins each token) and wakes a
  runner under the scheduler lock.

Either the runner's pop-and-put-back comes after the poster's append in
``items``'s order (its length read, after it, sees the handler), or it
comes first, and then the token it appended before happens-before the
poster's look (the poster sees it).
Deque operations are atomic under the GIL and run in a per-object critical
section (a mutex) on free-threaded builds, so this holds on both; the
poster's look is a plain length read, ordered after the runner's token by
that chain.  A token left over (the runner woke for another reason) costs
at most one spurious wake-up; :meth:`take` resets them.

``close()`` marks the inbox closed, then clears it: a post that appended
before the clear is dropped with the queued handlers; one that appends
after it sees the mark (the clear happens-before its append) and raises.

Lock order: none here; a poster takes the scheduler lock only to wake.
"""

from __future__ import annotations

from collections import deque

from ._scheduler import ContextClosedError, Frame, Handler, InvariantError

#: A token in ``_wakes``: some runner armed the inbox and may be blocked.
_TOKEN: object = object()


def _bottom() -> None:
    """Never run: the permanent first entry of ``ForeignInbox.items``, so a
    runner's read-modify-write there (``popleft``) never meets an empty
    deque (no exception on the path of every blocking reactor pass)."""


class ForeignInbox:
    """Handlers posted from outside ``run*``, not yet counted as outstanding
    work (the scheduler counts them when it takes them).

    No lock: the two deques and the protocol in the module docstring.
    ``_closed`` is written once (under the scheduler lock, before the clear)
    and read unlocked by posters after their append.
    """

    __slots__ = ("items", "_wakes", "_closed")

    def __init__(self) -> None:
        #: ``_bottom`` then the waiting handlers; never replaced, so a runner
        #: may test ``len(items) > 1`` unlocked as a hint (a stale answer
        #: only delays a take until its next look; blocking and stopping
        #: re-check through :meth:`arm` and :meth:`take`).  Only :meth:`put`
        #: appends, only the scheduler (under its lock) pops.
        self.items: deque[Handler] = deque([_bottom])
        self._wakes: deque[object] = deque()
        self._closed = False

    def put(self, handler: Handler) -> bool:
        """Queue ``handler``; True when the caller must wake a runner.

        :raises ContextClosedError: (a ``RuntimeError``) once the context is closed.
        """
        if self._closed:
            raise ContextClosedError("the IOContext is closed")
        self.items.append(handler)
        if self._closed:
            raise ContextClosedError("the IOContext is closed")  # dropped by close()
        wakes = self._wakes
        if not wakes:
            return False
        try:
            wakes.pop()
        except IndexError:
            return False  # another poster took the token: it wakes the runner
        return True

    def take(self, rearm: bool, into: deque[Handler]) -> int:
        """Move every queued handler to the end of ``into`` (the scheduler
        lock held: one taker at a time); return how many moved.

        ``rearm``: runners are still blocked without having been woken for
        this inbox, so the next post must wake one.
        """
        wakes = self._wakes
        wakes.clear()
        if rearm:
            wakes.append(_TOKEN)
        items = self.items
        waiting = len(items) - 1
        if waiting:
            popleft = items.popleft
            append = into.append
            bottom = popleft()
            # One by one: a concurrent post appends to this same deque, and
            # each handler is taken exactly once.
            for _ in range(waiting):
                append(popleft())
            items.appendleft(bottom)
        return waiting

    def arm(self) -> bool:
        """A runner is about to block (scheduler lock held).  True means
        handlers are waiting: it must not block.  Otherwise the next post
        wakes a runner."""
        self._wakes.append(_TOKEN)
        items = self.items
        # A read-modify-write of ``items`` (see the module docstring): the
        # bottom entry goes out and back; posts only append on the right.
        items.appendleft(items.popleft())
        return len(items) > 1

    def close(self) -> None:
        """Refuse further posts and drop the waiting handlers (they were
        never counted, so nothing is owed).  Scheduler lock held."""
        self._closed = True
        items = self.items
        while len(items) > 1:
            items.pop()  # from the right: the bottom entry stays
        self._wakes.clear()


class ForeignPosts:
    """The threaded scheduler's side of the inbox, mixed into
    ``ThreadedScheduler``: its ``__init__`` creates the fields declared here
    (the inbox, and the scheduler's own fields, guarded by its lock)."""

    debug: bool
    _foreign: ForeignInbox
    _outstanding: int
    _queue: deque[Handler]
    _idle: list[Frame]
    _reactor_running: bool
    _reactor_interrupted: bool

    def _out_of_work_locked(self) -> bool:
        """The count is down to zero: is it still, once the foreign inbox
        is taken in?  (Every stop is decided here: a post whose append came
        before, in any thread's order, is counted and keeps the context
        running.)"""
        if self.debug and self._outstanding < 0:
            raise InvariantError("outstanding work count went negative")
        self._take_foreign_locked()
        return self._outstanding <= 0

    def _take_foreign_locked(self) -> None:
        """Count and queue the foreign posts.  The inbox stays armed while
        runners sleep or block in the reactor unwoken: the next post wakes one."""
        # Counted under the lock they become visible under: nobody sees them
        # before the count does.
        self._outstanding += self._foreign.take(
            bool(self._idle) or (self._reactor_running and not self._reactor_interrupted),
            self._queue,
        )
