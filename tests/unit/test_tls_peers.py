"""TLSStream against peers nobody here wrote: ``openssl s_client`` and
``openssl s_server`` subprocesses (TLS 1.3 key updates and TLS 1.2
renegotiation arriving mid-read), ``curl --cacert`` and ``wrk`` against the
HTTPS example server.  Every backend.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

import corosio_py
from corosio_py import TCPServer, TCPSocket, TLSStream
from corosio_py.examples.http_server import BODY, serve, shutdown, tls_context
from tests.unit.limits import JOIN
from tests.unit.tcp_helpers import free_port
from tests.unit.tls_helpers import NO_OPENSSL, Certs, have_openssl, make_certs

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("fd_leak_check"),
    pytest.mark.skipif(not have_openssl(), reason=NO_OPENSSL),
]



@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


class Peer:
    """An ``openssl`` subprocess whose output is collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["openssl", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._out = bytearray()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._collect, args=(self.proc.stdout,))
        self._reader.start()

    def _collect(self, stream: IO[bytes]) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            with self._cond:
                self._out += chunk
                self._cond.notify_all()

    def output(self) -> bytes:
        with self._cond:
            return bytes(self._out)

    def wait_for(self, text: bytes, count: int = 1) -> None:
        """Block (bounded) until ``text`` was printed ``count`` times."""
        deadline = time.monotonic() + JOIN
        with self._cond:
            while self._out.count(text) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"openssl never printed {text!r}:\n{self._out.decode()}")
                self._cond.wait(min(left, 0.2))

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


async def _wait_thread(fn: Any) -> None:
    """Run blocking ``fn`` on a plain thread; poll until it ends."""
    box: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            box.append(exc)

    worker = threading.Thread(target=body)
    worker.start()
    while worker.is_alive():
        await corosio_py.sleep(0.005)
    if box:
        raise box[0]


async def _echo(stream: TLSStream) -> None:
    buf = bytearray(65536)
    while n := await stream.read_some(buf):
        await stream.write_all(memoryview(buf)[:n])


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_against_tls_server(backend: str, certs: Certs, version: str) -> None:
    """s_client talks to TCPServer(ssl=); with TLS 1.3 it sends a key update
    that asks for one back ("K"), which the server's pending read answers."""

    async def main() -> None:
        server = TCPServer(
            corosio_py.current_executor().context, ("127.0.0.1", 0), _echo,
            ssl=certs.server_context(),
        )
        server.start()
        port = server.local_endpoint().port
        peer = Peer(
            "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(certs.ca),
            "-servername", "localhost", "-verify_return_error", version,
        )
        try:
            def talk() -> None:
                peer.send(b"first line\n")
                peer.wait_for(b"first line")  # echoed (stdin is not printed)
                if version == "-tls1_3":
                    peer.send(b"K\n")
                    peer.wait_for(b"KEYUPDATE")
                peer.send(b"second line\n")
                peer.wait_for(b"second line")

            await _wait_thread(talk)
            out = peer.output()
            assert b"Verify return code: 0 (ok)" in out
            assert (b"TLSv1.3" if version == "-tls1_3" else b"TLSv1.2") in out
        finally:
            peer.close()
            server.stop()

    corosio_py.run(main(), threads=2, backend=backend)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_client_against_s_server(backend: str, certs: Certs, version: str) -> None:
    """TLSStream connects to s_server; mid-read the server renegotiates
    (TLS 1.2, "R") or updates its keys asking for ours ("K", TLS 1.3)."""
    port = free_port()
    peer = Peer(
        "s_server", "-accept", str(port), "-cert", str(certs.server_cert),
        "-key", str(certs.server_key), version,
    )

    async def main() -> None:
        ctx = corosio_py.current_executor().context
        sock = TCPSocket(ctx)
        deadline = time.monotonic() + JOIN
        while True:
            try:
                await sock.connect(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                sock.close()
                await corosio_py.sleep(0.05)
        stream = TLSStream(sock, certs.client_context(), server_hostname="localhost")
        try:
            await stream.handshake()
            assert stream.version() == ("TLSv1.2" if version == "-tls1_2" else "TLSv1.3")

            async def read_line() -> bytes:
                line = bytearray()
                while not line.endswith(b"\n"):
                    line += await stream.read_exactly(1)
                return bytes(line)

            await stream.write_all(b"hello server\n")
            await _wait_thread(lambda: peer.wait_for(b"hello server"))
            peer.send(b"hello client\n")
            assert await read_line() == b"hello client\n"
            reading = corosio_py.spawn(ctx, read_line())
            await corosio_py.sleep(0.05)  # the read is pending when the peer acts
            peer.send(b"R\n" if version == "-tls1_2" else b"K\n")
            # A write while the handshake messages fly (renegotiation: the
            # write may need the peer's answer first).
            await stream.write_all(b"during\n")
            await _wait_thread(lambda: peer.wait_for(b"during"))
            peer.send(b"after\n")
            assert await reading == b"after\n"
            await stream.write_all(b"bye\n")
            await _wait_thread(lambda: peer.wait_for(b"bye"))
        finally:
            stream.close()

    try:
        corosio_py.run(main(), threads=2, backend=backend)
    finally:
        peer.proc.terminate()
        peer.close()
    # s_server says so when the renegotiation or the key update finished.
    assert b"SSL_do_handshake -> 1" in peer.output(), peer.output().decode()


@pytest.fixture
def https_example(backend: str, certs: Certs) -> Any:
    ctx, server, _stats, workers = serve(
        "127.0.0.1", 0, 4, backend, tls=tls_context(str(certs.server_cert), str(certs.server_key))
    )
    try:
        yield server.local_endpoint().port
    finally:
        shutdown(ctx, server, workers)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_against_the_https_example(certs: Certs, https_example: int) -> None:
    port = https_example
    base = f"https://localhost:{port}"
    resolve = f"localhost:{port}:127.0.0.1"
    run = subprocess.run(
        ["curl", "-sS", "--cacert", str(certs.ca), "--resolve", resolve,
         f"{base}/", f"{base}/echo", "-d", "posted body", "--http1.1"],
        capture_output=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == BODY + b"posted body"
    # Not trusted: curl refuses, the server carries on.
    refused = subprocess.run(
        ["curl", "-sS", "--resolve", resolve, f"{base}/"],
        capture_output=True, timeout=60, check=False,
    )
    assert refused.returncode != 0
    again = subprocess.run(
        ["curl", "-sS", "--cacert", str(certs.ca), "--resolve", resolve, f"{base}/"],
        capture_output=True, timeout=60, check=False,
    )
    assert again.stdout == BODY


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_over_https(https_example: int) -> None:
    run = subprocess.run(
        ["wrk", "-t1", "-c8", "-d1s", f"https://127.0.0.1:{https_example}/"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Socket errors" not in run.stdout, run.stdout
    assert "Non-2xx" not in run.stdout, run.stdout
    assert " requests in " in run.stdout
