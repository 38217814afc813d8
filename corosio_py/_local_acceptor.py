"""LocalStreamAcceptor and LocalStreamServer: listening on a filesystem path.

A socket file left behind by an earlier process makes ``bind`` fail with
``EADDRINUSE``; it is removed first only when the caller asks
(``unlink_existing=True``), and only if it is a socket: a regular file of
that name is never deleted.
"""

from __future__ import annotations

import os
import socket
import ssl as _ssl
import stat
from typing import Any, final

from ._acceptor import AcceptorBase
from ._context import IOContext
from ._local import LOCAL, LocalOpen, LocalStreamSocket
from ._server import Handler, StreamServer
from ._sockbase import new_socket

__all__ = ("LocalStreamAcceptor", "LocalStreamServer")


def _unlink_stale(path: str) -> None:
    """Remove the socket file at ``path`` (not an abstract name, not a
    non-socket file); a missing file is fine."""
    if path.startswith("\0"):
        return
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


@final
class LocalStreamAcceptor(LocalOpen, AcceptorBase[LocalStreamSocket]):
    """A listening Unix-domain stream socket on an :class:`IOContext`: the
    :class:`TCPAcceptor` surface (and thread rules) with path endpoints.

    ``LocalStreamAcceptor(ctx, path)`` opens, binds and listens at once;
    ``accept()`` returns a :class:`LocalStreamSocket`.
    """

    __slots__ = ()

    _addressing = LOCAL
    _socket_class = LocalStreamSocket

    def __init__(
        self,
        ctx: IOContext,
        path: str | bytes | os.PathLike[Any] | None = None,
        backlog: int = 128,
        *,
        unlink_existing: bool = False,
    ) -> None:
        """Create an acceptor; with ``path``, open, bind and listen now.

        :param unlink_existing: remove a stale socket file at ``path`` first.
        :raises TypeError, ValueError: for a bad context, path or backlog.
        :raises OSError: when binding or listening fails (nothing leaks).
        """
        super().__init__(ctx)
        if path is not None:
            self._bind_and_listen(
                lambda: self.bind(path, unlink_existing=unlink_existing), backlog
            )

    def _new_socket(self, family: int) -> socket.socket:
        return new_socket(family, socket.SOCK_STREAM)

    def bind(self, endpoint: Any, *, unlink_existing: bool = False) -> None:
        """Bind to the path ``endpoint`` (opening a socket if needed).

        :param unlink_existing: remove a stale socket file there first.
        :raises TypeError, ValueError: for a bad path.
        :raises OSError: ``EADDRINUSE`` when the path exists (and was not
            removed), ``ENOENT`` for a missing directory, ...
        """
        if unlink_existing:
            _unlink_stale(LOCAL.check(endpoint))
        super().bind(endpoint)


@final
class LocalStreamServer(StreamServer):
    """Serve every connection accepted on a Unix-domain path with
    ``await handler(sock)`` (a :class:`LocalStreamSocket`).

    ``LocalStreamServer(ctx, path, handler, *, backlog=128,
    unlink_existing=False, ssl=None)``: the :class:`TCPServer` surface
    (``start``, ``stop``, ``local_endpoint``, ``connections``, ``running``);
    with ``ssl=context`` each handler gets a handshaken ``TLSStream``.
    """

    __slots__ = ("_unlink_existing",)

    _addressing = LOCAL

    def __init__(
        self,
        ctx: IOContext,
        path: str | bytes | os.PathLike[Any],
        handler: Handler,
        *,
        backlog: int = 128,
        unlink_existing: bool = False,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        """Create a stopped server (see :meth:`start`).

        :param unlink_existing: remove a stale socket file at ``path`` when
            starting.
        :param ssl: serve TLS with this context (see :class:`StreamServer`).
        :raises TypeError: for a bad context, backlog or handler.
        :raises ValueError: for a bad path.
        """
        super().__init__(ctx, path, handler, backlog=backlog, ssl=ssl)
        self._unlink_existing = bool(unlink_existing)

    def _new_acceptor(self) -> LocalStreamAcceptor:
        return LocalStreamAcceptor(
            self._ctx, self._endpoint, self._backlog, unlink_existing=self._unlink_existing
        )
