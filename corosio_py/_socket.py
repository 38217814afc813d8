"""TCPSocket: a TCP stream socket whose reads, writes and connect are awaitable.

The stream surface lives in :mod:`._stream` and the open/bind/connect/
endpoint machinery in :mod:`._sockbase`; this module adds what is TCP's own:
the IP families, IPv6-only sockets and the TCP options.
"""

from __future__ import annotations

import socket
import struct
from typing import ClassVar, Final, final

from ._context import IOContext
from ._handle import DescriptorHandle, attach
from ._options import BoolOption
from ._sockbase import configure_socket, new_socket
from ._stream import StreamSocket

__all__ = ("IPOpen", "TCPSocket", "attach", "check_ip_family", "configure_socket", "create_socket")

_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)
_LINGER: Final = struct.Struct("ii")
#: The largest SO_LINGER time (a C int).
_LINGER_MAX: Final = 2**31 - 1


def check_ip_family(family: object) -> socket.AddressFamily:
    """``family`` as an AddressFamily: ``TypeError`` for a non-int,
    ``ValueError`` for an int other than AF_INET / AF_INET6."""
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(
            f"family must be socket.AF_INET or socket.AF_INET6, not {type(family).__name__}"
        )
    if family not in _FAMILIES:
        raise ValueError(f"family must be socket.AF_INET or socket.AF_INET6, not {family!r}")
    return socket.AddressFamily(family)


def create_socket(
    family: object, *, v6only: bool, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A non-blocking, close-on-exec IP socket, SIGPIPE suppressed (see
    :func:`~corosio_py._sockbase.configure_socket`).

    ``v6only`` is the IPV6_V6ONLY value for an AF_INET6 socket (plain
    sockets 1, acceptors 0 = dual-stack; best effort).

    :raises TypeError: for a family that is not an int.
    :raises ValueError: for a family other than AF_INET / AF_INET6.
    :raises OSError: when the OS refuses the socket or SO_NOSIGPIPE.
    """
    fam = check_ip_family(family)
    sock = new_socket(fam, kind)
    if fam == socket.AF_INET6:
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        except OSError:
            pass  # best effort: where the OS refuses it, its default stays
    return sock


class IPOpen(DescriptorHandle):
    """``open()`` of the TCP sockets and acceptors: AF_INET or AF_INET6."""

    __slots__ = ()

    #: IPV6_V6ONLY for the AF_INET6 sockets it opens (acceptors: dual-stack).
    _v6only: ClassVar[bool] = True

    def open(self, family: int = socket.AF_INET) -> None:
        """Open a new socket of ``family`` (closing any previous one).

        AF_INET6 sockets are IPv6-only, AF_INET6 acceptors dual-stack (both
        best effort).

        :raises TypeError: for a family that is not an int.
        :raises ValueError: for a family other than AF_INET / AF_INET6.
        :raises OSError: when the OS refuses the socket.
        :raises RuntimeError: when the context is closed.
        """
        check_ip_family(family)
        self._open(family)

    def _new_socket(self, family: int) -> socket.socket:
        return create_socket(family, v6only=self._v6only)


@final
class TCPSocket(IPOpen, StreamSocket):
    """A TCP stream socket on an :class:`IOContext`: the
    :class:`StreamSocket` surface (its rules on pending operations,
    ``stop_token=`` and threads) plus the IP families and TCP options.
    """

    __slots__ = ()

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed socket on ``ctx`` (see :meth:`open`, :meth:`connect`).

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        super().__init__(ctx)

    no_delay = BoolOption(
        socket.IPPROTO_TCP,
        socket.TCP_NODELAY,
        "TCP_NODELAY (Nagle's algorithm off).  ``OSError`` when closed.",
    )
    keep_alive = BoolOption(
        socket.SOL_SOCKET, socket.SO_KEEPALIVE, "SO_KEEPALIVE.  ``OSError`` when closed."
    )

    @property
    def linger(self) -> tuple[bool, int]:
        """SO_LINGER as ``(enabled, seconds)``.

        ``(True, 0)`` makes :meth:`close` reset the connection.  Setting
        ``seconds`` outside ``0..2**31-1`` raises ``ValueError``.
        """
        desc = self._require_desc()
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
        self._setopt(socket.SOL_SOCKET, socket.SO_LINGER, raw)
