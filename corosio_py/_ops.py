"""The contract between the coroutine driver and every awaitable operation.

An awaitable operation's ``__await__`` yields an :class:`Operation`; the task
driver (``_tasks.Task``) then *initiates* it by calling :meth:`Operation.start`
-- only after the coroutine has yielded, so no other thread can complete the
operation and resume a coroutine that is still executing (SCHEDULER_SEMANTICS
3.8.8).

Exactly-once completion (4.2.2): a parked operation is completed by whoever
*claims* it under the lock that guards its slot -- the reactor (a result), a
cancel (``Cancelled``), a close.  The claimer queues the task's resumption
with :meth:`Scheduler.post_counted`, moving the operation's unit of
outstanding work to the queued resumption.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task


class _Pending:
    """The type of :data:`PENDING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


#: Returned by :meth:`Operation.start` when the operation was parked.
PENDING: Final = _Pending()


class Operation:
    """Base class of everything a corosio_py coroutine may ``await``.

    ``stop_token``: a token that cancels just this operation; one already
    stopped means the operation never starts, and one stopped before the
    task resumes turns the result into ``Cancelled`` (3.10.3).
    """

    __slots__ = ("stop_token",)

    def __init__(self, stop_token: StopToken | None = None) -> None:
        self.stop_token = stop_token

    def start(self, task: Task[Any]) -> object:
        """Initiate the operation for ``task`` (called under the task's lock).

        Return the result at once, raise the error at once, or return
        :data:`PENDING` after arranging exactly one later completion through
        ``task.wakeup(...)`` queued with ``post_counted``.
        """
        raise NotImplementedError

    def cancel(self, task: Task[Any]) -> bool:
        """Complete the parked operation with ``Cancelled`` if still parked.

        Called under the task's lock.  Returns True if this call claimed it.
        """
        return False

    def discard(self, value: object) -> None:
        """A completed result is being dropped (the task was cancelled).

        Operations whose results own resources (an accepted socket) release
        them here.
        """

    def __await__(self) -> Any:
        return (yield self)
