"""The parked wait shared by every coordination primitive.

A primitive (lock, event, semaphore, condition, queue) owns a ``threading``
mutex and one or more FIFOs of :class:`Waiter` operations.  A waiter is
*claimed* exactly once, under that mutex: granted by the primitive (popped
from its FIFO, resumed with a value) or cancelled by its task (removed from
the FIFO, resumed with ``Cancelled``).  Whoever claims it queues the task's
resumption with ``post_counted``, which moves the unit of outstanding work
the waiter took when it parked.  A grant therefore always reaches its task:
a cancel that arrives after the grant finds the waiter gone and leaves the
request pending for the task's next suspension, so no lock, permit or item
is ever lost to a cancellation.

Lock order: task lock, then a primitive's mutex, then the scheduler lock
(a grant queues the resumption while holding the mutex, which keeps the
claim and the delivery of its value one step).

The primitives' hot paths take their mutex with explicit ``acquire()`` /
``release()`` in ``try``/``finally`` rather than ``with``: on CPython
3.11-3.13 the ``with`` statement on a lock costs about twice as much, which
is the difference between matching asyncio's uncontended rate and not.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

from ._cancel import StopToken
from ._errors import Cancelled
from ._ops import PENDING, Operation

if TYPE_CHECKING:
    import threading

    from ._tasks import Task

__all__ = ("NOT_READY", "Waiter", "WaiterFifo", "grant_first")


class _NotReady:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_READY"


#: Returned by :meth:`Waiter.try_now` when the waiter has to park.
NOT_READY: Final = _NotReady()

#: A FIFO of parked waiters: insertion-ordered, O(1) removal of any entry.
WaiterFifo = OrderedDict


class Waiter(Operation):
    """A task's wait on a primitive: granted or cancelled exactly once.

    Subclasses say how to succeed at once (:meth:`try_now`, called with the
    primitive's mutex held) and how to give back a value that a closed
    context will never deliver (:meth:`discard`).
    """

    __slots__ = ("_mutex", "_fifo", "task")

    def __init__(
        self,
        mutex: threading.Lock,
        fifo: OrderedDict[Waiter, None],
        stop_token: StopToken | None = None,
    ) -> None:
        super().__init__(stop_token)
        self._awaited = True  # created by the library right at its await
        self._mutex = mutex
        self._fifo = fifo
        # The parked task; set under the mutex when parking, cleared by the
        # claimer under the mutex.
        self.task: Task[Any] | None = None

    def try_now(self) -> object:
        """Complete without waiting if possible (mutex held): the value, or
        :data:`NOT_READY` to park."""
        raise NotImplementedError

    def start(self, task: Task[Any]) -> object:
        with self._mutex:
            value = self.try_now()
            if value is not NOT_READY:
                return value
            # Counted before a granter on another thread can see the waiter:
            # its post_counted moves this unit.
            task._sched.work_started()
            self.task = task
            self._fifo[self] = None
        return PENDING

    def cancel(self, task: Task[Any]) -> bool:
        with self._mutex:
            if self.task is not task or self._fifo.pop(self, _ABSENT) is _ABSENT:
                return False  # granted already: the value is on its way
            self.task = None
            # NOT_READY as the value: nothing granted, nothing to discard.
            task._sched.post_counted(task.wakeup(NOT_READY, Cancelled()))
        return True

    def abandon(self, task: Task[Any]) -> None:
        with self._mutex:
            if self.task is task:
                self._fifo.pop(self, None)
                self.task = None

    def grant_locked(self, value: object) -> None:
        """Resume the (already popped) parked task with ``value`` (mutex held)."""
        task = self.task
        assert task is not None, "a waiter is granted once, while parked"
        self.task = None
        task._sched.post_counted(task.wakeup(value, None))


_ABSENT: Final = object()


def grant_first(fifo: OrderedDict[Waiter, None], value: object) -> Waiter | None:
    """Pop the oldest parked waiter and grant it ``value`` (mutex held)."""
    if not fifo:
        return None
    waiter, _ = fifo.popitem(last=False)
    waiter.grant_locked(value)
    return waiter
