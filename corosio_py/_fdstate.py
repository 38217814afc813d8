"""LockedFd: what the per-fd state objects share (an fd guarded by a lock).

A socket's :class:`~corosio_py._descriptor.Descriptor` and a file's
:class:`~corosio_py._fileio.OpenFile` both keep their fd in ``fd`` (-1 once
closed) and change it only under ``lock``, so that no system call runs on a
number a concurrent ``close()`` has released.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._errors import Cancelled

if TYPE_CHECKING:
    from ._scheduler import Scheduler

__all__ = ("LockedFd",)


class LockedFd:
    """The fd queries, and the cancelled completions, of an object whose
    ``fd`` is guarded by ``lock``."""

    __slots__ = ()

    lock: threading.Lock
    fd: int
    sched: Scheduler

    @property
    def is_open(self) -> bool:
        """Whether the fd is still open (may change right after it returns)."""
        with self.lock:
            return self.fd >= 0

    def fileno(self) -> int:
        """The fd, or -1 once closed."""
        with self.lock:
            return self.fd

    def _post_cancelled(self, claimed: Iterable[Any]) -> None:
        """Complete each claimed operation (taken out under ``lock``, which
        is released now) with ``Cancelled``."""
        post = self.sched.post_counted
        for op in claimed:
            task = op.task
            assert task is not None
            post(task.wakeup(None, Cancelled()))
