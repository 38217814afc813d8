"""The HTTP/1.1 example server, its load client and the demo, on every backend.

The server (``corosio_py.examples.http_server.serve``) runs on 4 threads of
one context; it is checked with ``http.client``, raw sockets and ``curl``,
driven by ``http_load.run_load``, and run standalone (and stopped with
SIGINT) and through ``python -m corosio_py.examples.demo`` as subprocesses.
"""

from __future__ import annotations

import http.client
import logging
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from corosio_py import IOContext, TCPServer
from corosio_py.examples.http_load import run_load
from corosio_py.examples.http_server import BODY, HTTPStats, serve, shutdown
from corosio_py.examples.http_server import main as http_server_main
from tests.unit.limits import PATIENCE, PROMPT

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THREADS = 4



@dataclass
class Running:
    ctx: IOContext
    server: TCPServer
    stats: HTTPStats
    workers: list[threading.Thread]
    port: int
    backend: str

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=PATIENCE)

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE)

    def served(self) -> int:
        return sum(self.stats.snapshot().values())

    def wait_idle(self) -> None:
        """Wait until every connection's handler has finished."""
        deadline = time.monotonic() + PATIENCE
        while self.server.connections:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.server.connections} connections still open")
            time.sleep(0.005)


@pytest.fixture
def web(backend: str) -> Iterator[Running]:
    ctx, server, stats, workers = serve("127.0.0.1", 0, THREADS, backend)
    try:
        yield Running(ctx, server, stats, workers, server.local_endpoint().port, backend)
    finally:
        shutdown(ctx, server, workers)
        assert not any(w.is_alive() for w in workers), "a server thread did not return"


def recv_all(sock: socket.socket, backend: str) -> bytes:
    """Read until the server closes the connection."""
    data = bytearray()
    sock.settimeout(PATIENCE)
    while True:
        if b"\r\n\r\n" in data:
            sock.settimeout(PROMPT)  # the response is in: now the EOF
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            pytest.fail(f"no EOF within {PROMPT} s; got {bytes(data)!r}")
        if not chunk:
            break
        data += chunk
    return bytes(data)


def recv_response(sock: socket.socket, buf: bytearray) -> tuple[str, dict[str, str], bytes]:
    """Read one response (Content-Length framed) from ``sock``; ``buf`` keeps
    what was read beyond it."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed mid-response: {bytes(buf)!r}")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buf) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed mid-body")
        buf += chunk
    body = bytes(buf[end + 4 : end + 4 + length])
    del buf[: end + 4 + length]
    return lines[0], headers, body


# --------------------------------------------------------------------------
# http.client / raw sockets
# --------------------------------------------------------------------------


def test_keep_alive_several_requests(web: Running) -> None:
    conn = web.connection()
    try:
        first_sock = None
        for i in range(5):
            conn.request("GET", f"/?q={i}")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.version == 11
            assert resp.read() == BODY
            assert resp.getheader("Content-Length") == str(len(BODY))
            assert resp.getheader("Content-Type", "").startswith("text/plain")
            assert resp.getheader("Connection") == "keep-alive"
            assert not resp.will_close
            if first_sock is None:
                first_sock = conn.sock
            assert conn.sock is first_sock  # the same TCP connection throughout
        assert web.server.connections == 1
    finally:
        conn.close()
    assert web.served() == 5
    web.wait_idle()


def test_post_with_body(web: Running) -> None:
    conn = web.connection()
    try:
        body = bytes(range(256)) * 400  # 100 KiB, several reads on the server
        conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/x"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == body
        # The body was consumed: the next request on the connection parses.
        conn.request("POST", "/", body=b"x=1")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
    finally:
        conn.close()
    assert web.served() == 3


def test_post_body_sent_after_the_head(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.05)
        sock.sendall(b"56789GET /?after HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = bytearray()
        for _ in range(2):
            status, _, body = recv_response(sock, buf)
            assert status == "HTTP/1.1 200 OK"
            assert body == BODY
    assert web.served() == 2


def test_head(web: Running) -> None:
    conn = web.connection()
    try:
        conn.request("HEAD", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b""
        # RFC 9110 8.6: Content-Length of a HEAD response, if sent, is GET's.
        assert resp.getheader("Content-Length") in (None, str(len(BODY)))
        conn.request("HEAD", "/stats")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b""
        # No stray body was sent: the next response on the connection parses.
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
    finally:
        conn.close()


def test_head_sends_no_body_bytes(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(b"HEAD /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = recv_all(sock, web.backend)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest == b""


def test_connection_close(web: Running) -> None:
    conn = web.connection()
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Connection") == "close"
        assert resp.will_close
        assert resp.read() == BODY
    finally:
        conn.close()
    # And the server really closes its end.
    with web.raw() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = recv_all(sock, web.backend)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n" + BODY)
    web.wait_idle()


def test_http10_closes(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(sock, web.backend)  # EOF: the server closed after one response
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\nConnection: close" in head
    assert body == BODY
    # http.client speaking HTTP/1.0 sees the same.
    conn = web.connection()
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"  # type: ignore[attr-defined]
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.will_close
        assert resp.read() == BODY
    finally:
        conn.close()
    web.wait_idle()


def test_http10_keep_alive(web: Running) -> None:
    with web.raw() as sock:
        buf = bytearray()
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = recv_response(sock, buf)
            assert status == "HTTP/1.1 200 OK"
            assert headers["connection"] == "keep-alive"
            assert body == BODY
    assert web.served() == 3


def test_pipelined_requests(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        buf = bytearray()
        for _ in range(3):
            assert recv_response(sock, buf)[2] == BODY
        status, _, body = recv_response(sock, buf)
        assert status == "HTTP/1.1 200 OK"
        assert sum(int(line.split()[1]) for line in body.decode().splitlines()) == 4
        assert buf == b""


def test_stats(web: Running) -> None:
    conn = web.connection()
    try:
        for _ in range(3):
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.request("GET", "/stats")
        resp = conn.getresponse()
        assert resp.status == 200
        text = resp.read().decode()
    finally:
        conn.close()
    counts = {}
    for line in text.splitlines():
        name, value = line.split()
        counts[name] = int(value)
    assert set(counts) <= {w.name for w in web.workers}
    assert sum(counts.values()) == 4  # the /stats request counts itself
    assert counts == web.stats.snapshot()


def test_concurrent_clients_use_the_threads(web: Running) -> None:
    errors: list[BaseException] = []

    def client() -> None:
        try:
            conn = web.connection()
            try:
                for _ in range(10):
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    assert resp.status == 200
                    assert resp.read() == BODY
            finally:
                conn.close()
        except BaseException as error:
            errors.append(error)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(PATIENCE * 3)
    assert not errors
    assert web.served() == 80
    assert set(web.stats.snapshot()) <= {w.name for w in web.workers}
    web.wait_idle()


#: Malformed or unsupported requests, each otherwise well-formed (with a
#: Host), and the status the server must answer before closing (RFC 9112).
BAD_REQUESTS = {
    "bad-length": (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", b"400"),
    "negative-length": (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", b"400"),
    "plus-length": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", b"400"),
    "underscore-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3_2\r\n\r\n" + b"a" * 32,
        b"400",
    ),
    "hex-length": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc", b"400"),
    "unicode-digit-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \xb2\r\n\r\nab",
        b"400",
    ),
    "empty-length": (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", b"400"),
    # The smuggling case: the second length would serve the body as a request.
    "differing-lengths": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 32\r\nContent-Length: 0\r\n\r\n"
        b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n",
        b"400",
    ),
    # Identical repeats are refused too (RFC 9112 6.3 lets a server do so).
    "repeated-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"400",
    ),
    "length-list": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", b"400"),
    "length-and-chunked": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"400",
    ),
    "bad-request-line": (b"NONSENSE\r\n\r\n", b"400"),
    "request-line-junk": (b"GET / HTTP/1.1 junk\r\nHost: t\r\n\r\n", b"400"),
    "request-line-double-space": (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", b"400"),
    "request-line-trailing-space": (b"GET / HTTP/1.1 \r\nHost: t\r\n\r\n", b"400"),
    "bad-version": (b"GET / FOO/1.1\r\nHost: t\r\n\r\n", b"400"),
    "http2-version": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", b"505"),
    "header-without-colon": (b"GET / HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", b"400"),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n", b"400"),
    "tab-before-colon": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A\t: b\r\n\r\n", b"400"),
    "space-before-colon-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc",
        b"400",
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n", b"400"),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\x00c\r\n\r\n", b"400"),
    "bare-lf-in-value": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\nX-B: c\r\n\r\n", b"400"),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", b"400"),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
    "gzip-then-chunked": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"501",
    ),
    # The length cannot be known when chunked is not the final coding.
    "gzip-only": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", b"400"),
    "chunked-twice": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"400",
    ),
    "bad-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"400",
    ),
    "signed-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
        b"400",
    ),
    "chunk-without-crlf": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
        b"400",
    ),
    "bad-trailer": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
        b"400",
    ),
    "header-too-large": (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    "header-too-large-unfinished": (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000, b"431"),
    "echo-too-large": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        b"413",
    ),
}


@pytest.mark.parametrize(
    "request_bytes, status", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS)
)
def test_bad_requests_get_an_error_and_close(
    web: Running, request_bytes: bytes, status: bytes
) -> None:
    with web.raw() as sock:
        sock.sendall(request_bytes)
        data = recv_all(sock, web.backend)
    assert data.startswith(b"HTTP/1.1 " + status)
    assert b"\r\nConnection: close" in data
    assert web.served() == 0
    web.wait_idle()


def test_client_disconnects_mid_request(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # no end of head
        deadline = time.monotonic() + PATIENCE
        while web.server.connections != 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    with web.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")
    web.wait_idle()  # both handlers saw EOF and ended
    assert web.served() == 0
    conn = web.connection()  # and the server still serves
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == BODY
    finally:
        conn.close()


def test_chunked_upload_with_http_client(web: Running) -> None:
    body = bytes(range(256)) * 64

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):  # 17 chunks, the last one short
            yield body[start : start + 1000]

    conn = web.connection()
    try:
        conn.request("POST", "/echo", body=pieces(), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == body
        conn.request("PUT", "/", body=iter([b"abc", b"", b"def"]), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
        conn.request("GET", "/")  # the same connection: the bodies were consumed
        assert conn.getresponse().read() == BODY
    finally:
        conn.close()
    assert web.served() == 3


def test_chunked_extensions_trailers_and_pipelining(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"4;name=value;quoted=\"a;b\"\r\nWiki\r\n"
            b"0005 ; ext\r\npedia\r\n"
            b"E\r\n in\r\n\r\nchunks.\r\n"
            b"0\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n"
            b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        buf = bytearray()
        status, _, body = recv_response(sock, buf)
        assert status == "HTTP/1.1 200 OK"
        assert body == b"Wikipedia in\r\n\r\nchunks."
        status, _, body = recv_response(sock, buf)
        assert status == "HTTP/1.1 200 OK"
        assert sum(int(line.split()[1]) for line in body.decode().splitlines()) == 2
    assert web.served() == 2


def test_chunked_body_in_separate_writes(web: Running) -> None:
    with web.raw() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"3\r", b"\nab", b"c\r", b"\n", b"0\r\n", b"\r\n"):
            time.sleep(0.01)  # separate reads on the server (not a handshake)
            sock.sendall(piece)
        status, _, body = recv_response(sock, bytearray())
    assert status == "HTTP/1.1 200 OK"
    assert body == b"abc"


def test_unknown_paths_get_404_and_keep_alive(web: Running) -> None:
    conn = web.connection()
    try:
        for path in ("/nope", "/stats/x", "/index.html", "//", "/echo/"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 404, path
            assert resp.read() == b"Not Found\n"
            assert not resp.will_close
        conn.request("GET", "/?a=b")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
        conn.request("GET", "/stats?verbose=1")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read()
    finally:
        conn.close()


def test_blank_lines_before_a_request_are_ignored(web: Running) -> None:
    # RFC 9112 2.2: e.g. a client's extra CRLF after a POST body.
    with web.raw() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        buf = bytearray()
        for _ in range(2):
            assert recv_response(sock, buf)[2] == BODY


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_peer_resets_are_not_errors(web: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="corosio_py")
    # Mid-head: the handler is parked in a read when the RST comes.
    for _ in range(5):
        sock = web.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        deadline = time.monotonic() + PATIENCE
        while web.server.connections != 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        _reset(sock)
        web.wait_idle()
    # Mid-body: "100 Continue" proves the handler is reading the body.
    sock = web.raw()
    sock.sendall(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(b"partial")
    _reset(sock)
    # Mid-response: many pipelined requests, none of the answers read.
    for _ in range(5):
        sock = web.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2000)
        _reset(sock)
    web.wait_idle()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]
    assert any("ended by the peer" in r.getMessage() for r in caplog.records)
    conn = web.connection()  # and the server still serves
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == BODY
    finally:
        conn.close()


def test_serve_rejects_no_threads() -> None:
    for threads in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            serve("127.0.0.1", 0, threads, None)


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_command_line_rejects_bad_thread_counts(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        http_server_main(["--threads", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err
    assert "at least 1" in err or "not an integer" in err


def test_command_line_help_has_descriptions_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        http_server_main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in ("/stats", "/echo", "404", "(default: 4)", "(default: 8080)", "127.0.0.1)"):
        assert text in out, out


# --------------------------------------------------------------------------
# curl
# --------------------------------------------------------------------------

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--noproxy", "*", "--max-time", "30", *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


@needs_curl
def test_curl_keep_alive(web: Running) -> None:
    url = f"http://127.0.0.1:{web.port}/"
    result = curl("--verbose", url, url + "?again", url + "stats")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.startswith(BODY * 2)
    stats = result.stdout[len(BODY) * 2 :].decode()
    assert sum(int(line.split()[1]) for line in stats.splitlines()) == 3
    # One connection for the three URLs.
    assert re.search(rb"[Rr]e-?using existing", result.stderr), result.stderr.decode()
    assert result.stderr.count(b"Connected to") == 1


@needs_curl
def test_curl_head_and_headers(web: Running) -> None:
    url = f"http://127.0.0.1:{web.port}/"
    result = curl("--head", url)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    head = result.stdout.decode("latin-1")
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Server: corosio_py" in head


@needs_curl
def test_curl_post_expect_100_continue(web: Running) -> None:
    # curl sends "Expect: 100-continue" for bodies over 1 KiB and waits for
    # the interim response (here: up to 10 s) before sending the body.
    url = f"http://127.0.0.1:{web.port}/echo"
    started = time.monotonic()
    result = curl(
        "--expect100-timeout", "10", "-H", "Expect: 100-continue",
        "--data-binary", "x" * 5000, url,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"x" * 5000
    assert elapsed < 8, f"the server did not answer 100-continue ({elapsed:.1f} s)"


# --------------------------------------------------------------------------
# load client
# --------------------------------------------------------------------------


def test_run_load(web: Running, backend: str) -> None:
    figures = run_load("127.0.0.1", web.port, 8, 1.0, backend)
    assert figures["errors"] == 0, figures["first_errors"]
    requests = figures["requests"]
    assert isinstance(requests, int) and requests > 0
    assert web.served() == requests
    web.wait_idle()


# --------------------------------------------------------------------------
# subprocesses: the standalone server and the demo
# --------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_standalone_server_sigint(backend: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "corosio_py.examples.http_server", "--port", "0",
         "--backend", backend],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            first = lines.get(timeout=30).decode()
        except queue.Empty:
            pytest.fail("the server printed no URL within 30 s")
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert match, first
        port = int(match.group(1))
        assert port != 0
        assert f"on 4 threads ({backend})" in first
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == BODY
        finally:
            conn.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err.decode(errors="replace")
        assert b"stopped after 1 requests" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_demo(backend: str, tls: bool) -> None:
    if tls and shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "corosio_py.examples.demo", "--duration", "1",
         "--backend", backend, *(["--tls"] if tls else [])],
        capture_output=True, text=True, cwd=REPO_ROOT, env=_env(), timeout=50, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(rf"^{'HTTPS' if tls else 'HTTP'} server on 127\.0\.0\.1:", out, re.M), out
    assert re.search(r"^requests:\s+[1-9]\d* \(0 errors\)$", out, re.M), out
    assert re.search(r"^requests/s:\s+[\d,]+$", out, re.M), out
    assert "per server thread:" in out
    per_thread = re.findall(
        r"^\s+(server-\d+):\s+(\d+) handlers run,\s+(\d+) requests served$", out, re.M
    )
    chosen = re.search(r"^(\d+) server thread\(s\): (standard|free-threaded) CPython", out, re.M)
    assert chosen, out
    assert len(per_thread) == int(chosen.group(1)), out
    assert sum(int(served) for _, _, served in per_thread) > 0
    assert all(int(handlers) >= 0 for _, handlers, _ in per_thread)
