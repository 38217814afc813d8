"""The HTTP/1.1 example server, its load client and the demo, on every backend.

The server (``corosio_py.examples.http_server.serve``) runs on 4 threads of
one context; it is checked with ``http.client``, raw sockets and ``curl``,
driven by ``http_load.run_load``, and run standalone (and stopped with
SIGINT) and through ``python -m corosio_py.examples.demo`` as subprocesses.
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import shutil
import signal
import socket
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

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 10.0
#: How long a client waits for the server's EOF after the last response.
EOF_TIMEOUT = 3.0
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
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)

    def served(self) -> int:
        return sum(self.stats.snapshot().values())

    def wait_idle(self) -> None:
        """Wait until every connection's handler has finished."""
        deadline = time.monotonic() + TIMEOUT
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
    sock.settimeout(TIMEOUT)
    while True:
        if b"\r\n\r\n" in data:
            sock.settimeout(EOF_TIMEOUT)  # the response is in: now the EOF
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            pytest.fail(f"no EOF within {EOF_TIMEOUT} s; got {bytes(data)!r}")
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
            conn.request("GET", f"/path/{i}?q={i}")
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
        conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/x"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == BODY
        # The body was consumed: the next request on the connection parses.
        conn.request("POST", "/small", body=b"x=1")
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
        sock.sendall(b"56789GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
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
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /stats HTTP/1.1\r\n\r\n")
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
        thread.join(TIMEOUT * 3)
    assert not errors
    assert web.served() == 80
    assert set(web.stats.snapshot()) <= {w.name for w in web.workers}
    web.wait_idle()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET / FOO/1.1\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000, b"431"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"501"),
    ],
    ids=[
        "bad-length",
        "negative-length",
        "bad-request-line",
        "bad-version",
        "header-too-large",
        "header-too-large-unfinished",
        "chunked-body",
    ],
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
        deadline = time.monotonic() + TIMEOUT
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
    result = curl("--verbose", url, url + "again", url + "stats")
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
    url = f"http://127.0.0.1:{web.port}/upload"
    started = time.monotonic()
    result = curl(
        "--expect100-timeout", "10", "-H", "Expect: 100-continue",
        "--data-binary", "x" * 5000, url,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == BODY
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
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
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


def test_demo(backend: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "corosio_py.examples.demo", "--duration", "1",
         "--backend", backend],
        capture_output=True, text=True, cwd=REPO_ROOT, env=_env(), timeout=50, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^requests:\s+[1-9]\d* \(0 errors\)$", out, re.M), out
    assert re.search(r"^requests/s:\s+[\d,]+$", out, re.M), out
    assert "per server thread:" in out
    per_thread = re.findall(
        r"^\s+(server-\d+):\s+(\d+) handlers run,\s+(\d+) requests served$", out, re.M
    )
    assert len(per_thread) == 4, out
    assert sum(int(served) for _, _, served in per_thread) > 0
    assert all(int(handlers) >= 0 for _, handlers, _ in per_thread)
