"""A small HTTP/1.1 keep-alive server on corosio_py's TCPServer.

Run it alone and point any HTTP client at it::

    python -m corosio_py.examples.http_server --port 8080 --threads 4
    curl -v http://127.0.0.1:8080/

Every request gets ``200 OK`` with a short plain-text body (``/stats``
reports how many requests each thread served).  Connections stay open
(HTTP/1.1 keep-alive) unless the client asks to close or speaks HTTP/1.0
without ``Connection: keep-alive``.  Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

import corosio_py as cio

__all__ = ("HTTPStats", "main", "make_handler")

MAX_HEADER = 16 * 1024
BODY = b"Hello from corosio_py!\n"


class HTTPStats:
    """Requests served, per thread; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_thread: collections.Counter[str] = collections.Counter()
        #: What each server thread's ``ctx.run()`` returned (after shutdown).
        self.handlers_run: dict[str, int] = {}

    def count(self) -> None:
        """Record one request served by the calling thread."""
        name = threading.current_thread().name
        with self._lock:
            self._per_thread[name] += 1

    def snapshot(self) -> dict[str, int]:
        """Requests per thread name so far."""
        with self._lock:
            return dict(self._per_thread)


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


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP request line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


def make_handler(stats: HTTPStats) -> Callable[[cio.TCPSocket], Coroutine[Any, Any, None]]:
    """The per-connection coroutine function for :class:`corosio_py.TCPServer`."""

    async def handle(sock: cio.TCPSocket) -> None:
        sock.no_delay = True
        buf = bytearray()
        chunk = bytearray(65536)
        view = memoryview(chunk)
        while True:
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
                method, target, version, headers = _parse_head(bytes(buf[:end]))
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError(f"negative Content-Length {length}")
            except ValueError:
                await sock.write_all(_response("400 Bad Request", b"", False, "text/plain"))
                return
            if "transfer-encoding" in headers:  # chunked bodies: not supported
                await sock.write_all(_response("501 Not Implemented", b"", False, "text/plain"))
                return
            del buf[: end + 4]
            if (
                length > len(buf)
                and version == "HTTP/1.1"
                and headers.get("expect", "").lower() == "100-continue"
            ):
                await sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            # Drain the request body (ignored) without holding it in memory.
            skip = min(length, len(buf))
            del buf[:skip]
            remaining = length - skip
            while remaining:
                n = await sock.read_some(view)
                if n == 0:
                    return
                if n > remaining:  # the next request starts in this read
                    buf += view[remaining:n]
                    n = remaining
                remaining -= n
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" and (
                version == "HTTP/1.1" or connection == "keep-alive"
            )
            stats.count()
            head_only = method == "HEAD"
            if target == "/stats":
                body = "".join(f"{k} {v}\n" for k, v in sorted(stats.snapshot().items()))
                reply = _response("200 OK", body.encode(), keep_alive, "text/plain", head_only)
            else:
                reply = _response("200 OK", BODY, keep_alive, "text/plain", head_only)
            await sock.write_all(reply)
            if not keep_alive:
                return

    return handle


def serve(
    host: str, port: int, threads: int, backend: str | None, ready: threading.Event | None = None
) -> tuple[cio.IOContext, cio.TCPServer, HTTPStats, list[threading.Thread]]:
    """Start the server on ``threads`` threads; return what runs it."""
    ctx = cio.IOContext(backend=backend)
    stats = HTTPStats()
    server = cio.TCPServer(ctx, (host, port), make_handler(stats))
    server.start()
    handlers_run: dict[str, int] = {}

    def run_thread() -> None:
        name = threading.current_thread().name
        handlers_run[name] = ctx.run()

    workers = [
        threading.Thread(target=run_thread, name=f"server-{i}", daemon=True)
        for i in range(threads)
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


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="corosio_py HTTP/1.1 demo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--backend", default=None, choices=cio.available_backends())
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Before the URL is printed: a client that reads it may signal at once.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ctx, server, stats, workers = serve(args.host, args.port, args.threads, args.backend)
    endpoint = server.local_endpoint()
    host = f"[{endpoint.address}]" if endpoint.address.version == 6 else str(endpoint.address)
    print(
        f"serving http://{host}:{endpoint.port}/ "
        f"on {args.threads} threads ({ctx.backend}); Ctrl-C to stop",
        flush=True,
    )
    while not stop.wait(0.2):
        pass
    shutdown(ctx, server, workers)
    served = stats.snapshot()
    print(f"\nstopped after {sum(served.values())} requests", file=sys.stderr)


if __name__ == "__main__":
    main()
