"""The contract between the coroutine driver and every awaitable operation.

An awaitable operation's ``__await__`` yields an :class:`Operation`; the task
driver (``_tasks.Task``) then *initiates* it by calling :meth:`Operation.start`
-- only after the coroutine has yielded, so no other thread can complete the
operation and resume a coroutine that is still executing (as upstream's
awaitables initiate in ``await_suspend``).

Exactly-once completion (docs/architecture.md, "Exactly once"): a parked
operation is completed by whoever *claims* it under the lock that guards its
slot -- the reactor (a result), a cancel (``Cancelled``), a close.  The
claimer queues the task's resumption with :meth:`Scheduler.post_counted`,
moving the operation's unit of outstanding work to the queued resumption.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Final

from ._scheduler import thread_state

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
    stopped means the operation never starts.  One stopped after the
    operation completed does not undo it: the result is delivered and the
    token, still stopped, cancels the next operation that uses it.

    An operation is awaited once, by a corosio_py task.  Awaited by another
    runner (asyncio, trio) it raises ``RuntimeError`` at the ``await``; one
    that is never awaited emits a ``RuntimeWarning`` when it is collected,
    as a never-awaited coroutine does.  ``_awaited`` is left unset until the
    ``await`` (no store in the constructors of the hot operations);
    operations that the library creates and awaits itself set it at once.
    """

    __slots__ = ("stop_token", "_awaited")

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

    def abandon(self, task: Task[Any]) -> None:
        """The task is abandoned (its context closed) and may be parked here.

        Called under the task's lock.  Operations parked in a queue that
        outlives the context (a lock's, a queue's waiters) leave it, so they
        are never granted something nobody will receive.
        """

    def discard(self, value: object) -> None:
        """A completed result is being dropped (the context was closed
        before the task resumed; a cancel never drops a result).

        Operations whose results own resources (an accepted socket) release
        them here.
        """

    def __await__(self) -> Any:
        self._awaited = True
        try:
            return (yield self)
        except Exception as error:
            # Only the error path pays for the check: a corosio_py task
            # throws the operation's own errors in here, any other runner
            # throws its complaint about the object it was handed.
            frame = thread_state.frame
            if frame is None or frame.task is None:
                raise RuntimeError(_FOREIGN_RUNNER) from error
            raise

    def __del__(self) -> None:
        try:
            self._awaited  # noqa: B018 - set by __await__
        except AttributeError:
            _warn_never_awaited(self)


_FOREIGN_RUNNER: Final = (
    "corosio_py operations must be awaited inside a corosio_py task: run the "
    "coroutine with corosio_py.run() or corosio_py.spawn(), not with asyncio "
    "or another event loop"
)


def _warn_never_awaited(op: Operation) -> None:
    """The ``RuntimeWarning`` of an operation that was created, never awaited."""
    try:
        warnings.warn(
            f"corosio_py operation {type(op).__name__} was never awaited",
            RuntimeWarning,
            stacklevel=3,  # past __del__: where the operation was dropped
        )
    except (AttributeError, TypeError):
        pass  # interpreter shutdown: the warnings machinery is gone
