"""TLSStream and TCPServer(ssl=) on every backend, against corosio_py itself
and against Python's blocking ``ssl`` sockets (a peer nobody here wrote).

Handshake and session facts (version, cipher, ALPN, SNI, peer certificate),
mutual TLS, a wrong host name, an untrusted CA, TLS 1.2 and 1.3, full-duplex
transfers checked by sha256 on 1 and 4 runner threads, close_notify both
ways, EOF without close_notify, garbage instead of TLS, and misuse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, StopSource, TCPServer, TCPSocket, TLSStream
from corosio_py.testing import socket_pair
from tests.unit.limits import JOIN
from tests.unit.tls_helpers import (
    NO_OPENSSL,
    Certs,
    handshake_pair,
    have_openssl,
    make_certs,
    read_all,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.usefixtures("fd_leak_check"),
    pytest.mark.skipif(not have_openssl(), reason=NO_OPENSSL),
]



@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


def ctx_of_task() -> corosio_py.IOContext:
    return corosio_py.current_executor().context


def run(backend: str, coro: Any, threads: int = 1) -> Any:
    return corosio_py.run(coro, threads=threads, backend=backend)


# --------------------------------------------------------------------------
# corosio_py on both ends
# --------------------------------------------------------------------------


def test_handshake_facts_and_echo(backend: str, certs: Certs) -> None:
    server_ctx = certs.server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = certs.client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])

    async def main() -> None:
        client, server = await handshake_pair(ctx_of_task(), client_ctx, server_ctx)
        try:
            assert client.version() == server.version() == "TLSv1.3"
            cipher = client.cipher()
            assert cipher is not None and cipher[1] == "TLSv1.3"
            assert client.selected_alpn_protocol() == "http/1.1"
            assert server.selected_alpn_protocol() == "http/1.1"
            assert client.server_hostname == "localhost"
            assert not client.server_side and server.server_side
            peer = client.getpeercert()
            assert ("DNS", "localhost") in peer["subjectAltName"]
            assert isinstance(client.getpeercert(binary_form=True), bytes)
            assert server.getpeercert() is None  # no client certificate asked
            assert isinstance(client.next_layer, TCPSocket)
            await client.write_all(b"ping")
            assert await server.read_exactly(4) == b"ping"
            await server.write_all([b"po", memoryview(b"n"), bytearray(b"g")])
            assert await client.read_exactly(4) == b"pong"
            await client.handshake()  # a no-op once done
        finally:
            client.close()
            server.close()
        assert not client.is_open and not client.next_layer.is_open

    run(backend, main())


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("threads", [1, 4])
def test_full_duplex_sha256(backend: str, certs: Certs, version: str, threads: int) -> None:
    """Both ends write 1.5 MB and read the other's at once; sha256 match."""
    tls_version = getattr(ssl.TLSVersion, version)
    client_ctx = certs.client_context()
    client_ctx.maximum_version = tls_version
    client_ctx.minimum_version = tls_version
    size = 1_500_000
    up, down = os.urandom(size), os.urandom(size)

    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, client_ctx, certs.server_context())
        try:
            assert client.version() == version.replace("_", ".")

            async def pump(stream: TLSStream, data: bytes) -> None:
                view = memoryview(data)
                for at in range(0, len(data), 70_000):  # odd sizes: records split
                    await stream.write_all(view[at : at + 70_000])

            tasks = [
                corosio_py.spawn(ctx, pump(client, up)),
                corosio_py.spawn(ctx, pump(server, down)),
                corosio_py.spawn(ctx, read_all(server, size, 50_000)),
                corosio_py.spawn(ctx, read_all(client, size, 300_000)),
            ]
            results = await corosio_py.gather(*tasks)
            assert hashlib.sha256(results[2]).digest() == hashlib.sha256(up).digest()
            assert hashlib.sha256(results[3]).digest() == hashlib.sha256(down).digest()
        finally:
            client.close()
            server.close()

    run(backend, main(), threads)


def test_shutdown_close_notify_both_ways(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            await client.write_all(b"last words")

            async def serve() -> bytes:
                data = await server.read_exactly(10)
                assert await server.read_some(bytearray(10)) == 0  # the close_notify
                await server.shutdown()
                return data

            peer = corosio_py.spawn(ctx, serve())
            await client.shutdown()
            assert await peer == b"last words"
            await client.shutdown()  # a second call returns at once
            assert client.next_layer.is_open  # the socket stays open
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_shutdown_with_read_pending(backend: str, certs: Certs) -> None:
    """A read pending on another task gets the data and the end; shutdown
    waits for the peer's close_notify through it."""

    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            async def reader() -> bytes:
                out = bytearray()
                buf = bytearray(100)
                while n := await client.read_some(buf):
                    out += buf[:n]
                return bytes(out)

            pending = corosio_py.spawn(ctx, reader())
            await corosio_py.sleep(0.01)
            closing = corosio_py.spawn(ctx, client.shutdown())
            await server.write_all(b"tail")
            assert await server.read_some(bytearray(10)) == 0
            await server.shutdown()
            await closing
            assert await pending == b"tail"
        finally:
            client.close()
            server.close()

    run(backend, main(), threads=4)


def test_eof_without_close_notify(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            await server.write_all(b"abc")
            server.next_layer.shutdown(socket.SHUT_RDWR)
            assert await client.read_exactly(3) == b"abc"
            with pytest.raises(ssl.SSLEOFError):
                await client.read_some(bytearray(10))
            with pytest.raises(ssl.SSLEOFError):
                await client.read_some(bytearray(10))  # and again
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_eof_accepted_when_the_context_says_so(backend: str, certs: Certs) -> None:
    client_ctx = certs.client_context()
    client_ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF

    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, client_ctx, certs.server_context())
        try:
            server.next_layer.shutdown(socket.SHUT_RDWR)
            assert await client.read_some(bytearray(10)) == 0
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_wrong_host_name(backend: str, certs: Certs) -> None:
    async def main() -> None:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await handshake_pair(
                ctx_of_task(), certs.client_context(), certs.server_context(), "example.com"
            )
        assert "example.com" in str(info.value) or "match" in str(info.value)

    run(backend, main())


def test_untrusted_ca(backend: str, certs: Certs) -> None:
    async def main() -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake_pair(
                ctx_of_task(), certs.client_context(trust=certs.other_ca), certs.server_context()
            )

    run(backend, main())


def test_mutual_tls(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(
            ctx, certs.client_context(with_cert=True), certs.server_context(require_client=True)
        )
        try:
            subject = dict(x[0] for x in server.getpeercert()["subject"])
            assert subject["commonName"] == "client"
            await client.write_all(b"hi")
            assert await server.read_exactly(2) == b"hi"
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_mutual_tls_without_client_certificate(backend: str, certs: Certs) -> None:
    """TLS 1.3: the client's handshake completes; the server's fails and its
    alert reaches the client's first read."""

    async def main() -> None:
        ctx = ctx_of_task()
        a, b = socket_pair(ctx)
        client = TLSStream(a, certs.client_context(), server_hostname="localhost")
        server = TLSStream(b, certs.server_context(require_client=True), server_side=True)
        try:
            other = corosio_py.spawn(ctx, server.handshake())
            await client.handshake()
            with pytest.raises(ssl.SSLError):
                await other
            with pytest.raises(ssl.SSLError) as info:
                await client.read_some(bytearray(10))
            assert "certificate" in str(info.value).lower()
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_garbage_is_an_ssl_error(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        a, b = socket_pair(ctx)
        server = TLSStream(b, certs.server_context(), server_side=True)
        try:
            await a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ssl.SSLError):
                await server.handshake()
        finally:
            a.close()
            server.close()

    run(backend, main())


def test_reads_use_plaintext_and_records_already_received(backend: str, certs: Certs) -> None:
    """Several records that arrived in one segment, read through a buffer
    smaller than a record: every byte comes without more input from the
    peer (which sends nothing until it gets the reply)."""
    records = [bytes([65 + i]) * (100 + i) for i in range(5)]
    total = sum(map(len, records))

    async def main() -> None:
        client, server = await handshake_pair(
            ctx_of_task(), certs.client_context(), certs.server_context()
        )
        try:
            for record in records:  # all on the wire before the server reads
                await client.write_all(record)
            got = bytearray()
            small = bytearray(7)
            while len(got) < total // 2:
                n = await server.read_some(small)
                got += small[:n]
            got += await read_all(server, total - len(got))
            assert bytes(got) == b"".join(records)
            await server.write_all(b"ok")
            assert await client.read_exactly(2) == b"ok"
            await client.write_all(b"more")  # input after the reads ran dry
            assert await server.read_exactly(4) == b"more"
        finally:
            client.close()
            server.close()

    run(backend, main())


def test_implicit_handshake(backend: str, certs: Certs) -> None:
    """read_some/write_some drive the handshake when it was not awaited."""

    async def main() -> None:
        ctx = ctx_of_task()
        a, b = socket_pair(ctx)
        client = TLSStream(a, certs.client_context(), server_hostname="localhost")
        server = TLSStream(b, certs.server_context(), server_side=True)
        try:
            reading = corosio_py.spawn(ctx, server.read_exactly(5))
            assert await client.write_some(b"hello") == 5
            assert await reading == b"hello"
        finally:
            client.close()
            server.close()

    run(backend, main(), threads=4)


# --------------------------------------------------------------------------
# misuse
# --------------------------------------------------------------------------


def test_bad_arguments(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        a, b = socket_pair(ctx)
        try:
            with pytest.raises(TypeError):
                TLSStream(a, "not a context")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                TLSStream(plain, certs.client_context())  # a plain socket
            with pytest.raises(ValueError):
                TLSStream(a, certs.client_context())  # check_hostname without a name
            stream = TLSStream(a, certs.client_context(), server_hostname="localhost")
            with pytest.raises(TypeError):
                await stream.read_some(b"read-only")
            with pytest.raises(TypeError):
                await stream.write_some(12)
            with pytest.raises(TypeError):
                await stream.read_some(bytearray(1), stop_token=object())  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await stream.read_exactly(-1)
            assert await stream.read_some(bytearray()) == 0
            assert await stream.write_some(b"") == 0
            source = StopSource()
            source.request_stop()
            with pytest.raises(Cancelled):
                await stream.handshake(stop_token=source.token)
            with pytest.raises(Cancelled):
                await stream.read_some(bytearray(1), stop_token=source.token)
            stream.close()
            stream.close()  # idempotent
            with pytest.raises(OSError) as info:
                await stream.read_some(bytearray(1))
            assert info.value.errno == 9
            with pytest.raises(OSError):
                await stream.write_all(b"x")
            with pytest.raises(OSError):
                await stream.handshake()
        finally:
            a.close()
            b.close()

    plain = socket.socket()
    try:
        run(backend, main())
    finally:
        plain.close()


def test_second_concurrent_read_or_write(backend: str, certs: Certs) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            first = corosio_py.spawn(ctx, client.read_some(bytearray(10)))
            await corosio_py.sleep(0.01)
            with pytest.raises(RuntimeError):
                await client.read_some(bytearray(10))
            await server.write_all(b"x")
            assert await first == 1
        finally:
            client.close()
            server.close()

    run(backend, main())


# --------------------------------------------------------------------------
# Python's blocking ssl sockets as the peer
# --------------------------------------------------------------------------


def _blocking_client(port: int, certs: Certs, payload: bytes, **kw: Any) -> bytes:
    context = certs.client_context(**kw)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=JOIN) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(payload)
        got = bytearray()
        while len(got) < len(payload):
            chunk = tls.recv(65536)
            if not chunk:
                break
            got += chunk
        tls.unwrap()  # close_notify both ways
    return bytes(got)


@pytest.mark.parametrize("threads", [1, 4])
def test_tcp_server_with_python_ssl_clients(backend: str, certs: Certs, threads: int) -> None:
    """TCPServer(ssl=): four blocking ssl clients at once, echo checked,
    close_notify answered; a plain-text client only ends its connection."""
    payloads = [os.urandom(200_000 + i) for i in range(4)]
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    async def echo(stream: TLSStream) -> None:
        assert isinstance(stream, TLSStream) and stream.version() is not None
        buf = bytearray(65536)
        while n := await stream.read_some(buf):
            await stream.write_all(memoryview(buf)[:n])
        await stream.shutdown()

    async def main() -> None:
        ctx = ctx_of_task()
        server = TCPServer(ctx, ("127.0.0.1", 0), echo, ssl=certs.server_context())
        server.start()
        port = server.local_endpoint().port

        def plain() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=JOIN) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while s.recv(100):  # an alert, then EOF: never a hang
                    pass

        def client(i: int) -> None:
            try:
                results[i] = _blocking_client(port, certs, payloads[i])
            except BaseException as exc:
                errors.append(exc)

        try:
            workers = [threading.Thread(target=plain)]
            workers += [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                await corosio_py.sleep(0.01)
        finally:
            server.stop()

    run(backend, main(), threads)
    assert not errors, errors
    assert [results[i] for i in range(4)] == payloads


def test_tcp_server_handshake_failure_is_debug_only(
    backend: str, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    served = []

    async def handler(stream: TLSStream) -> None:
        served.append(stream)
        await stream.write_all(b"ok")

    async def main() -> None:
        ctx = ctx_of_task()
        server = TCPServer(ctx, ("127.0.0.1", 0), handler, ssl=certs.server_context())
        server.start()
        port = server.local_endpoint().port

        def untrusting() -> None:
            context = certs.client_context(trust=certs.other_ca)
            with (
                socket.create_connection(("127.0.0.1", port), timeout=JOIN) as raw,
                pytest.raises(ssl.SSLCertVerificationError),
            ):
                context.wrap_socket(raw, server_hostname="localhost")

        def good() -> bytes:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=JOIN) as raw,
                certs.client_context().wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                return tls.recv(10)

        try:
            box: list[Any] = []

            def client() -> None:
                untrusting()
                box.append(good())

            worker = threading.Thread(target=client)
            worker.start()
            while worker.is_alive():
                await corosio_py.sleep(0.01)
            assert box == [b"ok"]
            while server.connections:
                await corosio_py.sleep(0.01)
        finally:
            server.stop()

    with caplog.at_level(logging.DEBUG, logger="corosio_py"):
        run(backend, main())
    assert len(served) == 1
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert any("handshake" in r.getMessage() for r in caplog.records)


def test_client_against_python_ssl_server(backend: str, certs: Certs) -> None:
    """TLSStream over TCPSocket.connect to a blocking ssl server (mutual TLS)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = certs.server_context(require_client=True)
    seen: dict[str, Any] = {}

    def serve() -> None:
        listener.settimeout(JOIN)
        raw, _ = listener.accept()
        raw.settimeout(JOIN)
        with context.wrap_socket(raw, server_side=True) as tls:
            seen["client"] = tls.getpeercert()
            data = b""
            while len(data) < 100_000:
                data += tls.recv(65536)
            tls.sendall(hashlib.sha256(data).digest())
            seen["data"] = data
            tls.unwrap()

    peer = threading.Thread(target=serve)
    peer.start()

    async def main() -> bytes:
        sock = TCPSocket(ctx_of_task())
        await sock.connect(("127.0.0.1", port))
        stream = TLSStream(sock, certs.client_context(with_cert=True), server_hostname="localhost")
        try:
            await stream.handshake()
            await stream.write_all(b"z" * 100_000)
            digest = await stream.read_exactly(32)
            await stream.shutdown()
            return digest
        finally:
            stream.close()

    try:
        digest = run(backend, main())
    finally:
        peer.join(JOIN)
        listener.close()
    assert digest == hashlib.sha256(b"z" * 100_000).digest()
    assert seen["data"] == b"z" * 100_000
    assert dict(x[0] for x in seen["client"]["subject"])["commonName"] == "client"


def test_local_stream_server_with_ssl(backend: str, certs: Certs, tmp_path: Path) -> None:
    """LocalStreamServer(ssl=): a handshaken TLSStream per Unix-socket connection."""
    path = str(tmp_path / "tls.sock")
    payload = os.urandom(100_000)
    got: list[bytes] = []

    async def echo(stream: TLSStream) -> None:
        assert isinstance(stream, TLSStream) and stream.version() is not None
        buf = bytearray(65536)
        while n := await stream.read_some(buf):
            await stream.write_all(memoryview(buf)[:n])
        await stream.shutdown()

    def client() -> None:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(JOIN)
            raw.connect(path)
            with certs.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(payload)
                data = bytearray()
                while len(data) < len(payload):
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                got.append(bytes(data))
                tls.unwrap()

    async def main() -> None:
        ctx = ctx_of_task()
        server = corosio_py.LocalStreamServer(ctx, path, echo, ssl=certs.server_context())
        server.start()
        try:
            worker = threading.Thread(target=client)
            worker.start()
            while worker.is_alive():
                await corosio_py.sleep(0.01)
        finally:
            server.stop()

    run(backend, main(), 2)
    assert got == [payload]
