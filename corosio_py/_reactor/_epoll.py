"""The epoll reactor (Linux).

Facts about epoll
-----------------
* Registration is per open file description, keyed by fd number; closing the
  last reference to a file removes it from the set automatically, so an fd
  closed without ``deregister`` does not keep reporting.
* ``EPOLLET`` reports a transition once.  Adding an fd that is already
  readable or writable reports that state once, straight away.
* ``epoll.poll`` gives back ``(fd, mask)`` pairs only: there is no user data
  pointer in CPython, so the reactor keeps its own ``fd -> target`` map
  (:class:`~._base.ReactorBase`).
* ``EPOLLERR`` and ``EPOLLHUP`` are always reported, whether asked for or not.

What this means for corosio_py
------------------------------
* Every descriptor is registered once, edge-triggered, for reads; the
  first write that would block adds writes (``watch_writes``), and they
  stay.  ``interest_changed`` has nothing to do.
* The interrupt is an eventfd registered ``EPOLLIN | EPOLLET``
  (:class:`~._wake.EventFdWaker`; upstream does the same in
  ``src/corosio/src/detail/epoll/scheduler.cpp``).  An unread eventfd stays
  readable, so an interrupt issued before the waiting thread enters
  ``epoll_wait`` still ends that wait.
* The epoll registration happens under the map lock, in the same critical
  section that adds the target, so the edge that epoll reports at
  registration time is never dropped for want of a map entry.
"""

from __future__ import annotations

import select
import sys
from typing import ClassVar, Final, final

from ._base import ReactorBase, ReadinessTarget, os_wait_timeout
from ._bits import ERROR, HANGUP, READ, WRITE, BitTable

# Linux only (see has_epoll, the probe that guards every import of this
# module).  The assert also tells mypy to skip the rest of this file when it
# checks for another platform, where ``select`` has no epoll names.
assert sys.platform == "linux", "the epoll backend needs Linux"

from ._wake import EventFdWaker  # noqa: E402 -- Linux only, like the assert

#: What every descriptor is registered for (reads, edge-triggered, plus
#: RDHUP to hear of a half-close); writes are added by ``watch_writes``.
_REGISTER_MASK: Final = (
    select.EPOLLIN | select.EPOLLET | select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP
)
#: The mask once a write has blocked.
_WRITES_MASK: Final = _REGISTER_MASK | select.EPOLLOUT

#: How each epoll bit translates; hang-ups and errors wake both directions so
#: parked operations retry their system call and see EOF or the error.
_BITS: Final = BitTable(
    (
        (select.EPOLLIN, READ),
        (select.EPOLLOUT, WRITE),
        (select.EPOLLERR, ERROR | READ | WRITE),
        (select.EPOLLHUP, HANGUP | READ | WRITE),
        (select.EPOLLRDHUP, HANGUP | READ | WRITE),
    )
)

#: Events harvested per pass (upstream ``max_events_per_poll``).
_MAX_EVENTS: Final = 128


@final
class EpollReactor(ReactorBase):
    """An edge-triggered epoll reactor woken by an eventfd.

    Thread safety: as :class:`~._base.ReactorBase`.
    """

    name: ClassVar[str] = "epoll"
    edge_triggered: ClassVar[bool] = True

    def __init__(self) -> None:
        """Create the epoll set and its eventfd.

        :raises OSError: when the OS refuses either object (nothing leaks).
        """
        self._epoll = select.epoll()
        try:
            waker = EventFdWaker()
            try:
                self._epoll.register(waker.fd, select.EPOLLIN | select.EPOLLET)
            except BaseException:
                waker.close()
                raise
        except BaseException:
            self._epoll.close()
            raise
        super().__init__(waker)

    def _watch(self, fd: int) -> None:
        # EBADF, EEXIST, or EPERM for a regular file: raised to register().
        self._epoll.register(fd, _REGISTER_MASK)

    def watch_writes(self, fd: int) -> None:
        """Add ``EPOLLOUT`` (see :meth:`ReactorBase.watch_writes`); a modify
        reports a writable fd at once."""
        self._epoll.modify(fd, _WRITES_MASK)

    def _unwatch(self, fd: int) -> bool:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # closed already: the kernel dropped it
        return False

    def _release(self) -> None:
        self._epoll.close()

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """Run one epoll pass (see :meth:`Reactor.wait`); ``ValueError`` once closed."""
        clamped = os_wait_timeout(timeout)
        try:
            events = self._epoll.poll(-1.0 if clamped is None else clamped, _MAX_EVENTS)
        except InterruptedError:
            return []
        return self._lookup(events, _BITS)
