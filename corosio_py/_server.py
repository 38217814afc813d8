"""TCPServer (and the base LocalStreamServer shares): accept connections and
run one handler task per connection."""

from __future__ import annotations

import functools
import inspect
import logging
import socket
import ssl as _ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, final

from ._acceptor import AcceptorBase, TCPAcceptor
from ._context import IOContext
from ._endpoint import IP, Addressing, Endpoint
from ._errors import Cancelled
from ._spawn import spawn
from ._tasks import Task
from ._timer import sleep
from ._tls_server import tls_handler

__all__ = ("StreamServer", "TCPServer")

logger = logging.getLogger("corosio_py")

#: Back-off after a failed accept (EMFILE, ENFILE, ENOBUFS, ...), doubling
#: from the first value up to the second while the failures go on.
_ACCEPT_RETRY_FIRST = 0.01
_ACCEPT_RETRY_MAX = 0.5
#: What a handler may raise when its peer goes away; logged at debug level.
_PEER_GONE = (ConnectionResetError, BrokenPipeError, EOFError, _ssl.SSLEOFError)

#: ``async def handler(sock)``: the socket is a TCPSocket or a LocalStreamSocket.
Handler = Callable[[Any], Coroutine[Any, Any, object]]


def _is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine, as far as can be told
    without calling it: an async function or method, an object whose
    ``__call__`` is one, or a ``functools.partial`` of either."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    return callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)


class StreamServer:
    """Serve every accepted connection with ``await handler(sock)``.

    Each connection's handler runs as its own task, on whichever thread of
    the context runs it; the socket is closed when the handler returns.  A
    handler's exception is logged and ends only that connection (a peer's
    reset, broken pipe or ``EOFError`` at debug level only).  Between
    :meth:`start` and :meth:`stop` the server is outstanding work (its
    pending accept keeps ``run()`` going).

    Thread safety: :meth:`stop` may be called from any thread, including
    from inside a handler; the other methods by the owner.
    """

    __slots__ = (
        "_ctx",
        "_endpoint",
        "_handler",
        "_backlog",
        "_reuse_address",
        "_reuse_port",
        "_lock",
        "_acceptor",
        "_accept_task",
        "_handlers",
    )

    def __init__(
        self,
        ctx: IOContext,
        endpoint: Any,
        handler: Handler,
        *,
        backlog: int = 128,
        reuse_address: bool = True,
        reuse_port: bool = False,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        """Create a stopped server (see :meth:`start`).

        ``reuse_port``: SO_REUSEPORT on the listening socket, so several
        servers (one per process) can share one port.
        ``ssl``: serve TLS with this context; each handler then gets a
        :class:`~corosio_py.TLSStream` whose handshake is done (a failed
        handshake ends that connection only, logged at debug level).

        :raises TypeError: for a bad context or backlog, or a ``handler``
            that is not an async function (an object whose ``__call__`` is
            one, or a ``functools.partial`` of either, also do).
        :raises ValueError: for a bad endpoint.
        """
        if not isinstance(ctx, IOContext):
            raise TypeError(f"{type(self).__name__} needs an IOContext, got {type(ctx).__name__}")
        if not _is_async_callable(handler):
            raise TypeError(
                "handler must be an async function taking a socket "
                f"(async def handler(sock): ...), not {handler!r}"
            )
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError(f"backlog must be an int, not {type(backlog).__name__}")
        self._ctx = ctx
        self._endpoint = self._addressing.check(endpoint)
        self._handler = handler if ssl is None else tls_handler(handler, ssl)
        self._backlog = backlog
        self._reuse_address = bool(reuse_address)
        self._reuse_port = bool(reuse_port)
        self._lock = threading.Lock()  # guards the three fields below
        self._acceptor: AcceptorBase[Any] | None = None
        self._accept_task: Task[None] | None = None
        self._handlers: dict[Task[None], Any] = {}

    #: How the server's endpoint converts.
    _addressing: ClassVar[Addressing] = IP

    def _new_acceptor(self) -> AcceptorBase[Any]:
        """A bound, listening acceptor for :meth:`start` (closed on failure)."""
        raise NotImplementedError

    @property
    def context(self) -> IOContext:
        """The context that runs the server."""
        return self._ctx

    @property
    def connections(self) -> int:
        """How many connections are open (their handlers running) now."""
        with self._lock:
            return len(self._handlers)

    @property
    def running(self) -> bool:
        """Whether the server is accepting (between start() and stop())."""
        with self._lock:
            return self._acceptor is not None

    def local_endpoint(self) -> Any:
        """The listening endpoint (the real port after binding port 0).

        :raises OSError: ``EBADF`` when the server is not started.
        """
        with self._lock:
            acceptor = self._acceptor
        if acceptor is None:
            raise OSError(9, f"the {type(self).__name__} is not started")
        return acceptor.local_endpoint()

    def start(self) -> None:
        """Bind, listen and begin accepting.  A no-op if already started.

        :raises OSError: when binding or listening fails (nothing leaks).
        """
        with self._lock:
            if self._acceptor is not None:
                return
            acceptor = self._new_acceptor()
            self._acceptor = acceptor
            self._accept_task = spawn(self._ctx, self._accept_loop(acceptor))

    def stop(self) -> None:
        """Stop accepting, cancel running handlers and close their sockets.

        Does not block; idempotent; callable from any thread.
        """
        with self._lock:
            acceptor, self._acceptor = self._acceptor, None
            accept_task, self._accept_task = self._accept_task, None
            handlers = list(self._handlers.items())
        if acceptor is None:
            return
        if accept_task is not None:
            accept_task.cancel()
        acceptor.close()  # also completes a parked accept with Cancelled
        for task, sock in handlers:
            task.cancel()
            sock.close()

    async def _accept_loop(self, acceptor: AcceptorBase[Any]) -> None:
        delay = 0.0
        while True:
            try:
                sock = await acceptor.accept()
            except Cancelled:
                return
            except OSError as error:
                if not acceptor.is_open:
                    return
                # EMFILE and friends: the connection stays queued and the
                # listener stays readable, so accepting again at once would
                # fail at once, forever, without suspending.  Back off (stop()
                # cancels the wait) and log once per streak of failures.
                if delay == 0.0:
                    logger.warning(
                        "%s accept failed: %s (retrying)", type(self).__name__, error
                    )
                delay = min(max(2.0 * delay, _ACCEPT_RETRY_FIRST), _ACCEPT_RETRY_MAX)
                try:
                    await sleep(delay)
                except Cancelled:
                    return
                continue
            delay = 0.0
            self._launch(sock)

    def _launch(self, sock: Any) -> None:
        with self._lock:
            if self._acceptor is None:  # stopped meanwhile
                sock.close()
                return
            task = spawn(self._ctx, self._serve(sock))
            self._handlers[task] = sock
        # Outside the lock: it runs at once if the task is already done.  A
        # done callback, not a finally in _serve: a task cancelled by stop()
        # before its first step never runs _serve's body.
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: Task[None]) -> None:
        with self._lock:
            sock = self._handlers.pop(task, None)
        if sock is not None:
            sock.close()

    async def _serve(self, sock: Any) -> None:
        try:
            await self._handler(sock)
        except Cancelled:
            pass
        except _PEER_GONE as error:
            # A peer that resets or goes away is routine (a load tool that
            # stops mid-request): no traceback, just a trace for debugging.
            logger.debug(
                "%s connection %r ended by the peer: %r", type(self).__name__, sock, error
            )
        except Exception:
            logger.exception("%s handler failed for %r", type(self).__name__, sock)
        finally:
            sock.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        name = type(self).__name__
        return f"<{name} {self._endpoint} {state} connections={self.connections}>"


@final
class TCPServer(StreamServer):
    """Serve every accepted TCP connection with ``await handler(sock)``.

    ``TCPServer(ctx, endpoint, handler, *, backlog=128, reuse_address=True,
    reuse_port=False, ssl=None)``; see :class:`StreamServer` for the
    behaviour.
    """

    __slots__ = ()

    def local_endpoint(self) -> Endpoint:
        """The listening endpoint (the real port after binding port 0).

        :raises OSError: ``EBADF`` when the server is not started.
        """
        endpoint: Endpoint = super().local_endpoint()
        return endpoint

    def _new_acceptor(self) -> TCPAcceptor:
        family = socket.AF_INET6 if self._endpoint.address.version == 6 else socket.AF_INET
        acceptor = TCPAcceptor(self._ctx)
        try:
            acceptor.open(family)
            acceptor.reuse_address = self._reuse_address
            if self._reuse_port:
                acceptor.reuse_port = True
            acceptor.bind(self._endpoint)
            acceptor.listen(self._backlog)
        except BaseException:
            acceptor.close()
            raise
        return acceptor
