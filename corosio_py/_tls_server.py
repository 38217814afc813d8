"""The TLS layer of a stream server: wrap each accepted socket, handshake,
then run the user's handler with the :class:`~corosio_py._tls.TLSStream`.

Kept apart from the servers so that every stream server (TCP, local) gets
TLS the same way: ``handler = tls_handler(handler, context)``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from ._tls import TLSStream

__all__ = ("tls_handler",)

logger = logging.getLogger("corosio_py")

Handler = Callable[[Any], Coroutine[Any, Any, object]]


def tls_handler(handler: Handler, context: ssl.SSLContext) -> Handler:
    """A connection handler that serves ``handler`` over TLS with ``context``.

    A handshake that fails (a client that does not trust us, speaks
    something else or goes away) ends that connection only, logged at debug
    level.  The stream (and the socket) is closed when the handler returns.

    :raises TypeError: when ``context`` is not an ``ssl.SSLContext``.
    """
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(context).__name__}")

    async def serve_tls(sock: Any) -> None:
        stream = TLSStream(sock, context, server_side=True)
        try:
            try:
                await stream.handshake()
            except (ssl.SSLError, OSError, EOFError) as error:
                logger.debug("TLS handshake with %r failed: %r", sock, error)
                return
            await handler(stream)
        finally:
            stream.close()

    return serve_tls
