"""A small HTTP/1.1 keep-alive server on corosio_py's TCPServer.

Run it alone and point any HTTP client at it::

    python -m corosio_py.examples.http_server --port 8080 --threads 4
    curl -v http://127.0.0.1:8080/

With ``--tls-cert cert.pem --tls-key key.pem`` it serves HTTPS instead
(``TCPServer(..., ssl=context)``: each handler gets a ``TLSStream``)::

    curl --cacert ca.pem https://localhost:8443/

``--processes N`` runs N such servers (each a multi-threaded context) in N
processes sharing one port through SO_REUSEPORT: how to scale past one
process (and past the GIL).

What it serves (any method; a query string is ignored):

* ``/``: ``200 OK`` with a short plain-text body (what wrk and
  :mod:`corosio_py.examples.http_load` request);
* ``/stats``: how many requests each thread served;
* ``/echo``: the request body back (at most :data:`MAX_ECHO` bytes, else
  ``413``);
* anything else: ``404 Not Found``.

Connections stay open (HTTP/1.1 keep-alive) unless the client asks to close
or speaks HTTP/1.0 without ``Connection: keep-alive``.  Ctrl-C stops it.

Requests are parsed strictly (RFC 9112), because a lenient reading of a
message's length is how requests are smuggled past a proxy.  Each of these
gets ``400 Bad Request`` and the connection is closed: a request line that
is not exactly ``method SP target SP HTTP/x.y``; a header line without a
colon, with whitespace before the colon, folded onto a continuation line or
with control characters; an HTTP/1.1 request without exactly one ``Host``;
a ``Content-Length`` that is not plain decimal digits (``+32``, ``3_2``,
``0x20``) or that appears more than once, even with equal values (RFC 9112
6.3 lets a server reject those too, and one rule is simpler to trust);
``Content-Length`` together with ``Transfer-Encoding``; a
``Transfer-Encoding`` whose last coding is not ``chunked`` (RFC 9112 6.3: the length
cannot be known); a malformed chunked body.  ``chunked`` bodies are decoded
(trailer fields are checked and dropped); any other transfer coding before
it gets ``501 Not Implemented``, an HTTP version other than 1.x ``505``.
"""

from __future__ import annotations

import argparse
import math
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import corosio_py as cio

from .http_parse import (
    MAX_ECHO,
    MAX_HEADER,
    Connection,
    RequestError,
    body_length,
    parse_head,
)

__all__ = (
    "BODY",
    "MAX_ECHO",
    "MAX_HEADER",
    "HTTPStats",
    "RequestError",
    "add_backend_argument",
    "main",
    "make_handler",
    "port_number",
    "positive_float",
    "positive_int",
    "serve",
    "shutdown",
    "tls_context",
)

T = TypeVar("T")

#: The body of ``/``.
BODY: Final = b"Hello from corosio_py!\n"


class HTTPStats:
    """Requests served, per thread; thread-safe.

    Each server thread counts in a cell of its own (found through a
    ``threading.local``), so counting a request takes no lock: a lock shared
    by every request made the threads wait for each other, which costs
    most where they truly run at once (free-threaded CPython).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _cells (a cell is its thread's own)
        self._cells: dict[str, list[int]] = {}
        self._local = threading.local()
        #: What each server thread's ``ctx.run()`` returned (after shutdown).
        self.handlers_run: dict[str, int] = {}

    def count(self) -> None:
        """Record one request served by the calling thread."""
        try:
            self._local.cell[0] += 1
        except AttributeError:
            cell = self._local.cell = [1]
            with self._lock:
                self._cells[threading.current_thread().name] = cell

    def snapshot(self) -> dict[str, int]:
        """Requests per thread name so far (each cell read as one value)."""
        with self._lock:
            return {name: cell[0] for name, cell in self._cells.items()}


def _response(
    status: str, body: bytes, keep_alive: bool, content_type: str, head_only: bool = False
) -> bytes:
    # A HEAD response carries GET's Content-Length but no body (RFC 9110 9.3.2).
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "Server: corosio_py\r\n\r\n"
    )
    return head.encode("ascii") + (b"" if head_only else body)


#: The responses of ``/`` and of unknown paths, built once: (keep_alive, head_only).
_HELLO: Final = {
    (keep, head): _response("200 OK", BODY, keep, "text/plain", head)
    for keep in (False, True)
    for head in (False, True)
}
_NOT_FOUND: Final = {
    (keep, head): _response("404 Not Found", b"Not Found\n", keep, "text/plain", head)
    for keep in (False, True)
    for head in (False, True)
}




def make_handler(
    stats: HTTPStats,
) -> Callable[[cio.TCPSocket | cio.TLSStream], Coroutine[Any, Any, None]]:
    """The per-connection coroutine function for :class:`corosio_py.TCPServer`.

    A peer that resets the connection or closes it mid-request ends the
    handler with ``ConnectionResetError``/``BrokenPipeError``/``EOFError``,
    which the server logs at debug level only.
    """

    async def handle(sock: cio.TCPSocket | cio.TLSStream) -> None:
        (sock.next_layer if isinstance(sock, cio.TLSStream) else sock).no_delay = True
        conn = Connection(sock)
        buf = conn.buf
        view = conn.view
        while True:
            # RFC 9112 2.2: ignore blank lines before a request line.
            while buf.startswith(b"\r\n"):
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > MAX_HEADER:
                    break
                n = await sock.read_some(view)
                if n == 0:
                    return  # the client closed the connection
                buf += view[:n]
                end = buf.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEADER:
                too_large = "431 Request Header Fields Too Large"
                await sock.write_all(_response(too_large, b"", False, "text/plain"))
                return
            try:
                method, target, version, headers = parse_head(bytes(buf[:end]))
                length = body_length(headers)
                del buf[: end + 4]
                path = target.partition("?")[0]
                keep = bytearray() if path == "/echo" else None
                if keep is not None and length is not None and length > MAX_ECHO:
                    raise RequestError("body too large", "413 Content Too Large")
                if (
                    length != 0
                    and not buf
                    and version != "HTTP/1.0"
                    and headers.get("expect", "").lower() == "100-continue"
                ):
                    await sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                if length is None:
                    await conn.chunked(keep)
                elif length:
                    await conn.body(length, keep)  # kept for /echo, else drained
            except RequestError as error:
                await sock.write_all(_response(error.status, b"", False, "text/plain"))
                return
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" and (
                version != "HTTP/1.0" or connection == "keep-alive"
            )
            stats.count()
            head_only = method == "HEAD"
            if path == "/":
                reply = _HELLO[keep_alive, head_only]
            elif path == "/stats":
                body = "".join(f"{k} {v}\n" for k, v in sorted(stats.snapshot().items()))
                reply = _response("200 OK", body.encode(), keep_alive, "text/plain", head_only)
            elif keep is not None:
                reply = _response(
                    "200 OK", bytes(keep), keep_alive, "application/octet-stream", head_only
                )
            else:
                reply = _NOT_FOUND[keep_alive, head_only]
            await sock.write_all(reply)
            if not keep_alive:
                return

    return handle


def serve(
    host: str,
    port: int,
    threads: int,
    backend: str | None,
    ready: threading.Event | None = None,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> tuple[cio.IOContext, cio.TCPServer, HTTPStats, list[threading.Thread]]:
    """Start the server on ``threads`` threads; return what runs it.

    ``tls``: serve HTTPS with this server context (see :func:`tls_context`).

    :raises ValueError: when ``threads`` is below 1.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    ctx = cio.IOContext(backend=backend)
    stats = HTTPStats()
    server = cio.TCPServer(
        ctx, (host, port), make_handler(stats), ssl=tls, reuse_port=reuse_port
    )
    server.start()
    handlers_run: dict[str, int] = {}

    def run_thread() -> None:
        name = threading.current_thread().name
        handlers_run[name] = ctx.run()

    workers = [
        threading.Thread(target=run_thread, name=f"server-{i}", daemon=True) for i in range(threads)
    ]
    stats.handlers_run = handlers_run
    for worker in workers:
        worker.start()
    if ready is not None:
        ready.set()
    return ctx, server, stats, workers


def shutdown(ctx: cio.IOContext, server: cio.TCPServer, workers: list[threading.Thread]) -> None:
    """Stop the server, let the threads return, close the context."""
    server.stop()
    ctx.stop()
    for worker in workers:
        worker.join(timeout=5)
    ctx.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context with the certificate chain ``cert`` and its ``key``
    (PEM files), offering ALPN ``http/1.1``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _converted(text: str, convert: Callable[[str], T], what: str) -> T:
    """``convert(text)``, or the ``argparse`` error saying it is not ``what``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1."""
    value = _converted(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """An ``argparse`` type: a finite number above 0."""
    value = _converted(text, float, "a number")
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def port_number(text: str) -> int:
    """An ``argparse`` type: a TCP port, 0 (any free port) to 65535."""
    value = _converted(text, int, "an integer")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {value}")
    return value


def add_backend_argument(parser: argparse.ArgumentParser, whose: str = "") -> None:
    """``--backend``: the reactor backend (of ``whose`` context, if said)."""
    parser.add_argument(
        "--backend",
        default=None,
        choices=cio.available_backends(),
        help=f"reactor backend{whose} (default: {cio.available_backends()[0]})",
    )


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description="corosio_py HTTP/1.1 keep-alive demo server: / says hello, "
        "/stats counts requests per thread, /echo returns the request body, "
        "anything else is 404.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8080,
        help="TCP port, 0 for any free one (default: 8080)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=4, help="threads running the IOContext (default: 4)"
    )
    add_backend_argument(parser)
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="server processes sharing the port with SO_REUSEPORT (default: 1)",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="set SO_REUSEPORT, so other servers may listen on the same port",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.processes > 1:
        _serve_processes(args)
        return
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    stop = threading.Event()
    ctx, server, stats, workers = serve(
        args.host, args.port, args.threads, args.backend, tls=tls, reuse_port=args.reuse_port
    )
    # Graceful shutdown on SIGINT/SIGTERM: a task awaits either signal, on
    # whichever thread runs the context.  Held before the URL is printed: a
    # client that reads it may signal at once.
    signals = cio.SignalSet(ctx, signal.SIGINT, signal.SIGTERM)

    async def wait_for_signal() -> None:
        await signals.wait()
        stop.set()

    cio.spawn(ctx, wait_for_signal())
    endpoint = server.local_endpoint()
    host = f"[{endpoint.address}]" if endpoint.address.version == 6 else str(endpoint.address)
    print(
        f"serving {'https' if tls else 'http'}://{host}:{endpoint.port}/ "
        f"on {args.threads} threads ({ctx.backend}); Ctrl-C to stop",
        flush=True,
    )
    stop.wait()
    shutdown(ctx, server, workers)  # closing the context lets the signals go
    served = stats.snapshot()
    print(f"\nstopped after {sum(served.values())} requests", file=sys.stderr)


def _serve_processes(args: argparse.Namespace) -> None:
    """``--processes N``: N single-process servers sharing one port.

    The port is reserved first by a bound (not listening) SO_REUSEPORT
    socket, so ``--port 0`` gives every child the same free port; each child
    is this module with ``--reuse-port``.  SIGINT/SIGTERM are passed on.
    """
    import socket
    import subprocess

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as reserve:
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind((args.host, args.port))
        port = reserve.getsockname()[1]
        command = [sys.executable, "-m", "corosio_py.examples.http_server"]
        command += ["--host", args.host, "--port", str(port), "--threads", str(args.threads)]
        command += ["--reuse-port"] + (["--backend", args.backend] if args.backend else [])
        if args.tls_cert:
            command += ["--tls-cert", args.tls_cert, "--tls-key", args.tls_key]
        children = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            for _ in range(args.processes)
        ]
        for child in children:
            assert child.stdout is not None
            child.stdout.readline()  # its "serving ..." line: it listens now
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(
        f"serving http://{host}:{port}/ on {args.processes} processes x "
        f"{args.threads} threads; Ctrl-C to stop",
        flush=True,
    )
    while not stop.wait(0.2) and all(child.poll() is None for child in children):
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


if __name__ == "__main__":
    main()
