"""What poll and select share: an interest snapshot asked of every target.

Facts about level-triggered readiness APIs
------------------------------------------
* ``poll(2)`` and ``select(2)`` are stateless: every call passes the whole
  interest set, and a condition is reported for as long as it holds.
* Watching a socket with unread data (or at EOF) for reading, or any
  connected socket for writing, makes every call return at once.
* ``POLLERR``/``POLLHUP`` are reported for every fd in the set, even one
  registered with no events.

What this means for corosio_py
------------------------------
* Edge triggering is emulated: every pass asks each target
  ``wants_read()``/``wants_write()`` and watches only those directions; a
  target that wants neither is left out of the pass entirely, so a hung-up
  socket nobody waits on cannot make the reactor spin.  A target that wants
  neither but ``wants_error()`` (an error wait: watching it for reading
  would spin on unread data) is watched for errors only: poll asks for no
  events and still hears of POLLERR/POLLHUP; select cannot see a socket
  error except as readability, so it reports such a target every
  ``ERROR_POLL_INTERVAL`` for the waiting operation to probe.  The targets are
  asked without any lock held: the map is copied under the lock first.
* Known limit: a pass costs time in the number of registered targets, busy
  or not (every one is asked, and the OS scans every watched fd).  epoll and
  kqueue cost time in the number of ready fds only.
* A target whose interest grows calls ``interest_changed``, and ``register``
  does the same: both interrupt the reactor so that a blocked pass returns
  and the next one rebuilds its sets.
* The interrupt is a self-pipe (:class:`~._wake.PipeWaker`) whose read end
  is always watched.
"""

from __future__ import annotations

import abc
import errno
import sys
from collections.abc import Iterable, Mapping
from typing import ClassVar

from ._base import ReactorBase, ReadinessTarget, os_wait_timeout
from ._bits import ERROR, READ, WRITE
from ._wake import PipeWaker

#: The watch set when no pass is in progress.
_NOTHING: dict[int, int] = {}


class LevelTriggeredReactor(ReactorBase):
    """The shared body of the poll and select reactors.

    A subclass provides :attr:`name`, :attr:`result_bits`, optionally the
    :attr:`fd_limit` trait, and :meth:`_os_wait`, the one OS call of a pass.

    Thread safety: as :class:`~._base.ReactorBase`.
    """

    edge_triggered: ClassVar[bool] = False
    #: First fd number the OS call cannot watch (select: ``FD_SETSIZE``).
    fd_limit: ClassVar[int] = sys.maxsize
    #: Translates the masks :meth:`_os_wait` returns into READ/WRITE/ERROR.
    result_bits: ClassVar[Mapping[int, int]]

    def __init__(self) -> None:
        """Create the self-pipe.

        :raises OSError: when the OS refuses the pipe; ``EINVAL`` when its
            read end is at or above :attr:`fd_limit` (the process already
            has too many fds open).
        """
        waker = PipeWaker()
        if waker.fd >= self.fd_limit:
            error = self._fd_limit_error(waker.fd)
            waker.close()
            raise error
        super().__init__(waker)
        self._watching: dict[int, int] = _NOTHING  # fds of the pass in progress (_lock)

    @abc.abstractmethod
    def _os_wait(self, watch: dict[int, int], timeout: float | None) -> Iterable[tuple[int, int]]:
        """Make the OS call for one pass.

        :param watch: fd -> directions to watch (READ and/or WRITE, never 0).
        :param timeout: seconds, ``None`` to block, else within
            ``[0, MAX_OS_WAIT]`` (clamped by :meth:`wait`).
        :return: ``(fd, mask)`` pairs, the masks translated by
            :attr:`result_bits`; empty if the pass must simply be retried.
        :raises InterruptedError: on ``EINTR``.
        """

    def register(self, fd: int, target: ReadinessTarget) -> None:
        """Watch ``fd`` for ``target`` from the next pass on.

        Interrupts the reactor so that a blocked pass rebuilds its sets.

        :raises OSError: ``EINVAL`` when ``fd`` is at least :attr:`fd_limit`
            (an I/O error of that one socket, like any the OS reports: a
            server's accept loop backs off and carries on).
        :raises ValueError: when ``fd`` is negative or the reactor is closed.
        """
        if fd >= self.fd_limit:
            raise self._fd_limit_error(fd)
        if fd < 0:
            raise ValueError(f"{self.name} reactor cannot watch fd {fd}")
        super().register(fd, target)
        self._waker.signal()

    def _fd_limit_error(self, fd: int) -> OSError:
        return OSError(
            errno.EINVAL,
            f"the {self.name} reactor cannot watch fd {fd}: fds must be below "
            f"{self.fd_limit} (FD_SETSIZE); use the poll backend for more",
        )

    def _unwatch(self, fd: int) -> bool:
        # The pass in progress holds a reference to the open file: until
        # poll()/select() returns, closing the fd sends no FIN to the peer.
        # Make it return now (epoll and kqueue drop a closed fd by themselves).
        return fd in self._watching

    def interest_changed(self) -> None:
        """Interrupt the current pass so the next one asks the targets again."""
        self._waker.signal()

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """Run one pass (see :meth:`Reactor.wait`); ``ValueError`` once closed."""
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.name} reactor is closed")
            snapshot = list(self._targets.items())
        wake_fd = self._waker.fd
        watch = {wake_fd: READ}
        for fd, target in snapshot:
            # Called without the lock: a target may take its own locks here.
            bits = (READ if target.wants_read() else 0) | (WRITE if target.wants_write() else 0)
            if not bits and target.wants_error():
                bits = ERROR
            if bits:
                watch[fd] = bits
        with self._lock:
            self._watching = watch
            # A target deregistered while we asked the others is gone from
            # the map; its fd may already be closed (select() would fail
            # with EBADF): drop it from this pass.
            for fd in [fd for fd in watch if fd != wake_fd and fd not in self._targets]:
                del watch[fd]
        try:
            events = self._os_wait(watch, os_wait_timeout(timeout))
        except InterruptedError:
            return []
        finally:
            with self._lock:
                self._watching = _NOTHING
        return self._lookup(events, self.result_bits)
