"""The kqueue reactor (macOS, BSD; emulated over epoll on Linux).

Facts about kqueue
------------------
* Registrations are keyed by ``(ident, filter)``; read and write readiness
  are separate filters, so one socket can produce two events per batch.
* ``EV_CLEAR`` makes a filter edge-triggered.  Closing an fd removes its
  filters.  CPython's ``kevent.udata`` is an integer, not an object.
* ``EV_EOF`` marks a shut-down direction; on a socket its ``fflags`` carry
  the socket error (that is how a refused non-blocking connect shows up: a
  WRITE event with ``EV_EOF`` and ``fflags`` = ``ECONNREFUSED``).
* CPython does not export ``EVFILT_USER`` or ``NOTE_TRIGGER`` (CPython issue
  69788); the raw filter value differs per platform.

What this means for corosio_py
------------------------------
* Each descriptor gets a READ filter with ``EV_ADD | EV_CLEAR``, added
  under the map lock of :class:`~._base.ReactorBase`, and a WRITE filter
  the first time a write blocks (``watch_writes``); the two events of one
  fd in a batch collapse into one ``(target, bits)`` pair.
* The interrupt is a user event, ident 0, triggered with ``NOTE_TRIGGER``
  (:class:`~._wake.UserEventWaker`, as in upstream's
  ``src/corosio/src/detail/kqueue/scheduler.cpp``).  Where its filter value
  is unknown (NetBSD, OpenBSD) or the kernel refuses it, a self-pipe watched
  for READ takes its place (:class:`~._wake.PipeWaker`); upstream has no
  such fallback and fails instead.
* :func:`default_api` is the one place that picks ``select.kqueue`` or, where
  it is missing, the epoll-backed :mod:`._kqueue_emulation`, so the tests
  exercise this module on Linux too.  The emulation is imported only then:
  it reads ``select.EPOLL*`` at import, which macOS and the BSDs lack.
  Known limit: the emulation is for tests.  It is slower than epoll (an
  extra translation layer and lock per call) and models only what this
  module uses, so on Linux the kqueue backend is available but never the
  default.
"""

from __future__ import annotations

import errno
import os
import select
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Protocol, final

from ._base import ReactorBase, ReadinessTarget, has_epoll, os_wait_timeout
from ._bits import ERROR, HANGUP, READ, SAME, WRITE, BitTable
from ._wake import PipeWaker, UserEventWaker, Waker

#: Raw ``EVFILT_USER`` per ``sys.platform`` prefix (absent: use a self-pipe).
_EVFILT_USER_BY_PLATFORM: Final = (("darwin", -10), ("freebsd", -11))
#: ``NOTE_TRIGGER`` has the same value on every platform with EVFILT_USER.
_NOTE_TRIGGER: Final = 0x01000000
#: Events harvested per pass (upstream ``max_events_per_poll``).
_MAX_EVENTS: Final = 128
#: The ident of the interrupt user event.
_WAKE_IDENT: Final = 0


class KeventLike(Protocol):
    """The fields of ``select.kevent`` the reactor reads."""

    @property
    def ident(self) -> int: ...
    @property
    def filter(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def fflags(self) -> int: ...


class KqueueLike(Protocol):
    """The methods of ``select.kqueue`` the reactor calls."""

    def control(
        self, changelist: Iterable[Any] | None, max_events: int, timeout: float | None = ...
    ) -> list[Any]:
        """Apply changes, then wait for up to ``max_events`` events."""
        ...

    def fileno(self) -> int:
        """The kqueue fd."""
        ...

    def close(self) -> None:
        """Close the kqueue."""
        ...


@dataclass(frozen=True, slots=True)
class KqueueAPI:
    """The kqueue implementation and constants the reactor is written against."""

    kqueue: Callable[[], KqueueLike]
    kevent: Callable[..., Any]
    filter_read: int
    filter_write: int
    #: ``None`` where the platform's ``EVFILT_USER`` value is unknown.
    filter_user: int | None
    ev_add: int
    ev_delete: int
    ev_clear: int
    ev_eof: int
    ev_error: int
    note_trigger: int
    emulated: bool


def _native_user_filter() -> int | None:
    for prefix, value in _EVFILT_USER_BY_PLATFORM:
        if sys.platform.startswith(prefix):
            return value
    return None


def default_api() -> KqueueAPI:
    """Pick ``select.kqueue`` where it exists, else the epoll emulation.

    :raises OSError: ``ENOSYS`` when there is neither (no kqueue, not Linux).
    """
    if hasattr(select, "kqueue"):
        native: Any = select  # typeshed hides the kqueue names on Linux
        return _api_of(native, native.kqueue, _native_user_filter(), _NOTE_TRIGGER, emulated=False)
    return _emulated_api()


def _emulated_api() -> KqueueAPI:
    # The explicit platform check lets mypy skip this body for --platform
    # darwin/freebsd, where the emulation module is empty to it.
    if sys.platform == "linux" and has_epoll():
        from . import _kqueue_emulation as emu

        kqueue = emu.EmulatedKqueue
        return _api_of(emu, kqueue, emu.KQ_FILTER_USER, emu.KQ_NOTE_TRIGGER, emulated=True)
    raise OSError(errno.ENOSYS, "no select.kqueue, and no epoll to emulate it over")


def _api_of(
    names: Any,
    kqueue: Callable[[], KqueueLike],
    filter_user: int | None,
    note_trigger: int,
    *,
    emulated: bool,
) -> KqueueAPI:
    """The API from a namespace with ``select``'s ``kevent`` and ``KQ_*`` names."""
    return KqueueAPI(
        kqueue=kqueue,
        kevent=names.kevent,
        filter_read=names.KQ_FILTER_READ,
        filter_write=names.KQ_FILTER_WRITE,
        filter_user=filter_user,
        ev_add=names.KQ_EV_ADD,
        ev_delete=names.KQ_EV_DELETE,
        ev_clear=names.KQ_EV_CLEAR,
        ev_eof=names.KQ_EV_EOF,
        ev_error=names.KQ_EV_ERROR,
        note_trigger=note_trigger,
        emulated=emulated,
    )


def without_user_events(api: KqueueAPI) -> KqueueAPI:
    """``api`` as on a platform with no known ``EVFILT_USER`` (for tests)."""
    return replace(api, filter_user=None)


def _make_waker(kq: KqueueLike, api: KqueueAPI) -> tuple[Waker, tuple[int, int]]:
    """The interrupt source and the ``(ident, filter)`` it is reported as."""
    flags = api.ev_add | api.ev_clear
    if api.filter_user is not None:
        try:
            kq.control([api.kevent(_WAKE_IDENT, api.filter_user, flags)], 0)
        except OSError:
            pass  # kernel without EVFILT_USER: fall back to a self-pipe
        else:
            trigger = [api.kevent(_WAKE_IDENT, api.filter_user, 0, api.note_trigger)]
            return UserEventWaker(lambda: kq.control(trigger, 0)), (_WAKE_IDENT, api.filter_user)
    # EV_CLEAR is enough for the pipe: the armed flag means a byte is only
    # ever written into an empty pipe, and every such write is a fresh edge.
    pipe = PipeWaker()
    try:
        kq.control([api.kevent(pipe.fd, api.filter_read, flags)], 0)
    except BaseException:
        pipe.close()
        raise
    return pipe, (pipe.fd, api.filter_read)


@final
class KqueueReactor(ReactorBase):
    """An edge-triggered kqueue reactor.

    Thread safety: as :class:`~._base.ReactorBase`.
    """

    name: ClassVar[str] = "kqueue"
    edge_triggered: ClassVar[bool] = True

    def __init__(self, *, api: KqueueAPI | None = None) -> None:
        """Create the kqueue and its interrupt source.

        :param api: the implementation to use; :func:`default_api` if None.
        :raises OSError: when the OS refuses the kqueue or both interrupt
            sources (nothing leaks).
        """
        self._api = api = default_api() if api is None else api
        self._kq = api.kqueue()
        try:
            # CPython creates it close-on-exec already; upstream sets it
            # explicitly, and so do we in case that ever changes.
            os.set_inheritable(self._kq.fileno(), False)
            waker, self._wake_key = _make_waker(self._kq, api)
        except BaseException:
            self._kq.close()
            raise
        super().__init__(waker)
        self._fd_filters = (api.filter_read, api.filter_write)
        # Filter -> bits, then flags -> extra bits, with EOF waking both
        # directions like a hang-up everywhere else.
        self._filter_bits = {api.filter_read: READ, api.filter_write: WRITE}
        self._flag_bits = BitTable(((api.ev_error, ERROR), (api.ev_eof, HANGUP | READ | WRITE)))

    def _watch(self, fd: int) -> None:
        # Raises OSError (EBADF for a bad fd) after removing any filter
        # already added.
        flags = self._api.ev_add | self._api.ev_clear
        try:
            self._kq.control([self._api.kevent(fd, self._api.filter_read, flags)], 0)
        except BaseException:
            self._unwatch(fd)
            raise

    def watch_writes(self, fd: int) -> None:
        """Add the WRITE filter (see :meth:`ReactorBase.watch_writes`); a
        filter added to a writable fd fires at once."""
        flags = self._api.ev_add | self._api.ev_clear
        self._kq.control([self._api.kevent(fd, self._api.filter_write, flags)], 0)

    def _unwatch(self, fd: int) -> bool:
        # One call per filter: a failing change stops kevent() from applying
        # the ones after it.
        for filt in self._fd_filters:
            try:
                self._kq.control([self._api.kevent(fd, filt, self._api.ev_delete)], 0)
            except (OSError, ValueError):
                pass
        return False

    def _release(self) -> None:
        self._kq.close()

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """Run one kqueue pass (see :meth:`Reactor.wait`); ``ValueError`` once closed."""
        try:
            events: list[KeventLike] = self._kq.control(None, _MAX_EVENTS, os_wait_timeout(timeout))
        except InterruptedError:
            return []
        bits_by_fd: dict[int, int] = {}
        woken = False
        wake_key, filter_bits, flag_bits = self._wake_key, self._filter_bits, self._flag_bits
        ev_eof = self._api.ev_eof
        for ev in events:
            if (ev.ident, ev.filter) == wake_key:
                woken = True
                continue
            bits = filter_bits.get(ev.filter, 0) | flag_bits[ev.flags]
            if ev.flags & ev_eof and ev.fflags:
                bits |= ERROR  # the socket error travels in fflags
            bits_by_fd[ev.ident] = bits_by_fd.get(ev.ident, 0) | bits
        if woken:
            self._waker.consume()
        return self._lookup(bits_by_fd.items(), SAME)
