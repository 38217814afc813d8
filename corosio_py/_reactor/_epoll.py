"""The epoll reactor (Linux).

Facts about epoll
-----------------
* Registration is per open file description, keyed by fd number; closing the
  last reference to a file removes it from the set automatically, so an fd
  closed without ``deregister`` does not keep reporting.
* ``EPOLLET`` reports a transition once.  Adding an fd that is already
  readable or writable reports that state once, straight away.
* ``epoll.poll`` gives back ``(fd, mask)`` pairs only: there is no user data
  pointer in CPython, so the reactor keeps its own ``fd -> target`` map.
* ``EPOLLERR`` and ``EPOLLHUP`` are always reported, whether asked for or not.

What this means for corosio_py
------------------------------
* Every descriptor is registered once, for both directions, edge-triggered;
  ``interest_changed`` has nothing to do.
* The interrupt is an eventfd registered ``EPOLLIN | EPOLLET`` (2.7.1).  An
  "armed" flag lets only one thread write it until the reactor has read it
  back (2.7.2).  An unread eventfd stays readable, so an interrupt issued
  before the waiting thread enters ``epoll_wait`` still ends that wait (2.7.3).
* A target is added to the map in the same critical section as the epoll
  registration, and harvested events are looked up under that lock, so the
  edge that epoll reports at registration time is never dropped for want of
  a map entry.  An event for an fd that has left the map is dropped; an event
  harvested just before an fd number was reused may reach the new target,
  which is harmless because readiness is only a hint (3.3.6).
"""

from __future__ import annotations

import functools
import os
import select
import sys
import threading
from typing import ClassVar, Final, final

from ._base import ERROR, HANGUP, READ, WRITE, ReadinessTarget, os_wait_timeout

# Linux only (see has_epoll, the probe that guards every import of this
# module).  The assert also tells mypy to skip the rest of this file when it
# checks for another platform, where ``select`` has no epoll names.
assert sys.platform == "linux", "the epoll backend needs Linux"

#: What every descriptor is registered for (3.3.2, plus RDHUP for half-close).
_REGISTER_MASK: Final = (
    select.EPOLLIN
    | select.EPOLLOUT
    | select.EPOLLET
    | select.EPOLLERR
    | select.EPOLLHUP
    | select.EPOLLRDHUP
)

#: How each epoll bit translates; hang-ups and errors wake both directions so
#: parked operations retry their system call and see EOF or the error (3.3.3).
_BIT_MAP: Final = (
    (select.EPOLLIN, READ),
    (select.EPOLLOUT, WRITE),
    (select.EPOLLERR, ERROR | READ | WRITE),
    (select.EPOLLHUP, HANGUP | READ | WRITE),
    (select.EPOLLRDHUP, HANGUP | READ | WRITE),
)

#: Events harvested per pass (upstream ``max_events_per_poll``).
_MAX_EVENTS: Final = 128


@functools.cache
def _to_bits(mask: int) -> int:
    """Translate an epoll event mask into READ/WRITE/ERROR bits."""
    bits = 0
    for epoll_bit, ours in _BIT_MAP:
        if mask & epoll_bit:
            bits |= ours
    return bits


@final
class EpollReactor:
    """An edge-triggered epoll reactor woken by an eventfd.

    Thread safety: :meth:`wait` is called by one thread at a time (the
    scheduler's reactor sentinel holder); every other method may be called
    from any thread.  :meth:`close` must not race a :meth:`wait` in progress.
    """

    name: ClassVar[str] = "epoll"
    edge_triggered: ClassVar[bool] = True

    def __init__(self) -> None:
        """Create the epoll set and its eventfd.

        :raises OSError: when the OS refuses either object (nothing leaks).
        """
        self._epoll = select.epoll()
        try:
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                self._epoll.register(self._wake_fd, select.EPOLLIN | select.EPOLLET)
            except BaseException:
                os.close(self._wake_fd)
                raise
        except BaseException:
            self._epoll.close()
            raise
        self._map_lock = threading.Lock()
        self._targets: dict[int, ReadinessTarget] = {}  # guarded by _map_lock
        self._wake_lock = threading.Lock()
        self._armed = False  # guarded by _wake_lock
        self._closed = False  # guarded by both locks (written under both)

    def register(self, fd: int, target: ReadinessTarget) -> None:
        """Watch ``fd`` for both directions, edge-triggered, for ``target``.

        :raises OSError: when epoll refuses the fd (``EBADF``, ``EEXIST``,
            ``EPERM`` for a regular file).
        :raises ValueError: when the reactor is closed.
        """
        with self._map_lock:
            self._epoll.register(fd, _REGISTER_MASK)
            self._targets[fd] = target

    def deregister(self, fd: int) -> None:
        """Stop watching ``fd``; errors (already closed, unknown) are ignored."""
        with self._map_lock:
            self._targets.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def interest_changed(self) -> None:
        """Do nothing: epoll watches both directions all the time."""

    def interrupt(self) -> None:
        """Make the current or next :meth:`wait` return; a no-op once closed.

        :raises OSError: when the eventfd write fails for a reason other
            than a full counter; the armed flag is reset first.
        """
        with self._wake_lock:
            if self._armed or self._closed:
                return
            self._armed = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except BlockingIOError:
                pass  # counter saturated: it is unread, so a wake is pending
            except BaseException:
                self._armed = False
                raise

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """Run one epoll pass (see :meth:`Reactor.wait`).

        :param timeout: seconds; ``None`` blocks, negative counts as 0, long
            ones are clamped.
        :raises ValueError: when the reactor is closed.
        """
        clamped = os_wait_timeout(timeout)
        os_timeout = -1.0 if clamped is None else clamped
        try:
            events = self._epoll.poll(os_timeout, _MAX_EVENTS)
        except InterruptedError:
            return []
        ready: list[tuple[ReadinessTarget, int]] = []
        woken = False
        with self._map_lock:
            for fd, mask in events:
                if fd == self._wake_fd:
                    woken = True
                    continue
                target = self._targets.get(fd)
                if target is not None:
                    ready.append((target, _to_bits(mask)))
        if woken:
            self._consume_interrupt()
        return ready

    def _consume_interrupt(self) -> None:
        # Read before clearing the flag, in one critical section: clearing
        # first would let an interrupt write the counter that this read then
        # swallows, leaving the flag set with no wake-up pending.
        with self._wake_lock:
            try:
                os.eventfd_read(self._wake_fd)
            except BlockingIOError:
                pass
            self._armed = False

    def close(self) -> None:
        """Close the epoll set and the eventfd.  Idempotent."""
        with self._wake_lock, self._map_lock:
            if self._closed:
                return
            self._closed = True
            self._targets.clear()
            self._epoll.close()
            os.close(self._wake_fd)
