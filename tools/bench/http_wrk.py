"""http_wrk: the example HTTP/1.1 keep-alive server under ``wrk`` load.

The server runs inside the worker process; ``wrk -t1 -c64 -d<seconds>s
--latency`` (a separate process, written in C) drives it over loopback with
keep-alive ``GET /`` requests.  Figures: requests/s as wrk reports it and
wrk's request latency (mean, p50, p99).  Skipped (with a message) when
``wrk`` is not installed; ``make bench`` tries ``apt-get install -y wrk``.

Checked: one request made before the load returns ``200`` with the example's
exact body; wrk reports no socket errors, timeouts or non-2xx responses;
the server counted at least as many requests as wrk completed, and no more
than wrk's one outstanding request per connection beyond that.

impls:
  corosio_py        ``corosio_py.examples.http_server.serve`` (``TCPServer``,
                    one handler task per connection) run by 4 threads.
  corosio_py_1thread  the same server run by 1 thread (default backend only).
  asyncio_streams / uvloop_streams  the same request handling (same head
                    parser, same response bytes, same per-request counter)
                    as an ``asyncio.start_server`` streams handler, the loop
                    in one thread.
  floor_coroutines  (only with ``--impl``) the example's own handler on the
                    least pure-Python coroutine loop (``_floor_coro``), one
                    thread: what the handler costs without the library.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import ssl
import subprocess
import threading
from typing import Any

from tools.bench._net import HOST
from tools.bench._runners import new_event_loop
from tools.bench._spec import (
    COROSIO,
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Runner,
    ValidationError,
    Workload,
    check,
)
from tools.bench._worker import worker_main

WRK_THREADS = 1
WRK_CONNECTIONS = 64
SERVER_THREADS = 4


def unavailable() -> str | None:
    """Why this workload cannot run here (None: it can)."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install -y wrk, or `make bench` as root)"
    return None


# ---------------------------------------------------------------- servers


class _Server:
    """A running server: its port, a request counter and a stop function."""

    port: int

    def served(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class _DropResets(logging.Filter):
    """Hide the example server's log of a connection wrk reset when it stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionResetError)


class _CorosioServer(_Server):
    def __init__(self, args: RunArgs, tls: ssl.SSLContext | None = None) -> None:
        from corosio_py.examples.http_server import serve

        logging.getLogger("corosio_py").addFilter(_DropResets())

        self._ctx, self._server, self._stats, self._workers = serve(
            HOST, 0, args.threads, args.backend, tls=tls
        )
        self.port = self._server.local_endpoint().port

    def served(self) -> int:
        return sum(self._stats.snapshot().values())

    def stop(self) -> None:
        from corosio_py.examples.http_server import shutdown

        shutdown(self._ctx, self._server, self._workers)
        check(not any(w.is_alive() for w in self._workers), "a server thread did not stop")


def response(
    status: str, body: bytes, keep_alive: bool, head_only: bool = False
) -> bytes:
    """A ``text/plain`` HTTP/1.1 response with the same head the example
    server sends (a HEAD response carries GET's Content-Length, no body)."""
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "Server: corosio_py\r\n\r\n"
    )
    return head.encode("ascii") + (b"" if head_only else body)


class _AsyncioServer(_Server):
    """The example server's request handling, on asyncio streams."""

    def __init__(self, args: RunArgs, tls: ssl.SSLContext | None = None) -> None:
        import asyncio

        from corosio_py.examples.http_parse import MAX_HEADER, parse_head
        from corosio_py.examples.http_server import BODY, HTTPStats

        self._stats = stats = HTTPStats()
        ready = threading.Event()
        box: dict[str, Any] = {}

        handlers: set[asyncio.Task[None]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            writers.add(writer)
            try:
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.LimitOverrunError:
                        writer.write(response("431 Too Large", b"", False))
                        await writer.drain()
                        return
                    try:
                        method, target, version, headers = parse_head(head[:-4])
                        length = int(headers.get("content-length", "0"))
                    except ValueError:
                        writer.write(response("400 Bad Request", b"", False))
                        await writer.drain()
                        return
                    if length:
                        await reader.readexactly(length)  # a request body we ignore
                    connection = headers.get("connection", "").lower()
                    keep_alive = connection != "close" and (
                        version == "HTTP/1.1" or connection == "keep-alive"
                    )
                    stats.count()
                    head_only = method == "HEAD"
                    if target == "/stats":
                        body = "".join(
                            f"{k} {v}\n" for k, v in sorted(stats.snapshot().items())
                        )
                        reply = response("200 OK", body.encode(), keep_alive, head_only)
                    else:
                        reply = response("200 OK", BODY, keep_alive, head_only)
                    writer.write(reply)
                    await writer.drain()
                    if not keep_alive:
                        return
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()
                writers.discard(writer)
                handlers.discard(task)

        def run_loop() -> None:
            loop = new_event_loop(args)
            box["loop"] = loop

            async def main() -> None:
                server = await asyncio.start_server(
                    handle, HOST, 0, limit=MAX_HEADER, backlog=512, ssl=tls
                )
                box["port"] = server.sockets[0].getsockname()[1]
                stop = asyncio.Event()
                box["stop"] = stop
                ready.set()
                await stop.wait()
                server.close()
                # wrk has closed its connections; close any left so every
                # handler ends by itself (EOF), then wait for them.
                for writer in list(writers):
                    writer.close()
                if handlers:
                    await asyncio.wait(list(handlers), timeout=10)
                await server.wait_closed()

            try:
                loop.run_until_complete(main())
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run_loop, name="asyncio-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if "port" not in box:
            raise RuntimeError("the asyncio server did not start")
        self._box = box
        self.port = box["port"]

    def served(self) -> int:
        return sum(self._stats.snapshot().values())

    def stop(self) -> None:
        loop = self._box["loop"]
        loop.call_soon_threadsafe(self._box["stop"].set)
        self._thread.join(10)
        check(not self._thread.is_alive(), "the server thread did not stop")


class _FloorServer(_Server):
    """The example's own handler (``make_handler``) on the coroutine floor
    (:mod:`tools.bench._floor_coro`), one thread: the ceiling of any
    pure-Python coroutine library running that handler."""

    def __init__(self, args: RunArgs, tls: ssl.SSLContext | None = None) -> None:
        from corosio_py.examples.http_server import HTTPStats, make_handler
        from tools.bench._floor_coro import FloorLoop, FloorSocket

        check(tls is None, "the coroutine floor has no TLS")
        self._stats = stats = HTTPStats()
        handle = make_handler(stats)
        self._loop = loop = FloorLoop()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(512)
        self.port = listener.getsockname()[1]

        async def connection(sock: socket.socket) -> None:
            conn = FloorSocket(loop, sock)
            try:
                await handle(conn)  # type: ignore[arg-type]
            except (ConnectionError, EOFError):
                pass
            finally:
                conn.close()

        async def accept_loop() -> None:
            acceptor = FloorSocket(loop, listener)
            try:
                while True:
                    loop.spawn(connection(await acceptor.accept()))
            finally:
                acceptor.close()

        self._thread = threading.Thread(
            target=loop.run, args=(accept_loop(),), name="floor-server", daemon=True
        )
        self._thread.start()

    def served(self) -> int:
        return sum(self._stats.snapshot().values())

    def stop(self) -> None:
        self._loop.stopping = True
        self._thread.join(10)
        check(not self._thread.is_alive(), "the server thread did not stop")


# ---------------------------------------------------------------- checks and wrk


def _one_request(port: int, ca: str | None = None) -> None:
    """A single keep-alive GET; checks the status line and the exact body
    (over TLS, trusting ``ca``, when given)."""
    from corosio_py.examples.http_server import BODY

    with contextlib.ExitStack() as stack:
        s = stack.enter_context(socket.create_connection((HOST, port), timeout=10))
        if ca is not None:
            s = stack.enter_context(
                ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
            )
        s.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode("ascii"))
        data = b""
        while b"\r\n\r\n" not in data:
            more = s.recv(4096)
            check(bool(more), "the server closed before answering")
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        check(match is not None, f"no Content-Length in {head!r}")
        assert match is not None
        length = int(match.group(1))
        while len(body) < length:
            more = s.recv(4096)
            check(bool(more), "the server closed in the middle of the body")
            body += more
    check(head.startswith(b"HTTP/1.1 200 "), f"bad status line: {head.splitlines()[0]!r}")
    check(body == BODY, f"bad body: {body!r}")


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _micros(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValidationError(f"cannot parse wrk time {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    """The figures of wrk's ``--latency`` report (raises ValidationError)."""
    figures: dict[str, float] = {}
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    check(match is not None, f"no request count in wrk's output:\n{out}")
    assert match is not None
    figures["requests"] = float(match.group(1))
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    check(match is not None, f"no Requests/sec in wrk's output:\n{out}")
    assert match is not None
    figures["requests_per_s"] = float(match.group(1))
    match = re.search(r"^\s*Latency\s+(\S+)", out, re.MULTILINE)
    check(match is not None, f"no latency average in wrk's output:\n{out}")
    assert match is not None
    figures["latency_us"] = _micros(match.group(1))
    for pct in ("50", "99"):
        match = re.search(rf"^\s*{pct}%\s+(\S+)", out, re.MULTILINE)
        check(match is not None, f"no {pct}% latency in wrk's output:\n{out}")
        assert match is not None
        figures[f"p{pct}_us"] = _micros(match.group(1))
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    figures["socket_errors"] = float(sum(int(g) for g in match.groups())) if match else 0.0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(match.group(1)) if match else 0.0
    return figures


def measure(
    args: RunArgs, run: Runner, tls: ssl.SSLContext | None = None, ca: str | None = None
) -> Measurement:
    """One wrk run against the server ``run(args, tls)`` starts (HTTPS with
    ``tls``, checked with a client trusting ``ca``)."""
    reason = unavailable()
    if reason:
        raise RuntimeError(f"skipped: {reason}")
    seconds = args.params["seconds"]
    server: _Server = run(args, tls)
    try:
        _one_request(server.port, ca)
        before = server.served()
        cmd = [
            "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency",
            f"{'https' if tls else 'http'}://{HOST}:{server.port}/",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        served = server.served() - before
    finally:
        server.stop()
    check(proc.returncode == 0, f"wrk exited {proc.returncode}: {proc.stderr.strip()}")
    wrk = parse_wrk(proc.stdout)
    requests = int(wrk["requests"])
    check(requests > 0, "wrk completed no request")
    check(wrk["socket_errors"] == 0, f"wrk reported socket errors:\n{proc.stdout}")
    check(wrk["non_2xx"] == 0, f"wrk got {wrk['non_2xx']:.0f} non-2xx responses")
    check(
        requests <= served <= requests + WRK_CONNECTIONS,
        f"the server counted {served} requests, wrk completed {requests}",
    )
    return Measurement(
        figures={"requests_per_s": wrk["requests_per_s"], "latency_us": wrk["latency_us"]},
        latency={"latency_us": (wrk["p50_us"], wrk["p99_us"])},
        extra={"requests": requests, "served": served, "seconds": seconds},
    )


WORKLOAD = Workload(
    name="http_wrk",
    title=f"example HTTP/1.1 server under wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} (keep-alive GET)",
    figures=(
        Figure("requests_per_s", "requests/s", "requests/s"),
        Figure("latency_us", "request latency (mean)", "µs", higher_is_better=False,
               latency=True),
    ),
    impls=(
        Impl("corosio_py", COROSIO, _CorosioServer, threads=(SERVER_THREADS,)),
        # The same server run by one thread (default backend only): what the
        # extra threads cost or gain on this (GIL) build.
        Impl("corosio_py_1thread", COROSIO, _CorosioServer, threads=(1,), all_backends=False),
        Impl("corosio_py_2threads", COROSIO, _CorosioServer, threads=(2,), all_backends=False),
        Impl("asyncio_streams", "asyncio", _AsyncioServer),
        Impl("uvloop_streams", "uvloop", _AsyncioServer),
        # Outside the default suite (--impl floor_coroutines): a ceiling, not a peer.
        Impl("floor_coroutines", "floor", _FloorServer, backend="epoll", suite=False),
    ),
    sizes={
        "anchor": {"seconds": 5},
        # The suite's size: 3 s instead of 5 s, so that `make bench` stays
        # under 10 minutes; ``--size anchor`` runs wrk -d5s.
        "full": {"seconds": 3},
        "quick": {"seconds": 1},
    },
    measure=measure,
    references={"asyncio": "asyncio_streams", "uvloop": "uvloop_streams"},
    unavailable=unavailable,
    # One wrk run per cell in the suite (wrk itself averages ~10^4 requests):
    # keeps `make bench` under 10 minutes.
    reps=1,
    warmup_all=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
