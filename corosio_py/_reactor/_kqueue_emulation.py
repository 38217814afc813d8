"""An epoll-backed stand-in for the part of ``select.kqueue`` we use.

CPython has no ``select.kqueue`` on Linux, so without this module the
kqueue reactor's own code would run only on macOS/BSD CI.  This is not a
general kqueue: it implements exactly what ``_kqueue.py`` relies on.

Facts about kqueue (the behaviour emulated)
-------------------------------------------
* A registration is keyed by ``(ident, filter)``.  ``EV_ADD | EV_CLEAR`` on
  ``EVFILT_READ``/``EVFILT_WRITE`` is edge-triggered; ``EV_DELETE`` of a
  registration that does not exist fails with ``ENOENT``; ``EV_ADD`` on a bad
  fd fails with ``EBADF``.
* Readiness comes back as one event per filter: READ with ``data`` = bytes
  readable and ``EV_EOF`` once the peer shut down; WRITE with ``EV_EOF`` and
  ``fflags`` = the socket error once the socket can no longer send.
* ``EVFILT_USER`` events are triggered by a change with ``NOTE_TRIGGER`` in
  ``fflags``; with ``EV_CLEAR`` they are reported once per trigger.
* Change errors raise when ``max_events`` is 0, and are reported as
  ``EV_ERROR`` events (``data`` = errno) when there is room for them.

How it is done on Linux
-----------------------
* One epoll set.  Each fd has a mask of registered filters and one
  ``EPOLLET`` registration covering them (register, modify, unregister).
* Each user-event ident owns an eventfd registered ``EPOLLIN | EPOLLET``;
  triggering writes it, reporting reads it back.
* On ``EPOLLERR`` the WRITE event carries ``EV_EOF`` and a non-zero
  ``fflags``, but not the real socket error: on Linux ``SO_ERROR`` is
  read-and-clear, and taking it here would leave the code that handles the
  event (which reads ``SO_ERROR`` itself) with 0 instead of, say,
  ``ECONNREFUSED``.  :data:`PENDING_ERROR_FFLAGS` stands in for it; real
  kqueue reports the errno without clearing it.
* Only ``EV_CLEAR`` registrations are supported; anything else raises
  ``NotImplementedError`` rather than behave unlike kqueue.

Thread safety: :meth:`EmulatedKqueue.control` may apply changes from any
thread while another thread blocks in it for events; the maps are guarded by
a lock that is never held across the blocking ``epoll_wait``.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import select
import struct
import sys
import termios
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, final

# Linux only (see has_epoll, the probe that guards every import of this
# module).  The assert also tells mypy to skip the rest of this file when it
# checks for another platform, where ``select`` has no epoll names.
assert sys.platform == "linux", "the epoll-backed kqueue emulation needs Linux"

KQ_FILTER_READ: Final = -1
KQ_FILTER_WRITE: Final = -2
#: macOS's value; CPython does not export ``EVFILT_USER`` anywhere.
KQ_FILTER_USER: Final = -10

KQ_EV_ADD: Final = 0x0001
KQ_EV_DELETE: Final = 0x0002
KQ_EV_ENABLE: Final = 0x0004
KQ_EV_CLEAR: Final = 0x0020
KQ_EV_ERROR: Final = 0x4000
KQ_EV_EOF: Final = 0x8000

KQ_NOTE_TRIGGER: Final = 0x01000000

#: ``fflags`` of a WRITE event for a socket with a pending error (see above).
PENDING_ERROR_FFLAGS: Final = errno.EIO

#: Which epoll bits each socket filter needs.
_FILTER_EPOLL: Final = {
    KQ_FILTER_READ: select.EPOLLIN | select.EPOLLRDHUP,
    KQ_FILTER_WRITE: select.EPOLLOUT,
}
#: epoll bits that make a registered READ / WRITE filter fire.
_READ_FIRES: Final = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_WRITE_FIRES: Final = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_READ_EOF: Final = select.EPOLLHUP | select.EPOLLRDHUP
_WRITE_EOF: Final = select.EPOLLHUP | select.EPOLLERR


@dataclass(eq=False, slots=True)
class kevent:  # noqa: N801 -- mirrors select.kevent
    """One change or event, with the fields and defaults of ``select.kevent``."""

    ident: int
    filter: int = KQ_FILTER_READ
    flags: int = KQ_EV_ADD
    fflags: int = 0
    data: int = 0
    udata: int = 0


def _bytes_readable(fd: int) -> int:
    """``FIONREAD`` for ``fd``, or 0 when the fd does not support it."""
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    value: int = struct.unpack("i", raw)[0]
    return value


@final
class EmulatedKqueue:
    """The ``select.kqueue`` subset used by the kqueue reactor, over epoll.

    Thread safety: see the module docstring.
    """

    def __init__(self) -> None:
        """Create the underlying epoll set (close-on-exec)."""
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        # All guarded by _lock:
        self._filters: dict[tuple[int, int], int] = {}  # (fd, filter) -> udata
        self._fd_masks: dict[int, int] = {}  # fd -> epoll mask of its filters
        self._user_fds: dict[int, int] = {}  # user ident -> eventfd
        self._user_idents: dict[int, tuple[int, int]] = {}  # eventfd -> (ident, udata)
        self._backlog: collections.deque[kevent] = collections.deque()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._epoll.closed

    def fileno(self) -> int:
        """The epoll fd standing in for the kqueue fd.

        :raises ValueError: when closed.
        """
        return self._epoll.fileno()

    def close(self) -> None:
        """Close the epoll set and every user-event eventfd.  Idempotent."""
        with self._lock:
            if self._epoll.closed:
                return
            self._epoll.close()
            for efd in self._user_fds.values():
                os.close(efd)
            self._user_fds.clear()
            self._user_idents.clear()
            self._filters.clear()
            self._fd_masks.clear()

    def control(
        self,
        changelist: Iterable[kevent] | None,
        max_events: int,
        timeout: float | None = None,
    ) -> list[kevent]:
        """Apply ``changelist``, then wait up to ``timeout`` for events.

        :param max_events: at most this many events are returned; 0 applies
            the changes and returns at once.
        :param timeout: seconds; ``None`` blocks, 0 polls.
        :raises ValueError: for a negative ``max_events`` or ``timeout``, or
            when closed.
        :raises OSError: for a failed change when ``max_events`` is 0
            (``ENOENT``, ``EBADF``, ``EINVAL``).
        :raises NotImplementedError: for a change this emulation lacks.
        """
        if max_events < 0 or (timeout is not None and timeout < 0):
            raise ValueError("max_events and timeout must not be negative")
        if self._epoll.closed:
            raise ValueError("I/O operation on closed kqueue object")
        out: list[kevent] = []
        with self._lock:
            for change in changelist or ():
                try:
                    self._apply(change)
                except OSError as exc:
                    if len(out) >= max_events:
                        raise
                    out.append(kevent(change.ident, change.filter, KQ_EV_ERROR, 0, exc.errno or 0))
            while self._backlog and len(out) < max_events:
                out.append(self._backlog.popleft())
        if max_events == 0 or out:
            return out
        epoll_timeout = -1.0 if timeout is None else timeout
        harvested = self._epoll.poll(epoll_timeout, max_events)
        with self._lock:
            for fd, mask in harvested:
                self._backlog.extend(self._translate(fd, mask))
            while self._backlog and len(out) < max_events:
                out.append(self._backlog.popleft())
        return out

    # -- changes (called with _lock held) -------------------------------

    def _apply(self, change: kevent) -> None:
        flags = change.flags
        if change.filter == KQ_FILTER_USER:
            self._apply_user(change)
        elif change.filter not in _FILTER_EPOLL:
            raise OSError(errno.EINVAL, "unsupported kqueue filter")
        elif flags & KQ_EV_DELETE:
            self._delete_filter(change.ident, change.filter)
        elif flags & KQ_EV_ADD:
            if not flags & KQ_EV_CLEAR:
                raise NotImplementedError("only EV_CLEAR registrations are emulated")
            self._add_filter(change.ident, change.filter, change.udata)
        else:
            raise NotImplementedError(f"kqueue flags {flags:#x} are not emulated")

    def _add_filter(self, fd: int, filt: int, udata: int) -> None:
        old = self._fd_masks.get(fd, 0)
        try:
            self._set_epoll_mask(fd, old, old | _FILTER_EPOLL[filt])
        except FileNotFoundError:
            # The fd was closed and its number reused since the last change:
            # epoll forgot the old registration, and so would kqueue.
            self._forget_fd(fd)
            self._set_epoll_mask(fd, 0, _FILTER_EPOLL[filt])
        self._filters[fd, filt] = udata

    def _delete_filter(self, fd: int, filt: int) -> None:
        if (fd, filt) not in self._filters:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        del self._filters[fd, filt]
        old = self._fd_masks.get(fd, 0)
        try:
            self._set_epoll_mask(fd, old, old & ~_FILTER_EPOLL[filt])
        except FileNotFoundError:
            self._forget_fd(fd)  # closed since: kqueue dropped it as well
            raise

    def _set_epoll_mask(self, fd: int, old: int, new: int) -> None:
        if new == 0:
            self._fd_masks.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # closed already: the kernel dropped it, as kqueue does
        elif old == 0:
            self._epoll.register(fd, new | select.EPOLLET)
        else:
            self._epoll.modify(fd, new | select.EPOLLET)
        if new:
            self._fd_masks[fd] = new

    def _forget_fd(self, fd: int) -> None:
        self._fd_masks.pop(fd, None)
        for filt in _FILTER_EPOLL:
            self._filters.pop((fd, filt), None)

    def _apply_user(self, change: kevent) -> None:
        ident, flags = change.ident, change.flags
        if flags & KQ_EV_DELETE:
            efd = self._user_fds.pop(ident, None)
            if efd is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            del self._user_idents[efd]
            self._epoll.unregister(efd)
            os.close(efd)
            return
        if flags & KQ_EV_ADD and ident not in self._user_fds:
            if not flags & KQ_EV_CLEAR:
                raise NotImplementedError("only EV_CLEAR user events are emulated")
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                self._epoll.register(efd, select.EPOLLIN | select.EPOLLET)
            except BaseException:
                os.close(efd)
                raise
            self._user_fds[ident] = efd
            self._user_idents[efd] = (ident, change.udata)
        if change.fflags & KQ_NOTE_TRIGGER:
            efd_or_none = self._user_fds.get(ident)
            if efd_or_none is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            try:
                os.eventfd_write(efd_or_none, 1)
            except BlockingIOError:
                pass  # counter saturated: still unread, so still pending

    # -- events (called with _lock held) --------------------------------

    def _translate(self, fd: int, mask: int) -> list[kevent]:
        user = self._user_idents.get(fd)
        if user is not None:
            try:
                os.eventfd_read(fd)
            except BlockingIOError:
                return []  # consumed by an earlier batch
            ident, udata = user
            return [kevent(ident, KQ_FILTER_USER, KQ_EV_CLEAR, 0, 0, udata)]
        events: list[kevent] = []
        read_udata = self._filters.get((fd, KQ_FILTER_READ))
        if read_udata is not None and mask & _READ_FIRES:
            flags = KQ_EV_CLEAR | (KQ_EV_EOF if mask & _READ_EOF else 0)
            events.append(kevent(fd, KQ_FILTER_READ, flags, 0, _bytes_readable(fd), read_udata))
        write_udata = self._filters.get((fd, KQ_FILTER_WRITE))
        if write_udata is not None and mask & _WRITE_FIRES:
            eof = bool(mask & _WRITE_EOF)
            flags = KQ_EV_CLEAR | (KQ_EV_EOF if eof else 0)
            fflags = PENDING_ERROR_FFLAGS if mask & select.EPOLLERR else 0
            events.append(kevent(fd, KQ_FILTER_WRITE, flags, fflags, 0, write_udata))
        return events
