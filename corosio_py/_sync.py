"""Lock, Event, Semaphore, Condition: coordination for tasks on any thread.

Each primitive keeps its state and its FIFO of parked waiters under one
``threading`` mutex (see ``_waiters``).  Ownership is handed over, never
raced for: releasing a lock (or a permit) that a task waits for passes it to
the oldest waiter directly, so FIFO order holds and a task that finds the
primitive free never overtakes one that is already waiting.  None of them is
tied to a context: tasks of different contexts, and plain threads for the
non-waiting calls, may share one.

A wait that is satisfied at once does not suspend (as in asyncio), so it is
no cancellation point; a stop token already stopped still refuses it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from ._cancel import StopToken, check_token
from ._errors import Cancelled
from ._ops import PENDING
from ._waiters import NOT_READY, Waiter, WaiterFifo, grant_first

if TYPE_CHECKING:
    from ._tasks import Task

__all__ = ("Condition", "Event", "Lock", "Semaphore", "refuse_if_stopped")

T = TypeVar("T")


def refuse_if_stopped(stop_token: StopToken) -> None:
    """A stop token already stopped means the wait never starts (callers
    test for None first: the common case costs no call)."""
    if check_token(stop_token).stop_requested:  # type: ignore[union-attr]
        raise Cancelled()


#: The primitives whose waiters park in their one ``_waiters`` FIFO.
P = TypeVar("P", "Lock", "Event", "Semaphore")


class _Wait(Waiter, Generic[P]):
    """A wait on ``owner``: its mutex, its FIFO (Lock, Event, Semaphore)."""

    __slots__ = ("_owner",)

    def __init__(self, owner: P, stop_token: StopToken | None) -> None:
        super().__init__(owner._mutex, owner._waiters, stop_token)
        self._owner: P = owner


# ---------------------------------------------------------------- Lock


class _Acquire(_Wait["Lock"]):
    """Waits for a :class:`Lock` (its value: True, the lock is held)."""

    __slots__ = ()

    def start(self, task: Task[Any]) -> object:
        with self._mutex:
            # Registered first, then tried: a release that found no waiter
            # (it looks without the mutex) has let go before this try.
            if self._owner._enqueue_or_take_locked(self):
                return True
            task._sched.work_started()  # under the mutex: no granter yet
            self.task = task
        return PENDING

    def discard(self, value: object) -> None:
        if value is True:  # granted to a task its closed context dropped
            self._owner.release()


@final
class Lock:
    """A FIFO mutual-exclusion lock for tasks (``asyncio.Lock``'s interface).

    ``async with lock:`` or ``await lock.acquire()`` / ``lock.release()``.
    Not owned by a task: any task or thread may release it (as in asyncio).
    A cancelled ``acquire`` never holds the lock; one that was granted the
    lock just before the cancel returns normally, holding it, and the
    cancellation lands at the task's next suspension.

    The lock's state is a deque holding one token while the lock is free
    (``_free``): an uncontended acquire is one atomic ``popleft`` and a
    release with nobody waiting one atomic ``append`` -- cheaper than a
    ``threading.Lock`` tried without blocking, whose argument parsing alone
    cost more than asyncio's whole uncontended acquire.  Waiters queue under
    ``_mutex``; a release hands the lock to the oldest of them without
    putting the token back, so a newcomer's try fails and FIFO order holds.
    """

    __slots__ = ("_mutex", "_free", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards _waiters; before the scheduler lock
        # One token while free, none while held: popleft/append are atomic.
        self._free: deque[bool] = deque((True,))
        # (_mutex); its truth value is read unlocked by release(), see there.
        self._waiters: WaiterFifo[Waiter, None] = WaiterFifo()

    def locked(self) -> bool:
        """Whether the lock is held."""
        return not self._free

    async def acquire(self, stop_token: StopToken | None = None) -> bool:
        """Wait until the lock is free, take it, return True.  FIFO."""
        if stop_token is not None:
            refuse_if_stopped(stop_token)
        try:
            self._free.popleft()
            return True
        except IndexError:
            pass
        return await _Acquire(self, stop_token)  # type: ignore[no-any-return]

    def release(self) -> None:
        """Release the lock, handing it to the oldest waiter if any.

        :raises RuntimeError: when the lock is not held.
        """
        free = self._free
        if not self._waiters:
            # Nobody seemed to wait: let go at once, then look again.  A
            # waiter registers before it tries, so either its try sees this
            # release or this second look sees it -- then take the token
            # back (if still there) and hand the lock over under the mutex.
            if free:
                raise RuntimeError("Lock.release() of an unlocked lock")
            free.append(True)
            if not self._waiters:
                return
            try:
                free.popleft()
            except IndexError:
                return  # taken meanwhile: its holder's release sees the waiter
        mutex = self._mutex
        mutex.acquire()
        try:
            if free:
                raise RuntimeError("Lock.release() of an unlocked lock")
            if grant_first(self._waiters, True) is None:
                free.append(True)  # the waiter left meanwhile
        finally:
            mutex.release()

    def _enqueue_or_take_locked(self, waiter: Waiter) -> bool:
        """Queue ``waiter``, then try the lock: True (dequeued) if taken."""
        self._waiters[waiter] = None
        try:
            self._free.popleft()
        except IndexError:
            return False
        del self._waiters[waiter]
        return True

    async def __aenter__(self) -> None:
        try:
            self._free.popleft()
        except IndexError:
            await _Acquire(self, None)

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "unlocked" if self._free else "locked"
        return f"<Lock {state} waiters={len(self._waiters)}>"


# ---------------------------------------------------------------- Event


class _EventWait(_Wait["Event"]):
    __slots__ = ()

    def try_now(self) -> object:
        return True if self._owner._flag else NOT_READY


@final
class Event:
    """A flag tasks can wait for (``asyncio.Event``'s interface).

    ``set()`` and ``clear()`` may be called from any thread, including a
    plain thread outside every ``run()``: ``set()`` resumes every waiting
    task on its own context.
    """

    __slots__ = ("_mutex", "_flag", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._flag = False  # (_mutex); a one-field hint for is_set() and wait()
        self._waiters: WaiterFifo[Waiter, None] = WaiterFifo()  # (_mutex)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiting task."""
        with self._mutex:
            self._flag = True
            while grant_first(self._waiters, True) is not None:
                pass

    def clear(self) -> None:
        """Reset the flag; later waits block until the next ``set()``."""
        with self._mutex:
            self._flag = False

    async def wait(self, stop_token: StopToken | None = None) -> bool:
        """Wait until the flag is set; return True."""
        if stop_token is not None:
            refuse_if_stopped(stop_token)
        if self._flag:  # a hint: seen set, so it was set during the call
            return True
        return await _EventWait(self, stop_token)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'unset'}>"


# ---------------------------------------------------------------- Semaphore


class _Permit(_Wait["Semaphore"]):
    __slots__ = ()

    def try_now(self) -> object:
        return True if self._owner._take_locked() else NOT_READY

    def discard(self, value: object) -> None:
        if value is True:  # granted to a task its closed context dropped
            self._owner.release()


@final
class Semaphore:
    """A counter of permits for tasks (``asyncio.Semaphore``'s interface). FIFO.

    ``async with sem:`` or ``await sem.acquire()`` / ``sem.release()``.  A
    cancelled ``acquire`` never takes a permit.
    """

    __slots__ = ("_mutex", "_value", "_waiters")

    def __init__(self, value: int = 1) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Semaphore value must be an int, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"Semaphore value must be >= 0, not {value}")
        self._mutex = threading.Lock()
        self._value = value  # (_mutex); a one-field hint for the property
        self._waiters: WaiterFifo[Waiter, None] = WaiterFifo()  # (_mutex)

    @property
    def value(self) -> int:
        """Permits available now."""
        return self._value

    def locked(self) -> bool:
        """Whether an ``acquire`` would wait."""
        return self._value == 0

    async def acquire(self, stop_token: StopToken | None = None) -> bool:
        """Wait for a permit, take it, return True.  FIFO."""
        if stop_token is not None:
            refuse_if_stopped(stop_token)
        mutex = self._mutex
        mutex.acquire()  # not ``with``: this is the hot path (docs/concurrency.md)
        try:
            taken = self._take_locked()
        finally:
            mutex.release()
        if taken:
            return True
        return await _Permit(self, stop_token)  # type: ignore[no-any-return]

    def release(self) -> None:
        """Return a permit, handing it to the oldest waiter if any."""
        mutex = self._mutex
        mutex.acquire()
        try:
            if not self._waiters or grant_first(self._waiters, True) is None:
                self._value += 1
        finally:
            mutex.release()

    def _take_locked(self) -> bool:
        # A permit available implies nobody waits (release hands it over).
        if self._value <= 0:
            return False
        self._value -= 1
        return True

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        with self._mutex:
            value, waiting = self._value, len(self._waiters)
        return f"<Semaphore value={value} waiters={waiting}>"


# ---------------------------------------------------------------- Condition

_WAITING, _REACQUIRING = 0, 1


class _ConditionWait(Waiter):
    """``Condition.wait()``: parked until notified, then re-takes the lock.

    Two phases.  Waiting for a notification it is cancellable like any
    waiter.  Once notified (or cancelled) it queues for the lock, no longer
    cancellable, and resumes the task only when the lock is held again --
    with True, or with the ``Cancelled`` that ended the first phase.  So
    ``wait()`` always returns or raises with the lock held, and a
    notification is never lost to a cancellation that came after it.
    """

    __slots__ = ("_cond", "_phase", "_error")

    def __init__(self, cond: Condition) -> None:
        super().__init__(cond._mutex, cond._waiters)
        self._cond = cond
        self._phase = _WAITING  # (cond._mutex, then the lock's mutex)
        self._error: BaseException | None = None

    def try_now(self) -> object:
        return NOT_READY

    def start(self, task: Task[Any]) -> object:
        result = super().start(task)  # registered before the lock is let go
        try:
            self._cond._lock.release()
        except RuntimeError:
            # Released by someone else since wait() checked: undo the park.
            with self._mutex:
                del self._fifo[self]
                self.task = None
            task._sched.work_finished()
            raise RuntimeError("Condition.wait() without holding its lock") from None
        return result

    def cancel(self, task: Task[Any]) -> bool:
        with self._mutex:
            if self.task is not task or self._phase != _WAITING:
                return False
            del self._fifo[self]
            self._error = Cancelled()
            self._reacquire_locked()
        return True

    def notified_locked(self) -> None:
        """Popped from the condition's FIFO by notify (cond mutex held)."""
        self._reacquire_locked()

    def _reacquire_locked(self) -> None:
        self._phase = _REACQUIRING
        lock = self._cond._lock
        with lock._mutex:
            if lock._enqueue_or_take_locked(self):
                self.grant_locked(True)

    def grant_locked(self, value: object) -> None:
        task = self.task
        assert task is not None
        self.task = None
        error, self._error = self._error, None
        # The value says "lock held" even with the error (the task ignores
        # it then), so discard() knows to give the lock back.
        task._sched.post_counted(task.wakeup(value, error))

    def abandon(self, task: Task[Any]) -> None:
        with self._mutex:
            if self.task is not task:
                return
            if self._phase == _WAITING:
                self._fifo.pop(self, None)
            else:
                lock = self._cond._lock
                with lock._mutex:
                    lock._waiters.pop(self, None)
            self.task = None

    def discard(self, value: object) -> None:
        if value is True:  # re-taken for a task its closed context dropped
            self._cond._lock.release()


@final
class Condition:
    """A condition variable for tasks (``asyncio.Condition``'s interface).

    ``async with cond:`` takes its lock (a :class:`Lock`, shared if given).
    ``await cond.wait()`` lets the lock go until notified and returns holding
    it again -- also when cancelled, in which case ``Cancelled`` is raised
    with the lock held, so the ``async with`` releases it.  ``notify`` and
    ``notify_all`` must be called holding the lock.
    """

    __slots__ = ("_lock", "_mutex", "_waiters")

    def __init__(self, lock: Lock | None = None) -> None:
        if lock is None:
            lock = Lock()
        elif not isinstance(lock, Lock):
            raise TypeError(f"Condition takes a corosio_py Lock, not {type(lock).__name__}")
        self._lock = lock
        self._mutex = threading.Lock()  # order: before the lock's mutex
        self._waiters: WaiterFifo[Waiter, None] = WaiterFifo()  # (_mutex)

    def locked(self) -> bool:
        """Whether the underlying lock is held."""
        return self._lock.locked()

    async def acquire(self, stop_token: StopToken | None = None) -> bool:
        """Take the underlying lock (see :meth:`Lock.acquire`)."""
        return await self._lock.acquire(stop_token)

    def release(self) -> None:
        """Release the underlying lock."""
        self._lock.release()

    async def wait(self) -> bool:
        """Let the lock go, wait for a notification, re-take it; return True.

        :raises RuntimeError: when the lock is not held.
        """
        if not self._lock.locked():
            raise RuntimeError("Condition.wait() without holding its lock")
        return await _ConditionWait(self)  # type: ignore[no-any-return]

    async def wait_for(self, predicate: Callable[[], T]) -> T:
        """Wait until ``predicate()`` is true; return its last value."""
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks (each re-takes the lock in turn).

        :raises RuntimeError: when the lock is not held.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if not self._lock.locked():
            raise RuntimeError("Condition.notify() without holding its lock")
        with self._mutex:
            while n > 0 and self._waiters:
                waiter, _ = self._waiters.popitem(last=False)
                assert isinstance(waiter, _ConditionWait)
                waiter.notified_locked()
                n -= 1

    def notify_all(self) -> None:
        """Wake every waiting task."""
        self.notify(len(self._waiters))

    async def __aenter__(self) -> None:
        await self._lock.__aenter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<Condition {self._lock!r} waiters={len(self._waiters)}>"

