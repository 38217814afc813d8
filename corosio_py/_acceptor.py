"""TCPAcceptor: a listening socket whose ``accept`` is awaitable.

The accept operation parks in the read slot of the acceptor's descriptor; its raw result, a
connected ``socket.socket``,
becomes a registered :class:`TCPSocket` in the accepting task once it
resumes.  A connection taken is always delivered, even when a cancel
arrives before the task resumes (the cancel lands at the next suspension);
only a context closed meanwhile hands the raw socket to
``AcceptOp.discard``, which closes it: no fd leaks.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, final

from ._context import IOContext
from ._descriptor import AcceptOp, Descriptor, closed_error
from ._endpoint import Endpoint, as_endpoint, from_sockaddr, to_sockaddr
from ._handle import DescriptorHandle
from ._socket import TCPSocket, attach, create_socket

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("TCPAcceptor",)


@final
class TCPAcceptor(DescriptorHandle):
    """A listening TCP socket on an :class:`IOContext`.

    ``TCPAcceptor(ctx)`` is closed; ``open``, ``bind`` and ``listen`` set it
    up, or ``TCPAcceptor(ctx, endpoint)`` does all three at once.  IPv6
    acceptors are dual-stack where the OS allows (best effort).

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the acceptor.
    """

    __slots__ = ("_reuse_address",)

    def __init__(
        self,
        ctx: IOContext,
        endpoint: Endpoint | tuple[str, int] | None = None,
        reuse_address: bool = True,
    ) -> None:
        """Create an acceptor; with ``endpoint``, open, bind and listen now.

        :param reuse_address: SO_REUSEADDR for every socket this acceptor
            opens (see :attr:`reuse_address`).
        :raises TypeError, ValueError: for a bad context or endpoint.
        :raises OSError: when binding or listening fails (nothing leaks).
        """
        super().__init__(ctx)
        self._reuse_address = bool(reuse_address)
        if endpoint is not None:
            ep = as_endpoint(endpoint)
            try:
                self.bind(ep)
                self.listen()
            except BaseException:
                self.close()
                raise

    def open(self, family: int = socket.AF_INET) -> None:
        """Open a new listening-to-be socket of ``family`` (closing any old one).

        :raises ValueError: for a family other than AF_INET / AF_INET6.
        :raises OSError: when the OS refuses the socket.
        :raises RuntimeError: when the context is closed.
        """
        self._open(family)

    def _open(self, family: int) -> Descriptor:
        self.close()
        sock = create_socket(family, v6only=False)
        if self._reuse_address:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            except OSError:
                pass  # best effort (3.11.5)
        desc = attach(self._ctx, sock)
        self._desc = desc
        return desc

    @property
    def reuse_address(self) -> bool:
        """SO_REUSEADDR; set before :meth:`bind`.  Remembered for later opens."""
        desc = self._desc
        if desc is None or not desc.is_open:
            return self._reuse_address
        value = desc.call(socket.socket.getsockopt, socket.SOL_SOCKET, socket.SO_REUSEADDR)
        return bool(value)

    @reuse_address.setter
    def reuse_address(self, value: bool) -> None:
        self._reuse_address = bool(value)
        desc = self._desc
        if desc is not None and desc.is_open:
            desc.call(
                socket.socket.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEADDR, int(bool(value))
            )

    def bind(self, endpoint: Endpoint | tuple[str, int]) -> None:
        """Bind to ``endpoint`` (opening a socket of its family if needed).

        :raises TypeError, ValueError: for a bad endpoint.
        :raises OSError: when the OS refuses (``EADDRINUSE``, ...).
        """
        ep = as_endpoint(endpoint)
        desc = self._desc
        if desc is None or not desc.is_open:
            desc = self._open(ep.family)
        desc.call(socket.socket.bind, to_sockaddr(ep))

    def listen(self, backlog: int = 128) -> None:
        """Start listening with a queue of ``backlog`` pending connections.

        :raises OSError: ``EBADF`` when closed.
        """
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError(f"backlog must be an int, not {type(backlog).__name__}")
        desc = self._desc
        if desc is None:
            raise closed_error()
        desc.call(socket.socket.listen, max(backlog, 0))

    def local_endpoint(self) -> Endpoint:
        """The bound endpoint (the real port after binding port 0).

        :raises OSError: ``EBADF`` when closed.
        """
        desc = self._desc
        if desc is None:
            raise closed_error()
        return from_sockaddr(desc.call(socket.socket.getsockname))

    async def accept(self, *, stop_token: StopToken | None = None) -> TCPSocket:
        """Wait for a connection; return it as a registered :class:`TCPSocket`.

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
        desc = self._desc
        if desc is None:
            raise closed_error()
        conn, address = await AcceptOp(desc, stop_token)
        return TCPSocket._adopt(self._ctx, conn, from_sockaddr(address))

    def __repr__(self) -> str:
        desc = self._desc
        if desc is None or not desc.is_open:
            return "<TCPAcceptor closed>"
        return f"<TCPAcceptor fd={desc.fileno()}>"
