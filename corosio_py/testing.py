"""Public helpers for testing code built on corosio_py."""

from __future__ import annotations

import socket

from ._context import IOContext
from ._socket import TCPSocket

__all__ = ("socket_pair",)


def socket_pair(ctx: IOContext) -> tuple[TCPSocket, TCPSocket]:
    """Return a connected loopback TCP pair registered with ``ctx``.

    Built synchronously with plain blocking sockets (listen on
    127.0.0.1 port 0, connect, accept), then both ends are adopted:
    non-blocking, close-on-exec, registered with the reactor, endpoints
    cached.  Callable whether or not the context is running; it posts
    nothing, so the context's state (stopped flag, outstanding work) is
    unchanged.  The first socket is the connecting end.

    :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
    :raises RuntimeError: when the context is closed.
    :raises OSError: when the OS refuses (nothing leaks).
    """
    if not isinstance(ctx, IOContext):
        raise TypeError(f"socket_pair needs an IOContext, got {type(ctx).__name__}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Both calls complete at once on loopback (the backlog takes the
            # connection); the timeout only guards against a broken stack.
            client.settimeout(10.0)
            listener.settimeout(10.0)
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    finally:
        listener.close()
    try:
        first = TCPSocket._adopt(ctx, client)
    except BaseException:
        server.close()
        raise
    try:
        second = TCPSocket._adopt(ctx, server)
    except BaseException:
        first.close()
        raise
    return first, second
