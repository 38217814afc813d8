"""Local (Unix-domain) sockets: endpoints that are filesystem paths.

``LocalStreamSocket`` has the stream surface of ``TCPSocket`` (plus passing
descriptors with SCM_RIGHTS), ``LocalDatagramSocket`` the datagram surface
of ``UDPSocket``; ``local_socket_pair`` makes a connected pair of either.

Endpoints are paths as ``str``, ``bytes`` or ``os.PathLike``, or on Linux
abstract names that start with ``"\\0"``.  Every endpoint the library returns
is a ``str`` (bytes from the OS are decoded with ``os.fsdecode``, so they
round-trip); an unnamed socket (an unbound sender, a socket pair, the client
side of an accepted connection) has the endpoint ``""``.
"""

from __future__ import annotations

import array
import builtins
import os
import socket
from typing import TYPE_CHECKING, Any, Final, cast, final

from ._buffers import read_size, view
from ._context import IOContext
from ._datagram import DatagramSocket
from ._descriptor import MSG_NOSIGNAL, WOULD_BLOCK, Descriptor, DescriptorOp, closed_error
from ._endpoint import Addressing
from ._handle import DescriptorHandle
from ._io_ops import FailedOp
from ._stream import StreamSocket

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._ops import Operation

__all__ = ("LOCAL", "LocalDatagramSocket", "LocalOpen", "LocalStreamSocket", "local_socket_pair")

#: Received descriptors are close-on-exec at once where the OS can do it.
_MSG_CMSG_CLOEXEC: Final = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
_INT_SIZE: Final = array.array("i").itemsize
#: The most descriptors one message may carry (Linux's SCM_MAX_FD).
_MAX_FDS: Final = 253


def _unix_family() -> int:
    # POSIX only (the package is); a clear error rather than AttributeError.
    family = getattr(socket, "AF_UNIX", None)
    if family is None:  # pragma: no cover
        raise OSError("Unix-domain sockets are not supported on this platform")
    return int(family)


class _LocalAddressing(Addressing):
    """Filesystem paths (and Linux abstract names) as ``str``."""

    __slots__ = ()

    what = "a path (str, bytes or os.PathLike)"

    def check(self, value: object) -> str:
        if isinstance(value, (str, bytes, os.PathLike)):
            path = os.fsdecode(value)
        else:
            raise TypeError(
                f"a local endpoint must be a path (str, bytes or os.PathLike), "
                f"not {type(value).__name__}"
            )
        if not path:
            raise ValueError("a local endpoint must not be empty")
        if "\0" in path[1:] and not path.startswith("\0"):
            raise ValueError("a local path must not contain NUL characters")
        return path

    def family(self, endpoint: str) -> int:
        return _unix_family()

    def to_sockaddr(self, endpoint: str) -> str:
        return endpoint

    def from_sockaddr(self, sockaddr: Any) -> str:
        if not sockaddr:
            return ""  # unnamed (None or empty from the OS)
        return os.fsdecode(sockaddr)


#: The addressing of local sockets.
LOCAL: Final[Addressing] = _LocalAddressing()


def _check_unix_family(family: object) -> int:
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(f"family must be socket.AF_UNIX, not {type(family).__name__}")
    if family != _unix_family():
        raise ValueError(f"family must be socket.AF_UNIX, not {family!r}")
    return family


class _SendFdsOp(DescriptorOp):
    """``send_fds``: data plus descriptors in one ``sendmsg`` (SCM_RIGHTS).

    Its ``__init__`` is written out, as every I/O operation's is (the
    ``_io_ops`` module says why).
    """

    __slots__ = ("data", "ancillary")

    write_direction = True

    def __init__(
        self, desc: Descriptor, data: Any, fds: array.array[int], stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.data = data
        self.ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if fds else []

    def attempt(self) -> object:
        try:
            return self.desc.sock.sendmsg([self.data], self.ancillary, MSG_NOSIGNAL)
        except BlockingIOError:
            return WOULD_BLOCK


class _RecvFdsOp(DescriptorOp):
    """``recv_fds``: data into the buffer plus up to ``maxfds`` descriptors
    (``__init__`` written out: see ``_io_ops``)."""

    __slots__ = ("buf", "maxfds")

    def __init__(
        self, desc: Descriptor, buf: Any, maxfds: int, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.buf = buf
        self.maxfds = maxfds

    def attempt(self) -> object:
        space = socket.CMSG_SPACE(self.maxfds * _INT_SIZE) if self.maxfds else 0
        try:
            n, ancdata, _flags, _addr = self.desc.sock.recvmsg_into(
                [self.buf], space, _MSG_CMSG_CLOEXEC
            )
        except BlockingIOError:
            return WOULD_BLOCK
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[: len(data) - len(data) % _INT_SIZE])
                fds.extend(received)
        if not _MSG_CMSG_CLOEXEC:
            for fd in fds:
                os.set_inheritable(fd, False)
        return n, fds

    def discard(self, value: object) -> None:
        # The context closed before the task resumed: nobody owns the fds.
        if isinstance(value, tuple):
            for fd in value[1]:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _fd_array(fds: object) -> array.array[int]:
    try:
        items = list(fds)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"fds must be a sequence of ints, not {type(fds).__name__}") from None
    for fd in items:
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fds must be ints, not {type(fd).__name__}")
        if fd < 0:
            raise ValueError(f"{fd} is not a valid descriptor")
    if len(items) > _MAX_FDS:
        raise ValueError(f"at most {_MAX_FDS} descriptors fit in one message")
    return array.array("i", items)


class LocalOpen(DescriptorHandle):
    """``open()`` of the local sockets and acceptor: the family can only be AF_UNIX."""

    __slots__ = ()

    _addressing = LOCAL

    def open(self, family: int = socket.AF_UNIX) -> None:
        """Open a new socket (closing any previous one); ``family`` must be
        ``socket.AF_UNIX``.

        :raises TypeError, ValueError: for another family.
        :raises OSError: when the OS refuses the socket.
        :raises RuntimeError: when the context is closed.
        """
        self._open(_check_unix_family(family))


@final
class LocalStreamSocket(LocalOpen, StreamSocket):
    """A Unix-domain stream socket: the :class:`TCPSocket` surface with path
    endpoints, plus :meth:`send_fds`/:meth:`recv_fds`.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    _addressing = LOCAL

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed socket on ``ctx`` (see :meth:`open`, :meth:`connect`).

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        super().__init__(ctx)


    def send_fds(
        self, data: Any, fds: Any, *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: send ``data`` (at least one byte) and pass the
        descriptors ``fds`` (SCM_RIGHTS) with it; returns the byte count.

        The receiver gets its own copies of the descriptors; the caller's
        stay open (close them when done).

        :raises TypeError, ValueError: for bad data or fds, or empty data
            (at the await).
        :raises OSError: ``EBADF`` when closed or for an fd that is not open.
        :raises RuntimeError: when another write is pending.
        :raises Cancelled: when cancelled (nothing was sent).
        """
        desc = self._desc
        try:
            size = view(data).nbytes
        except (TypeError, ValueError) as error:
            return FailedOp(error, stop_token)
        try:
            if not size:
                raise ValueError("send_fds needs at least one byte of data to carry the fds")
            fd_array = _fd_array(fds)
            if desc is None:
                raise closed_error()
        except (TypeError, ValueError, OSError) as error:
            return FailedOp(error, stop_token)
        return _SendFdsOp(desc, data, fd_array, stop_token)

    def recv_fds(
        self, buffer: Any, maxfds: int, *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: read into ``buffer`` and receive up to ``maxfds``
        descriptors; returns ``(count, fds)`` (count 0 at EOF).

        The received descriptors are new, close-on-exec and owned by the
        caller (close them).  Descriptors beyond ``maxfds`` are closed by the
        OS.

        :raises TypeError, ValueError: for a bad buffer or ``maxfds``.
        :raises OSError: ``EBADF`` when closed.
        :raises RuntimeError: when another read is pending.
        :raises Cancelled: when cancelled (nothing was received).
        """
        desc = self._desc
        try:
            if type(buffer) is not bytearray:
                read_size(buffer, "recv_fds")
            if isinstance(maxfds, bool) or not isinstance(maxfds, int):
                raise TypeError(f"maxfds must be an int, not {type(maxfds).__name__}")
            if not 0 <= maxfds <= _MAX_FDS:
                raise ValueError(f"maxfds must be in 0..{_MAX_FDS}")
            if desc is None:
                raise closed_error()
        except (TypeError, ValueError, OSError) as error:
            return FailedOp(error, stop_token)
        return _RecvFdsOp(desc, buffer, maxfds, stop_token)


@final
class LocalDatagramSocket(LocalOpen, DatagramSocket):
    """A Unix-domain datagram socket: the :class:`UDPSocket` surface with
    path endpoints (``send_to``/``recv_from``, ``connect`` then
    ``send``/``recv``).  A sender that is not bound shows as ``""``.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    _addressing = LOCAL
    _kind = socket.SOCK_DGRAM

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed socket on ``ctx``.

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        super().__init__(ctx)



def local_socket_pair(
    ctx: IOContext, type: int = socket.SOCK_STREAM
) -> tuple[LocalStreamSocket, LocalStreamSocket] | tuple[LocalDatagramSocket, LocalDatagramSocket]:
    """Two connected local sockets registered with ``ctx`` (``socketpair``).

    ``type`` is ``socket.SOCK_STREAM`` (two :class:`LocalStreamSocket`) or
    ``socket.SOCK_DGRAM`` (two :class:`LocalDatagramSocket`).  Both are
    non-blocking and close-on-exec; their endpoints are ``""`` (unnamed).
    Callable whether or not the context is running; posts nothing.

    :raises TypeError: for a bad context or type.
    :raises ValueError: for a type other than those two.
    :raises RuntimeError: when the context is closed.
    :raises OSError: when the OS refuses (nothing leaks).
    """
    if not isinstance(ctx, IOContext):
        raise TypeError(f"local_socket_pair needs an IOContext, got {builtins.type(ctx).__name__}")
    if isinstance(type, bool) or not isinstance(type, int):
        raise TypeError(f"type must be socket.SOCK_STREAM or SOCK_DGRAM, not {type!r}")
    cls: Any
    if type == socket.SOCK_STREAM:
        cls = LocalStreamSocket
    elif type == socket.SOCK_DGRAM:
        cls = LocalDatagramSocket
    else:
        raise ValueError(f"type must be socket.SOCK_STREAM or SOCK_DGRAM, not {type!r}")
    first, second = socket.socketpair(_unix_family(), type)
    try:
        one = cls._adopt(ctx, first, "")
    except BaseException:
        second.close()
        raise
    try:
        two = cls._adopt(ctx, second, "")
    except BaseException:
        one.close()
        raise
    return cast("tuple[LocalStreamSocket, LocalStreamSocket]", (one, two))

