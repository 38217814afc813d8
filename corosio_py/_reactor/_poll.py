"""The poll(2) reactor: the level-triggered fallback without an fd limit.

Facts about poll
----------------
* ``select.poll`` objects keep their own fd -> events table and rebuild the
  kernel array only when it changed, so the reactor keeps one object and
  applies the difference between consecutive passes.
* ``POLLHUP``, ``POLLERR`` and ``POLLNVAL`` are always reported; ``POLLNVAL``
  means the fd was closed (after the interest snapshot was taken).
* The timeout is in milliseconds; the reactor rounds up, never down, so a
  sub-millisecond remainder does not turn into a busy loop.

What this means for corosio_py
------------------------------
* Everything but the OS call lives in :mod:`._level` and
  :class:`~._base.ReactorBase`.
* Known limit: every pass asks every registered target what it wants and
  hands the kernel every watched fd (see :mod:`._level`), so a pass costs
  time in the number of connections, not the number that are ready.
* Hang-up maps to READ | WRITE and error to ERROR | READ | WRITE, so parked
  operations retry and see EOF or the error; ``POLLNVAL`` is ignored (the fd
  is gone from the next snapshot because it was deregistered before close).
"""

from __future__ import annotations

import math
import select
from typing import ClassVar, Final, final

from ._bits import ERROR, HANGUP, READ, WRITE, BitTable
from ._level import LevelTriggeredReactor

#: What to ask poll for, per direction wanted.
_REQUEST: Final = BitTable(((READ, select.POLLIN), (WRITE, select.POLLOUT)))

#: How each poll bit translates (POLLNVAL deliberately absent: it maps to
#: nothing, and the harvest drops an event with no bits).
_RESULT: Final = BitTable(
    (
        (select.POLLIN, READ),
        (select.POLLPRI, READ),
        (select.POLLOUT, WRITE),
        (select.POLLERR, ERROR | READ | WRITE),
        (select.POLLHUP, HANGUP | READ | WRITE),
    )
)


@final
class PollReactor(LevelTriggeredReactor):
    """A level-triggered reactor built on ``select.poll``.

    Thread safety: as :class:`LevelTriggeredReactor`; the poll object is
    touched only by the thread in :meth:`wait`.
    """

    name: ClassVar[str] = "poll"
    result_bits: ClassVar[BitTable] = _RESULT

    def __init__(self) -> None:
        """Create the self-pipe and the poll object."""
        super().__init__()
        self._poller = select.poll()
        self._polled: dict[int, int] = {}  # reactor thread only: fd -> mask

    def _os_wait(self, watch: dict[int, int], timeout: float | None) -> list[tuple[int, int]]:
        wanted = {fd: _REQUEST[bits] for fd, bits in watch.items()}
        for fd in self._polled.keys() - wanted.keys():
            self._poller.unregister(fd)
        for fd, mask in wanted.items():
            if self._polled.get(fd) != mask:
                self._poller.register(fd, mask)
        self._polled = wanted
        ms = None if timeout is None else math.ceil(timeout * 1000)
        return self._poller.poll(ms)
