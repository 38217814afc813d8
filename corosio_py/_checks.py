"""InvariantChecks: the threaded scheduler's ``COROSIO_DEBUG=1`` checks.

Kept apart from the scheduling code they watch: they run only in debug
mode, under the scheduler lock, and read the fields documented in
:mod:`corosio_py._threaded`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from ._scheduler import REACTOR_SENTINEL, Handler, InvariantError

if TYPE_CHECKING:
    from ._scheduler import Frame

__all__ = ("InvariantChecks",)


class InvariantChecks:
    """The invariant checks; mixed into ``ThreadedScheduler``, whose
    ``__init__`` creates the fields declared here (all guarded by
    ``_lock``)."""

    _lock: threading.Lock
    _queue: deque[Handler]
    _frames: list[Frame]
    _outstanding: int
    _licensed: int
    _reactor_running: bool
    _reactor_owner: Frame | None

    def _visible_locked(self) -> int:
        """Handlers other threads can see or run: each holds a global unit."""
        queued = len(self._queue) - (0 if self._reactor_running else 1)
        return queued + sum(len(f.inbox) for f in self._frames)

    def _check_invariants_locked(self) -> None:
        """Raise :class:`InvariantError` at the first broken invariant: the
        count never negative and covering every visible handler, the
        reactor's owner still running, the licence count, one sentinel."""
        if self._outstanding < 0:
            raise InvariantError(f"outstanding work count is {self._outstanding}")
        visible = self._visible_locked()
        if self._outstanding < visible:
            raise InvariantError(f"{visible} handlers visible but outstanding={self._outstanding}")
        if self._reactor_running and self._reactor_owner not in self._frames:
            raise InvariantError(
                "a reactor pass is marked running but the thread that owns the "
                "sentinel has left run*"
            )
        if self._licensed != sum(1 for f in self._frames if f.licensed):
            raise InvariantError(f"licensed count {self._licensed} disagrees with the frames")
        if len(self._queue) > 4096:
            return  # the sentinel scan is O(n): skip it on long queues
        sentinels = self._queue.count(REACTOR_SENTINEL)
        if sentinels + int(self._reactor_running) != 1:
            raise InvariantError(
                f"reactor sentinel: {sentinels} queued, pass running={self._reactor_running}"
            )
