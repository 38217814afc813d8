"""UDPSocket: a UDP socket whose sends and receives are awaitable."""

from __future__ import annotations

import socket
from typing import final

from ._context import IOContext
from ._datagram import DatagramSocket
from ._options import REUSE_PORT, PresetOption
from ._socket import check_ip_family, create_socket

__all__ = ("UDPSocket",)


@final
class UDPSocket(DatagramSocket):
    """A UDP socket on an :class:`IOContext`.

    ``open(family)``, ``bind(endpoint)`` (either opens a socket when
    needed), ``connect(endpoint)`` to set a default peer for
    :meth:`send`/:meth:`recv`; :meth:`send_to`/:meth:`recv_from` for any
    peer.  A datagram larger than the buffer is truncated to it (the count
    says how much was stored).  An ICMP error on a connected socket (nothing
    listening) surfaces as ``ConnectionRefusedError`` on the next operation.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    _kind = socket.SOCK_DGRAM

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed socket on ``ctx``.

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        super().__init__(ctx)

    def open(self, family: int = socket.AF_INET) -> None:
        """Open a new socket of ``family`` (closing any previous one).

        :raises TypeError, ValueError: for a family other than AF_INET /
            AF_INET6.
        :raises OSError: when the OS refuses the socket.
        :raises RuntimeError: when the context is closed.
        """
        check_ip_family(family)
        self._open(family)

    def _new_socket(self, family: int) -> socket.socket:
        return create_socket(family, v6only=True, kind=socket.SOCK_DGRAM)

    broadcast = PresetOption(
        socket.SOL_SOCKET,
        socket.SO_BROADCAST,
        "SO_BROADCAST",
        "SO_BROADCAST: may send to broadcast addresses.  Remembered for later opens.",
    )
    reuse_address = PresetOption(
        socket.SOL_SOCKET,
        socket.SO_REUSEADDR,
        "SO_REUSEADDR",
        "SO_REUSEADDR; set before :meth:`bind`.  Remembered for later opens.",
    )
    reuse_port = REUSE_PORT
