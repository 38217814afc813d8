"""Listening sockets whose ``accept`` is awaitable: the shared base and
TCPAcceptor.

The accept operation parks in the read slot of the acceptor's descriptor;
its raw result, a connected ``socket.socket``, becomes a registered socket
object in the accepting task once it resumes.  A connection taken is always
delivered, even when a cancel arrives before the task resumes (the cancel
lands at the next suspension); only a context closed meanwhile hands the raw
socket to ``AcceptOp.discard``, which closes it: no fd leaks.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, final

from ._context import IOContext
from ._endpoint import IP, Endpoint
from ._handle import DescriptorHandle
from ._io_ops import AcceptOp
from ._options import REUSE_PORT, PresetOption
from ._sockbase import SocketBase
from ._socket import IPOpen, TCPSocket

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("AcceptorBase", "TCPAcceptor")

S = TypeVar("S", bound=SocketBase)


class AcceptorBase(DescriptorHandle, Generic[S]):
    """Base of the acceptors: open, options, bind, listen, accept.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the acceptor.
    """

    __slots__ = ()

    #: The socket class accepted connections become.
    _socket_class: ClassVar[type[Any]]

    reuse_port = REUSE_PORT

    def listen(self, backlog: int = 128) -> None:
        """Start listening with a queue of ``backlog`` pending connections.

        :raises OSError: ``EBADF`` when closed.
        """
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError(f"backlog must be an int, not {type(backlog).__name__}")
        self._require_desc().call(socket.socket.listen, max(backlog, 0))

    def _bind_and_listen(self, bind: Callable[[], None], backlog: int = 128) -> None:
        """``bind()``, then :meth:`listen`; closed again if either fails."""
        try:
            bind()
            self.listen(backlog)
        except BaseException:
            self.close()
            raise

    def local_endpoint(self) -> Any:
        """The bound endpoint (the real port after binding port 0).

        :raises OSError: ``EBADF`` when closed.
        """
        sockaddr = self._require_desc().call(socket.socket.getsockname)
        return self._addressing.from_sockaddr(sockaddr)

    async def accept(self, *, stop_token: StopToken | None = None) -> S:
        """Wait for a connection; return it as a registered socket.

        The new socket is non-blocking, close-on-exec and has both endpoints
        cached.  Under an already-stopped token no connection is taken.

        :raises OSError: ``EBADF`` when closed; ``EMFILE``/``ENFILE`` when out
            of fds (the acceptor stays usable: accept again once fds are free).
        :raises RuntimeError: when another accept is pending.
        :raises TypeError: for a ``stop_token`` that is not a StopToken.
        :raises Cancelled: when cancelled before a connection was taken (it
            stays in the backlog).  A connection taken just before the
            cancel is returned; the cancel lands at the next suspension.
        """
        desc = self._require_desc()
        conn, address = await AcceptOp(desc, stop_token)
        remote = self._addressing.from_sockaddr(address)
        sock: S = self._socket_class._adopt(self._ctx, conn, remote)
        return sock


@final
class TCPAcceptor(IPOpen, AcceptorBase[TCPSocket]):
    """A listening TCP socket on an :class:`IOContext`.

    ``TCPAcceptor(ctx)`` is closed; ``open``, ``bind`` and ``listen`` set it
    up, or ``TCPAcceptor(ctx, endpoint)`` does all three at once.  IPv6
    acceptors are dual-stack where the OS allows (best effort).

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the acceptor.
    """

    __slots__ = ()

    _socket_class = TCPSocket
    _v6only = False

    def __init__(
        self,
        ctx: IOContext,
        endpoint: Endpoint | tuple[str, int] | None = None,
        reuse_address: bool = True,
        *,
        reuse_port: bool = False,
    ) -> None:
        """Create an acceptor; with ``endpoint``, open, bind and listen now.

        :param reuse_address: SO_REUSEADDR for every socket this acceptor
            opens (see :attr:`reuse_address`).
        :param reuse_port: SO_REUSEPORT likewise (see :attr:`reuse_port`).
        :raises TypeError, ValueError: for a bad context or endpoint.
        :raises OSError: when binding or listening fails (nothing leaks), or
            ``reuse_port`` is asked for where the platform lacks it.
        """
        super().__init__(ctx)
        self.reuse_address = reuse_address
        if reuse_port:
            self.reuse_port = True
        if endpoint is not None:
            ep = IP.check(endpoint)
            self._bind_and_listen(lambda: self.bind(ep))

    reuse_address = PresetOption(
        socket.SOL_SOCKET,
        socket.SO_REUSEADDR,
        "SO_REUSEADDR",
        "SO_REUSEADDR; set before :meth:`bind`.  Remembered for later opens.",
        default=True,
    )
