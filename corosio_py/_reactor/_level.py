"""What poll and select share: an fd map, a self-pipe, an interest snapshot.

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
* Edge triggering is emulated: every pass asks
  each target ``wants_read()``/``wants_write()`` and watches only those
  directions; a target that wants neither is left out of the pass entirely,
  so a hung-up socket nobody waits on cannot make the reactor spin.  The
  targets are asked without any lock held: the map is copied under the lock
  first.
* A target whose interest grows calls ``interest_changed``, and ``register``
  does the same: both interrupt the reactor so that a blocked pass returns
  and the next one rebuilds its sets.
* The interrupt is a non-blocking close-on-exec pipe whose read end is always
  watched (2.7.1).  An armed flag (optional upstream) keeps a burst of
  interrupts to one byte; the reactor drains the pipe and then clears the
  flag, in one critical section.  Unread bytes keep the pipe readable, so the
  interrupt is sticky (2.7.3).
"""

from __future__ import annotations

import abc
import errno
import os
import sys
import threading
from typing import ClassVar, final

from ._base import READ, WRITE, ReadinessTarget, os_wait_timeout

#: Bytes read per ``os.read`` while draining the self-pipe.
_DRAIN_CHUNK = 4096


#: The watch set when no pass is in progress.
_NOTHING: dict[int, int] = {}


@final
class SelfPipe:
    """A sticky, idempotent wake-up: a non-blocking pipe plus an armed flag.

    The owner watches :attr:`read_fd` for reading, calls :meth:`signal` to
    wake itself and :meth:`consume` once it saw the read end readable.

    Thread safety: every method may be called from any thread; :meth:`signal`
    after :meth:`close` is a no-op.
    """

    def __init__(self) -> None:
        """Create the pipe (both ends close-on-exec and non-blocking).

        :raises OSError: when the OS refuses the pipe (nothing leaks).
        """
        # os.pipe() fds are non-inheritable (close-on-exec) since PEP 446.
        self.read_fd, self._write_fd = os.pipe()
        try:
            os.set_blocking(self.read_fd, False)
            os.set_blocking(self._write_fd, False)
        except BaseException:
            os.close(self.read_fd)
            os.close(self._write_fd)
            raise
        self._lock = threading.Lock()
        self._armed = False  # guarded by _lock
        self._closed = False  # guarded by _lock

    def signal(self) -> None:
        """Make the read end readable unless a wake-up is already pending.

        :raises OSError: when the write fails for a reason other than a full
            pipe; the armed flag is reset first.
        """
        with self._lock:
            if self._armed or self._closed:
                return
            self._armed = True
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:
                pass  # pipe full: unread bytes already make it readable
            except BaseException:
                self._armed = False
                raise

    def consume(self) -> None:
        """Drain the pipe and disarm, so the next :meth:`signal` writes."""
        # Drain before disarming, in one critical section: disarming first
        # would let a signal write a byte that this drain then swallows.
        with self._lock:
            if self._closed:
                return
            try:
                while os.read(self.read_fd, _DRAIN_CHUNK):
                    pass
            except BlockingIOError:
                pass
            self._armed = False

    def close(self) -> None:
        """Close both ends.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.read_fd)
            os.close(self._write_fd)


class LevelTriggeredReactor(abc.ABC):
    """The shared body of the poll and select reactors.

    A subclass provides :attr:`name`, the :attr:`fd_limit` trait and
    :meth:`_os_wait`, the one OS call of a pass.

    Thread safety: :meth:`wait` is called by one thread at a time; every
    other method may be called from any thread.  :meth:`close` must not race
    a :meth:`wait` in progress.
    """

    name: ClassVar[str]
    edge_triggered: ClassVar[bool] = False
    #: First fd number the OS call cannot watch (select: ``FD_SETSIZE``).
    fd_limit: ClassVar[int] = sys.maxsize

    def __init__(self) -> None:
        """Create the self-pipe.

        :raises OSError: when the OS refuses the pipe; ``EINVAL`` when its
            read end is at or above :attr:`fd_limit` (the process already
            has too many fds open).
        """
        self._wake = SelfPipe()
        if self._wake.read_fd >= self.fd_limit:
            error = self._fd_limit_error(self._wake.read_fd)
            self._wake.close()
            raise error
        self._lock = threading.Lock()
        self._watching: dict[int, int] = _NOTHING  # fds of the pass in progress (lock)
        self._targets: dict[int, ReadinessTarget] = {}  # guarded by _lock
        self._closed = False  # guarded by _lock

    @abc.abstractmethod
    def _os_wait(self, watch: dict[int, int], timeout: float | None) -> list[tuple[int, int]]:
        """Make the OS call for one pass.

        :param watch: fd -> directions to watch (READ and/or WRITE, never 0).
        :param timeout: seconds, ``None`` to block, else within
            ``[0, MAX_OS_WAIT]`` (clamped by :meth:`wait`).
        :return: ``(fd, bits)`` for every fd with something to report, bits
            from READ/WRITE/ERROR; empty if the pass must simply be retried.
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
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.name} reactor is closed")
            self._targets[fd] = target
        self._wake.signal()

    def _fd_limit_error(self, fd: int) -> OSError:
        return OSError(
            errno.EINVAL,
            f"the {self.name} reactor cannot watch fd {fd}: fds must be below "
            f"{self.fd_limit} (FD_SETSIZE); use the poll backend for more",
        )

    def deregister(self, fd: int) -> None:
        """Stop watching ``fd`` from the next pass on; unknown fds are ignored.

        A pass in progress may still watch the fd; its events are dropped.
        """
        with self._lock:
            self._targets.pop(fd, None)
            watched = fd in self._watching
        if watched:
            # The pass in progress holds a reference to the open file: until
            # poll()/select() returns, closing the fd sends no FIN to the
            # peer.  Make it return now (epoll and kqueue drop a closed fd
            # by themselves).
            self._wake.signal()

    def interest_changed(self) -> None:
        """Interrupt the current pass so the next one asks the targets again."""
        self._wake.signal()

    def interrupt(self) -> None:
        """Make the current or next :meth:`wait` return; a no-op once closed.

        :raises OSError: when the pipe write fails (see :meth:`SelfPipe.signal`).
        """
        self._wake.signal()

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """Run one pass (see :meth:`Reactor.wait`).

        :param timeout: seconds; ``None`` blocks, negative counts as 0, long
            ones are clamped.
        :raises ValueError: when the reactor is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.name} reactor is closed")
            snapshot = list(self._targets.items())
        watch = {self._wake.read_fd: READ}
        for fd, target in snapshot:
            # Called without the lock: a target may take its own locks here.
            bits = (READ if target.wants_read() else 0) | (WRITE if target.wants_write() else 0)
            if bits:
                watch[fd] = bits
        with self._lock:
            self._watching = watch
            # A target deregistered while we asked the others is gone from
            # the map; its fd may already be closed (select() would fail
            # with EBADF): drop it from this pass.
            for fd in [fd for fd in watch if fd != self._wake.read_fd]:
                if fd not in self._targets:
                    del watch[fd]
        try:
            events = self._os_wait(watch, os_wait_timeout(timeout))
        except InterruptedError:
            return []
        finally:
            with self._lock:
                self._watching = _NOTHING
        ready: list[tuple[ReadinessTarget, int]] = []
        woken = False
        with self._lock:
            for fd, bits in events:
                if fd == self._wake.read_fd:
                    woken = True
                    continue
                current = self._targets.get(fd)
                if current is not None:
                    ready.append((current, bits))
        if woken:
            self._wake.consume()
        return ready

    def close(self) -> None:
        """Forget every target and close the self-pipe.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._targets.clear()
        self._wake.close()
