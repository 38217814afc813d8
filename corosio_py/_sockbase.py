"""What every socket class shares, stream or datagram, IP or local.

A socket object is a thin handle: each ``open`` creates a fresh
:class:`~corosio_py._descriptor.Descriptor` (the state the reactor reports
to) and every awaitable method returns one small operation object bound to
it.  A descriptor is never reused after ``close``, so a stale readiness
report for an old fd can only reach a closed descriptor, where it is
ignored.

The concrete classes differ in two class attributes: ``_addressing`` (how
their endpoints convert: IP endpoints or filesystem paths) and ``_kind``
(``SOCK_STREAM`` or ``SOCK_DGRAM``).
"""

from __future__ import annotations

import errno
import socket
import sys
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from ._context import IOContext
from ._descriptor import closed_error
from ._handle import DescriptorHandle, attach
from ._io_ops import ConnectOp, FailedOp
from ._options import SizeOption

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._descriptor import Descriptor
    from ._ops import Operation
    from ._tasks import Task

__all__ = ("SocketBase", "configure_socket", "new_socket", "not_connected")

#: SO_NOSIGPIPE is not always exported by the socket module (macOS has
#: it as 0x1022 even then).
_SO_NOSIGPIPE: Final[int | None] = getattr(
    socket, "SO_NOSIGPIPE", 0x1022 if sys.platform == "darwin" else None
)
_SOCK_NONBLOCK: Final = getattr(socket, "SOCK_NONBLOCK", 0)

S = TypeVar("S", bound="SocketBase")


def configure_socket(sock: socket.socket) -> None:
    """Per-socket settings every opened or accepted socket gets.

    SO_NOSIGPIPE where the platform defines it: a failure fails the open or
    accept, since without it a write to a reset peer would raise
    SIGPIPE.  Elsewhere writes pass MSG_NOSIGNAL instead.
    """
    if _SO_NOSIGPIPE is not None:
        sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)


def new_socket(family: int, kind: int) -> socket.socket:
    """A non-blocking, close-on-exec socket, configured (closed on failure).

    :raises OSError: when the OS refuses the socket or SO_NOSIGPIPE.
    """
    # Python sockets are non-inheritable (close-on-exec) by default (PEP 446);
    # SOCK_NONBLOCK saves the fcntl where the platform has it.
    sock = socket.socket(family, kind | _SOCK_NONBLOCK)
    try:
        if not _SOCK_NONBLOCK:
            sock.setblocking(False)
        configure_socket(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def not_connected() -> OSError:
    """The error for an endpoint query on an unconnected socket."""
    return OSError(errno.ENOTCONN, "the socket is not connected")


class _Connect(ConnectOp):
    """``connect`` opens the socket at the ``await`` when it is not open."""

    __slots__ = ("owner", "family")

    def __init__(
        self, owner: SocketBase, endpoint: Any, family: int, stop_token: StopToken | None
    ) -> None:
        addressing = owner._addressing
        self.stop_token = stop_token
        self.task = None
        self.endpoint = endpoint
        self.sockaddr = addressing.to_sockaddr(endpoint)
        self.initiated = False
        self.decode = addressing.from_sockaddr
        self.owner = owner
        self.family = family

    def start(self, task: Task[Any]) -> object:
        desc = self.owner._desc
        if desc is None or not desc.is_open:
            desc = self.owner._open(self.family)
        self.desc = desc
        return super().start(task)


class SocketBase(DescriptorHandle):
    """Base of the socket classes: open, bind, connect, endpoints, buffers.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    #: ``socket.SOCK_STREAM`` or ``socket.SOCK_DGRAM``.
    _kind: ClassVar[int] = socket.SOCK_STREAM

    def _new_socket(self, family: int) -> socket.socket:
        return new_socket(family, self._kind)

    @classmethod
    def _adopt(cls: type[S], ctx: IOContext, sock: socket.socket, remote: Any = None) -> S:
        """Wrap a connected OS socket (accepted, or from a socket pair).

        Makes it non-blocking, registers it and caches both endpoints
        (``remote`` when the caller already knows it).  ``sock`` is closed
        if this fails.
        """
        decode = cls._addressing.from_sockaddr
        try:
            sock.setblocking(False)
            configure_socket(sock)
            local = decode(sock.getsockname())
            if remote is None:
                remote = decode(sock.getpeername())
        except BaseException:
            sock.close()
            raise
        self = cls(ctx)
        desc = attach(ctx, sock)
        desc.local = local  # not yet visible to any other thread
        desc.remote = remote
        self._desc = desc
        return self

    def local_endpoint(self) -> Any:
        """The local endpoint, cached at bind/connect/accept.

        :raises OSError: ``EBADF`` when closed, ``ENOTCONN`` when neither
            bound nor connected.
        """
        return self._cached_endpoint(remote=False)

    def remote_endpoint(self) -> Any:
        """The peer's endpoint, cached at connect/accept.

        :raises OSError: ``EBADF`` when closed, ``ENOTCONN`` when not connected
            (including after a failed connect).
        """
        return self._cached_endpoint(remote=True)

    def _cached_endpoint(self, *, remote: bool) -> Any:
        desc = self._require_desc()
        with desc.lock:
            if desc.fd < 0:
                raise closed_error()
            endpoint = desc.remote if remote else desc.local
        if endpoint is None:
            raise not_connected()
        return endpoint

    def connect(self, endpoint: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: connect to ``endpoint`` (opening a socket if needed).

        On success both endpoints are cached; on failure they stay unset.
        A datagram socket's connect only sets its default peer (it completes
        at once).

        :raises TypeError, ValueError: for a bad endpoint or ``stop_token``
            (at the await).
        :raises ConnectionRefusedError: (and other ``OSError``) when it fails.
        :raises RuntimeError: when a write or connect is already pending.
        :raises Cancelled: when cancelled (the socket stays open).
        """
        addressing = self._addressing
        try:
            ep = addressing.check(endpoint)
            family = addressing.family(ep)
        except (TypeError, ValueError) as exc:
            return FailedOp(exc, stop_token)
        return _Connect(self, ep, family, stop_token)

    receive_buffer_size = SizeOption(
        socket.SOL_SOCKET,
        socket.SO_RCVBUF,
        "SO_RCVBUF in bytes (the OS may round or double it).  ``OSError`` when closed.",
    )
    send_buffer_size = SizeOption(
        socket.SOL_SOCKET,
        socket.SO_SNDBUF,
        "SO_SNDBUF in bytes (the OS may round or double it).  ``OSError`` when closed.",
    )

    def _repr_details(self, desc: Descriptor) -> str:
        return f" local={desc.local} remote={desc.remote}"
