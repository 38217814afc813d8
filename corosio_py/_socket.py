"""TCPSocket: a stream socket whose reads, writes and connect are awaitable.

The socket object is a thin handle: each ``open`` creates a fresh
:class:`~corosio_py._descriptor.Descriptor` (the state the reactor reports
to) and every awaitable method returns one small operation object bound to
it.  A descriptor is never reused after ``close``, so a stale readiness
report for an old fd can only reach a closed descriptor, where it is
ignored.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any, Final, final

from ._cancel import check_token
from ._context import IOContext
from ._descriptor import (
    IOV_MAX,
    ConnectOp,
    Descriptor,
    FailedOp,
    ReadOp,
    WriteOp,
    closed_error,
)
from ._endpoint import Endpoint, as_endpoint, from_sockaddr, to_sockaddr
from ._handle import DescriptorHandle
from ._ops import Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("TCPSocket", "attach", "create_socket")

_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)
_SHUTDOWN_KINDS: Final = (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR)
#: SO_NOSIGPIPE is not always exported by the socket module (3.11.4).
_SO_NOSIGPIPE: Final[int | None] = getattr(
    socket, "SO_NOSIGPIPE", 0x1022 if sys.platform == "darwin" else None
)
_SOCK_NONBLOCK: Final = getattr(socket, "SOCK_NONBLOCK", 0)
_LINGER: Final = struct.Struct("ii")
#: The largest SO_LINGER time (a C int).
_LINGER_MAX: Final = 2**31 - 1


def _check_family(family: object) -> socket.AddressFamily:
    """``family`` as an AddressFamily: ``TypeError`` for a non-int,
    ``ValueError`` for an int other than AF_INET / AF_INET6."""
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(
            f"family must be socket.AF_INET or socket.AF_INET6, not {type(family).__name__}"
        )
    if family not in _FAMILIES:
        raise ValueError(f"family must be socket.AF_INET or socket.AF_INET6, not {family!r}")
    return socket.AddressFamily(family)


def _view(obj: Any) -> memoryview:
    """A memoryview of ``obj``: ``obj`` itself when it already is one.

    Never a view derived from the caller's memoryview: on free-threaded
    CPython 3.13, views derived from one memoryview by several threads at
    once can release it under its other users (the managed buffer's export
    count is not atomic, CPython gh-155606), and one buffer is often shared
    by writes running on several threads.

    :raises TypeError: when ``obj`` is not bytes-like.
    :raises ValueError: when it is a released memoryview.
    """
    if type(obj) is memoryview:
        return obj
    return memoryview(obj)


def _byte_view(obj: Any) -> memoryview:
    """A one-dimensional unsigned-byte view of ``obj`` (see :func:`_view`).

    A caller's memoryview that already has that shape is used as it is.

    :raises TypeError: when ``obj`` is not bytes-like (or not contiguous).
    :raises ValueError: when it is a released memoryview.
    """
    view = _view(obj)
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return view.cast("B")


def create_socket(family: object, *, v6only: bool) -> socket.socket:
    """A non-blocking, close-on-exec TCP socket configured as 3.11.4-3.11.5 ask.

    ``v6only`` is the IPV6_V6ONLY value for an AF_INET6 socket (plain
    sockets 1, acceptors 0 = dual-stack; best effort).

    :raises TypeError: for a family that is not an int.
    :raises ValueError: for a family other than AF_INET / AF_INET6.
    :raises OSError: when the OS refuses the socket or SO_NOSIGPIPE.
    """
    fam = _check_family(family)
    # Python sockets are non-inheritable (close-on-exec) by default (PEP 446);
    # SOCK_NONBLOCK saves the fcntl where the platform has it.
    sock = socket.socket(fam, socket.SOCK_STREAM | _SOCK_NONBLOCK)
    try:
        if not _SOCK_NONBLOCK:
            sock.setblocking(False)
        configure_socket(sock)
        if fam == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            except OSError:
                pass  # best effort (3.11.5)
    except BaseException:
        sock.close()
        raise
    return sock


def configure_socket(sock: socket.socket) -> None:
    """Per-socket settings every opened or accepted socket gets.

    SO_NOSIGPIPE where the platform defines it: a failure fails the open or
    accept (3.2.7), since without it a write to a reset peer would raise
    SIGPIPE.  Elsewhere writes pass MSG_NOSIGNAL instead.
    """
    if _SO_NOSIGPIPE is not None:
        sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)


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


class _Immediate(Operation):
    """An awaitable with a known result (an empty buffer: 0 at once).

    It still honours a stop token (the driver checks it before start) and
    reports ``EBADF`` if the socket was closed by then.
    """

    __slots__ = ("_desc", "_value")

    def __init__(self, desc: Descriptor, value: object, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self._desc = desc
        self._value = value

    def start(self, task: Task[Any]) -> object:
        if not self._desc.is_open:
            raise closed_error()
        return self._value


class _Connect(ConnectOp):
    """``connect`` opens the socket at the ``await`` when it is not open."""

    __slots__ = ("owner",)

    def __init__(
        self, owner: TCPSocket, endpoint: Endpoint, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.task = None
        self.endpoint = endpoint
        self.sockaddr = to_sockaddr(endpoint)
        self.initiated = False
        self.owner = owner

    def start(self, task: Task[Any]) -> object:
        desc = self.owner._desc
        if desc is None or not desc.is_open:
            desc = self.owner._open(self.endpoint.family)
        self.desc = desc
        return desc.start(self, task)


def _not_connected() -> OSError:
    return OSError(errno.ENOTCONN, "the socket is not connected")


@final
class TCPSocket(DescriptorHandle):
    """A TCP stream socket on an :class:`IOContext`.

    One read and one write may be pending at once; a second concurrent read
    (or write/connect) raises ``RuntimeError`` at its ``await``.  Every
    awaitable method takes ``stop_token=`` to cancel just that operation;
    a token already stopped means the operation never starts.  Cancelled
    operations raise :class:`corosio_py.Cancelled`.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed socket on ``ctx`` (see :meth:`open`, :meth:`connect`).

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        super().__init__(ctx)

    @classmethod
    def _adopt(
        cls, ctx: IOContext, sock: socket.socket, remote: Endpoint | None = None
    ) -> TCPSocket:
        """Wrap a connected socket (accepted, or from ``socket_pair``).

        Makes it non-blocking, registers it and caches both endpoints.
        ``sock`` is closed if this fails.
        """
        try:
            sock.setblocking(False)
            configure_socket(sock)
            local = from_sockaddr(sock.getsockname())
            if remote is None:
                remote = from_sockaddr(sock.getpeername())
        except BaseException:
            sock.close()
            raise
        self = cls(ctx)
        desc = attach(ctx, sock)
        desc.local = local  # not yet visible to any other thread
        desc.remote = remote
        self._desc = desc
        return self

    # ------------------------------------------------------------ lifecycle

    def open(self, family: int = socket.AF_INET) -> None:
        """Open a new socket of ``family`` (closing any previous one).

        AF_INET6 sockets are IPv6-only (best effort).

        :raises TypeError: for a family that is not an int.
        :raises ValueError: for a family other than AF_INET / AF_INET6.
        :raises OSError: when the OS refuses the socket.
        :raises RuntimeError: when the context is closed.
        """
        _check_family(family)
        self._open(family)

    def _open(self, family: int) -> Descriptor:
        self.close()
        desc = attach(self._ctx, create_socket(family, v6only=True))
        self._desc = desc
        return desc

    def bind(self, endpoint: Endpoint | tuple[str, int]) -> None:
        """Bind to ``endpoint`` (opening a socket of its family if needed).

        :raises TypeError, ValueError: for a bad endpoint.
        :raises OSError: when the OS refuses (``EADDRINUSE``, ...).
        """
        ep = as_endpoint(endpoint)
        desc = self._desc
        if desc is None or not desc.is_open:
            desc = self._open(ep.family)

        def bind(sock: socket.socket) -> None:
            sock.bind(to_sockaddr(ep))
            desc.local = from_sockaddr(sock.getsockname())  # under desc.lock

        desc.call(bind)

    def shutdown(self, how: int) -> None:
        """Shut down ``socket.SHUT_RD``, ``SHUT_WR`` or ``SHUT_RDWR``.

        A no-op on a closed or never-opened socket (as upstream, 3.13.4).
        A parked read sees EOF after ``SHUT_RD``.

        :raises TypeError: for a ``how`` that is not an int.
        :raises ValueError: for another ``how``.
        :raises OSError: when the OS refuses (``ENOTCONN``).
        """
        if isinstance(how, bool) or not isinstance(how, int):
            raise TypeError(
                f"how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR, not {type(how).__name__}"
            )
        if how not in _SHUTDOWN_KINDS:
            raise ValueError("how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR")
        desc = self._desc
        if desc is None:
            return
        with desc.lock:
            if desc.fd < 0:
                return
            desc.hup = True  # a local shutdown brings no readiness edge
            desc.sock.shutdown(how)

    # ------------------------------------------------------------ endpoints

    def local_endpoint(self) -> Endpoint:
        """The local endpoint, cached at bind/connect/accept.

        :raises OSError: ``EBADF`` when closed, ``ENOTCONN`` when neither
            bound nor connected.
        """
        desc = self._desc
        if desc is None:
            raise closed_error()
        with desc.lock:
            if desc.fd < 0:
                raise closed_error()
            if desc.local is None:
                raise _not_connected()
            return desc.local

    def remote_endpoint(self) -> Endpoint:
        """The peer's endpoint, cached at connect/accept.

        :raises OSError: ``EBADF`` when closed, ``ENOTCONN`` when not connected
            (including after a failed connect).
        """
        desc = self._desc
        if desc is None:
            raise closed_error()
        with desc.lock:
            if desc.fd < 0:
                raise closed_error()
            if desc.remote is None:
                raise _not_connected()
            return desc.remote

    # ------------------------------------------------------------ awaitables

    def connect(
        self, endpoint: Endpoint | tuple[str, int], *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: connect to ``endpoint`` (opening a socket if needed).

        On success both endpoints are cached; on failure they stay unset.

        :raises TypeError, ValueError: for a bad endpoint or ``stop_token``
            (at the await).
        :raises ConnectionRefusedError: (and other ``OSError``) when it fails.
        :raises RuntimeError: when a write or connect is already pending.
        :raises Cancelled: when cancelled (the socket stays open).
        """
        try:
            ep = as_endpoint(endpoint)
        except (TypeError, ValueError) as exc:
            return FailedOp(exc, stop_token)
        return _Connect(self, ep, stop_token)

    def read_some(self, buffer: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: read into ``buffer``; returns the byte count, 0 at EOF.

        ``buffer`` is a writable bytes-like object (``bytearray``,
        ``memoryview``); an empty one gives 0 at once.

        :raises TypeError: for a non-writable buffer, or a ``stop_token``
            that is not a :class:`StopToken` (at the await).
        :raises ValueError: for a released memoryview (at the await).
        :raises OSError: ``EBADF`` when closed; ``ConnectionResetError``, ...
        :raises RuntimeError: when another read is pending.
        :raises Cancelled: when cancelled; no data is consumed then.
        """
        desc = self._desc
        if type(buffer) is bytearray:
            size = len(buffer)
        else:
            try:
                view = _view(buffer)
            except TypeError:
                return FailedOp(
                    TypeError(f"read_some needs a writable buffer, not {type(buffer).__name__}"),
                    stop_token,
                )
            except ValueError as error:
                return FailedOp(error, stop_token)
            if view.readonly:
                return FailedOp(TypeError("read_some needs a writable buffer"), stop_token)
            size = view.nbytes
        if desc is None:
            return FailedOp(closed_error(), stop_token)
        if not size:
            return _Immediate(desc, 0, stop_token)
        return ReadOp(desc, buffer, size, stop_token)

    def write_some(self, data: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: write some of ``data``; returns the byte count.

        ``data`` is a bytes-like object, or a list of them sent with one
        gathered system call (``sendmsg``).  Empty data gives 0 at once.
        Never raises SIGPIPE.

        :raises TypeError: for data that is not bytes-like, or a
            ``stop_token`` that is not a :class:`StopToken` (at the await).
        :raises ValueError: for a released memoryview (at the await).
        :raises BrokenPipeError, ConnectionResetError: when the peer is gone.
        :raises OSError: ``EBADF`` when closed.
        :raises RuntimeError: when another write or a connect is pending.
        :raises Cancelled: when cancelled.
        """
        desc = self._desc
        gather = False
        kind = type(data)
        if kind is bytes or kind is bytearray:
            size = len(data)
        elif kind is list or kind is tuple:
            size = 0
            try:
                for item in data:
                    size += _view(item).nbytes
            except TypeError:
                return FailedOp(
                    TypeError("write_some needs bytes-like objects in the list"), stop_token
                )
            except ValueError as error:
                return FailedOp(error, stop_token)
            if len(data) > IOV_MAX:
                data = data[:IOV_MAX]  # a partial write is a valid result
            gather = True
        else:
            try:
                size = _view(data).nbytes
            except TypeError:
                return FailedOp(
                    TypeError(f"write_some needs a bytes-like object, not {kind.__name__}"),
                    stop_token,
                )
            except ValueError as error:
                return FailedOp(error, stop_token)
        if desc is None:
            return FailedOp(closed_error(), stop_token)
        if not size:
            return _Immediate(desc, 0, stop_token)
        return WriteOp(desc, data, gather, stop_token)

    async def read_exactly(self, n: int, *, stop_token: StopToken | None = None) -> bytes:
        """Read exactly ``n`` bytes.

        :raises EOFError: when the peer closes first (the bytes read so far
            are lost with the error).
        :raises TypeError, ValueError: for a bad ``n`` or ``stop_token``.
        :raises Cancelled: when cancelled (bytes read so far are lost).
        :raises OSError: as :meth:`read_some`.
        """
        check_token(stop_token)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n < 0:
            raise ValueError("n must be >= 0")
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            count: int = await self.read_some(view[got:], stop_token=stop_token)
            if not count:
                raise EOFError(f"the peer closed the connection after {got} of {n} bytes")
            got += count
        view.release()
        return bytes(buf)

    async def write_all(self, data: Any, *, stop_token: StopToken | None = None) -> int:
        """Write all of ``data`` (bytes-like or a list of them); return its size.

        :raises TypeError: for data that is not bytes-like, or a bad
            ``stop_token``.
        :raises Cancelled: when cancelled (some bytes may have been sent).
        :raises OSError: as :meth:`write_some`.
        """
        check_token(stop_token)
        if type(data) is list or type(data) is tuple:
            try:
                views = [_byte_view(item) for item in data]
            except TypeError:
                raise TypeError("write_all needs bytes-like objects in the list") from None
            views = [v for v in views if v.nbytes]
            total = sum(v.nbytes for v in views)
            while views:
                count: int = await self.write_some(views, stop_token=stop_token)
                while count:
                    head = views[0]
                    if count >= head.nbytes:
                        count -= head.nbytes
                        del views[0]
                    else:
                        views[0] = head[count:]
                        count = 0
            return total
        try:
            view = _byte_view(data)
        except TypeError:
            raise TypeError(
                f"write_all needs a bytes-like object, not {type(data).__name__}"
            ) from None
        total = view.nbytes
        if not total:
            # Still a checkpoint: EBADF and stop tokens apply to empty writes.
            await self.write_some(b"", stop_token=stop_token)
            return 0
        sent = 0
        while sent < total:
            sent += await self.write_some(view[sent:] if sent else data, stop_token=stop_token)
        return total

    # ------------------------------------------------------------ options

    def _getopt(self, level: int, option: int) -> int:
        desc = self._desc
        if desc is None:
            raise closed_error()
        value: int = desc.call(socket.socket.getsockopt, level, option)
        return value

    def _setopt(self, level: int, option: int, value: int) -> None:
        desc = self._desc
        if desc is None:
            raise closed_error()
        desc.call(socket.socket.setsockopt, level, option, value)

    @property
    def no_delay(self) -> bool:
        """TCP_NODELAY (Nagle's algorithm off).  ``OSError`` when closed."""
        return bool(self._getopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @no_delay.setter
    def no_delay(self, value: bool) -> None:
        self._setopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(value)))

    @property
    def keep_alive(self) -> bool:
        """SO_KEEPALIVE.  ``OSError`` when closed."""
        return bool(self._getopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    @keep_alive.setter
    def keep_alive(self, value: bool) -> None:
        self._setopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(value)))

    @property
    def receive_buffer_size(self) -> int:
        """SO_RCVBUF in bytes (the OS may round or double it)."""
        return self._getopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    @receive_buffer_size.setter
    def receive_buffer_size(self, value: int) -> None:
        self._setopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _size(value))

    @property
    def send_buffer_size(self) -> int:
        """SO_SNDBUF in bytes (the OS may round or double it)."""
        return self._getopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    @send_buffer_size.setter
    def send_buffer_size(self, value: int) -> None:
        self._setopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _size(value))

    @property
    def linger(self) -> tuple[bool, int]:
        """SO_LINGER as ``(enabled, seconds)``.

        ``(True, 0)`` makes :meth:`close` reset the connection.  Setting
        ``seconds`` outside ``0..2**31-1`` raises ``ValueError``.
        """
        desc = self._desc
        if desc is None:
            raise closed_error()
        raw = desc.call(socket.socket.getsockopt, socket.SOL_SOCKET, socket.SO_LINGER, 8)
        onoff, seconds = _LINGER.unpack(raw)
        return bool(onoff), seconds

    @linger.setter
    def linger(self, value: tuple[bool, int]) -> None:
        try:
            enabled, seconds = value
        except (TypeError, ValueError):
            raise TypeError("linger must be an (enabled, seconds) pair") from None
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError(f"linger seconds must be an int, not {type(seconds).__name__}")
        if not 0 <= seconds <= _LINGER_MAX:
            raise ValueError(f"linger seconds must be in 0..{_LINGER_MAX}, not {seconds}")
        raw = _LINGER.pack(int(bool(enabled)), seconds)
        self._setopt_raw(socket.SOL_SOCKET, socket.SO_LINGER, raw)

    def _setopt_raw(self, level: int, option: int, value: bytes) -> None:
        desc = self._desc
        if desc is None:
            raise closed_error()
        desc.call(socket.socket.setsockopt, level, option, value)

    def __repr__(self) -> str:
        desc = self._desc
        if desc is None or not desc.is_open:
            return "<TCPSocket closed>"
        return f"<TCPSocket fd={desc.fileno()} local={desc.local} remote={desc.remote}>"


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a buffer size must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError("a buffer size must be > 0")
    return value

