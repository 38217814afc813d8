"""What every socket and acceptor shares: a context, an optional descriptor,
cancel/close, readiness waits and socket options."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, ClassVar

from ._context import IOContext
from ._descriptor import Descriptor, closed_error
from ._endpoint import IP, Addressing
from ._io_ops import FailedOp
from ._options import apply_presets
from ._wait import wait_op

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._ops import Operation


def attach(ctx: IOContext, sock: socket.socket) -> Descriptor:
    """Make a descriptor for ``sock`` and register it with ``ctx``'s reactor.

    On failure ``sock`` is closed and the error raised.

    :raises RuntimeError: when the context is closed.
    :raises ValueError: when the backend cannot watch the fd (select and
        ``fd >= FD_SETSIZE``).
    """
    sched = ctx._sched
    try:
        if sched.closed:
            raise RuntimeError("the IOContext is closed")
        desc = Descriptor(sched, sock)
        # Tracked before it is registered: a concurrent IOContext.close()
        # then either sees it (and closes it) or has not started yet.
        ctx._track(desc)
        desc.register()
    except BaseException:
        sock.close()
        raise
    return desc


class DescriptorHandle:
    """Base of the public objects that own one descriptor.

    ``_desc`` is replaced only by the owner's ``open()``; other threads
    (``cancel``, ``close``) read it once and act on that descriptor, whose
    own lock makes the operation safe from any thread.
    """

    __slots__ = ("__weakref__", "_ctx", "_desc", "_presets")

    #: How this class's endpoints convert (IP endpoints or filesystem paths).
    _addressing: ClassVar[Addressing] = IP

    def __init__(self, ctx: IOContext) -> None:
        if not isinstance(ctx, IOContext):
            raise TypeError(f"{type(self).__name__} needs an IOContext, got {type(ctx).__name__}")
        self._ctx = ctx
        self._desc: Descriptor | None = None
        # Options remembered for the sockets open() makes later (owner only,
        # like open() itself; see _options.PresetOption).
        self._presets: dict[int, bool] | None = None

    def _new_socket(self, family: int) -> socket.socket:
        """A new non-blocking OS socket of ``family`` for :meth:`_open`."""
        raise NotImplementedError

    def _open(self, family: int) -> Descriptor:
        """Close any old socket, open a new one with the remembered options
        and register it."""
        self.close()
        sock = self._new_socket(family)
        try:
            apply_presets(sock, self._presets)
        except BaseException:
            sock.close()
            raise
        desc = attach(self._ctx, sock)
        self._desc = desc
        return desc

    def bind(self, endpoint: Any) -> None:
        """Bind to ``endpoint`` (opening a socket of its family if needed).

        :raises TypeError, ValueError: for a bad endpoint.
        :raises OSError: when the OS refuses (``EADDRINUSE``, ...).
        """
        addressing = self._addressing
        ep = addressing.check(endpoint)
        desc = self._desc
        if desc is None or not desc.is_open:
            desc = self._open(addressing.family(ep))

        def bind(sock: socket.socket) -> None:
            sock.bind(addressing.to_sockaddr(ep))
            desc.local = addressing.from_sockaddr(sock.getsockname())  # under desc.lock

        desc.call(bind)

    @property
    def context(self) -> IOContext:
        """The context whose reactor serves this object."""
        return self._ctx

    @property
    def is_open(self) -> bool:
        """Whether it has an open fd."""
        desc = self._desc
        return desc is not None and desc.is_open

    def fileno(self) -> int:
        """The fd, or -1 when closed."""
        desc = self._desc
        return -1 if desc is None else desc.fileno()

    def cancel(self) -> None:
        """Complete every pending operation with ``Cancelled``.  Any thread.

        An operation whose initiation started before ``cancel()`` returned is
        cancelled even if it had not parked yet.  No-op when closed.
        """
        desc = self._desc
        if desc is not None:
            desc.cancel_all()

    def close(self) -> None:
        """Close; pending operations complete with ``Cancelled``.

        Idempotent; any thread.
        """
        desc = self._desc
        if desc is not None:
            desc.close()

    def wait(self, kind: object, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: complete when the fd is ready for ``kind``, without
        reading or writing (for a library that does its own non-blocking I/O
        on :meth:`fileno`).

        ``kind`` is :attr:`WaitType.READ` (readable, or a connection to
        accept), :attr:`WaitType.WRITE` or :attr:`WaitType.ERROR` (an error
        or hang-up is pending; the error is left for the next operation to
        report).  ``READ`` and ``ERROR`` waits count as the pending read,
        ``WRITE`` as the pending write.

        :raises TypeError: for a ``kind`` that is not a WaitType, or a bad
            ``stop_token`` (at the await).
        :raises OSError: ``EBADF`` when closed.
        :raises RuntimeError: when a read (or write) is already pending.
        :raises Cancelled: when cancelled.
        """
        desc = self._desc
        try:
            if desc is None:
                raise closed_error()
            return wait_op(desc, kind, stop_token)
        except (TypeError, OSError) as error:
            return FailedOp(error, stop_token)

    def __repr__(self) -> str:
        name = type(self).__name__
        desc = self._desc
        if desc is None or not desc.is_open:
            return f"<{name} closed>"
        return f"<{name} fd={desc.fileno()}{self._repr_details(desc)}>"

    def _repr_details(self, desc: Descriptor) -> str:
        """What ``repr`` adds after the fd of an open object."""
        return ""

    # ------------------------------------------------------------ options

    def _require_desc(self) -> Descriptor:
        desc = self._desc
        if desc is None:
            raise closed_error()
        return desc

    def _getopt(self, level: int, option: int) -> int:
        value: int = self._require_desc().call(socket.socket.getsockopt, level, option)
        return value

    def _setopt(self, level: int, option: int, value: Any) -> None:
        self._require_desc().call(socket.socket.setsockopt, level, option, value)
