"""Roles: one direction of a TLS stream's wrapped socket, used by one party
at a time and handed over in FIFO order.

A :class:`~corosio_py._tls.TLSStream` has two: the *send* role (whoever holds
it is the only one writing ciphertext to the wrapped socket, so records leave
in the order they were made) and the *receive* role (the only one reading
from it).  A role is taken at once when it is free -- no suspension -- and
otherwise the task parks until the holder hands it over.  A wait is
cancellation-safe: a cancelled wait does not hold the role, and a role handed
over just before a cancel is delivered (the cancel lands at the task's next
suspension, and the holder releases the role in a ``finally``).

Every field is guarded by the owning stream's lock (``Role.lock``, shared by
both roles of a stream); completions are posted after it is released.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ._descriptor import closed_error
from ._errors import Cancelled
from ._ops import PENDING, Operation

if TYPE_CHECKING:
    from ._tasks import Task

__all__ = ("Role", "RoleWait")


class Role:
    """A mutex for tasks whose waits park (never block a thread).

    ``busy``, ``closed`` and ``waiters`` are guarded by ``lock`` (the
    stream's lock).
    """

    __slots__ = ("lock", "busy", "closed", "waiters")

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.busy = False  # (lock)
        self.closed = False  # the stream was closed: waits fail with EBADF (lock)
        self.waiters: deque[RoleWait] = deque()  # parked acquisitions, oldest first (lock)

    def try_take_locked(self) -> bool:
        """Take the role if it is free (``lock`` held)."""
        if self.busy:
            return False
        self.busy = True
        return True

    def release(self) -> None:
        """Give the role up: to the oldest waiter, else free it."""
        with self.lock:
            waiter = self.release_locked()
        if waiter is not None:
            waiter.granted()

    def release_locked(self) -> RoleWait | None:
        """Give the role up (``lock`` held); the caller completes the
        returned waiter, if any, with :meth:`RoleWait.granted` after
        releasing the lock."""
        if self.waiters:
            return self.waiters.popleft()  # stays busy: handed over
        self.busy = False
        return None

    def claim_waiters_locked(self) -> list[RoleWait]:
        """Take every parked wait out (``lock`` held), for ``cancel``/``close``."""
        waiters = list(self.waiters)
        self.waiters.clear()
        return waiters


class RoleWait(Operation):
    """``await`` a role: ``None`` once it is held.

    Created already awaited (the stream awaits it itself).  Its ``__init__``
    and ``cancel`` have the shape of every operation's (``_io_ops`` says
    why the initialisers are written out); the claim is its own.
    """

    __slots__ = ("role", "task")

    def __init__(self, role: Role, stop_token: Any = None) -> None:
        self.stop_token = stop_token
        self._awaited = True
        self.role = role
        self.task: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        role = self.role
        # Counted before the wait becomes visible, as a parked I/O op is
        # (callers take a free role inline, without this operation).
        sched = task._sched
        sched.work_started()
        with role.lock:
            if role.closed:
                error: OSError | None = closed_error()
            elif role.try_take_locked():
                error = None
            else:
                self.task = task
                role.waiters.append(self)
                return PENDING
        sched.work_finished()
        if error is not None:
            raise error
        return None

    def granted(self) -> None:
        """The role was handed to this wait (already taken out of the queue)."""
        task = self.task
        assert task is not None
        task._sched.post_counted(task.wakeup(None, None))

    def fail(self, error: BaseException) -> None:
        """Complete the wait with ``error`` (already taken out of the queue)."""
        task = self.task
        assert task is not None
        task._sched.post_counted(task.wakeup(None, error))

    def cancel(self, task: Task[Any]) -> bool:
        role = self.role
        with role.lock:
            if self.task is not task or self not in role.waiters:
                return False  # not parked, or already handed the role
            role.waiters.remove(self)
        self.fail(Cancelled())
        return True
