"""Local (Unix-domain) sockets: the intent of upstream's local_stream_socket,
local_datagram_socket and local_connect_pair tests, on every backend, with
real peers (blocking ``socket``, socat, a child process given descriptors)."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import (
    Cancelled,
    LocalDatagramSocket,
    LocalStreamAcceptor,
    LocalStreamServer,
    LocalStreamSocket,
    StopSource,
    local_socket_pair,
)
from tests.unit.tcp_helpers import context, datagram_pair, parked, run, stream_pair, wrap

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]


@pytest.fixture
def path(tmp_path: Any) -> str:
    return str(tmp_path / "s.sock")


# ---------------------------------------------------------------- stream


def test_stream_closed_state_and_bad_arguments(make_ctx: Any) -> None:
    sock = LocalStreamSocket(make_ctx())
    assert not sock.is_open
    with pytest.raises(OSError) as info:
        sock.remote_endpoint()
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        sock.open(socket.AF_INET)
    with pytest.raises(TypeError):
        sock.bind(42)
    with pytest.raises(ValueError):
        sock.bind("")
    sock.open()
    assert sock.is_open
    sock.close()


def test_acceptor_accept_read_write(backend: str, path: str) -> None:
    async def main() -> list[Any]:
        ctx = context()
        acc = LocalStreamAcceptor(ctx, path)
        client = LocalStreamSocket(ctx)
        try:
            assert acc.local_endpoint() == path
            await client.connect(path)
            server = await acc.accept()
            try:
                await client.write_all(b"hello, local")
                data = await server.read_exactly(12)
                await server.write_all([b"re", b"ply"])
                reply = await client.read_exactly(5)
                client.shutdown(socket.SHUT_WR)
                eof = await server.read_some(bytearray(4))
                return [
                    data,
                    reply,
                    eof,
                    client.remote_endpoint(),
                    server.local_endpoint(),
                    server.remote_endpoint(),
                ]
            finally:
                server.close()
        finally:
            client.close()
            acc.close()

    assert run(backend, main) == [b"hello, local", b"reply", 0, path, path, ""]


def test_connect_errors(backend: str, path: str) -> None:
    async def main() -> None:
        sock = LocalStreamSocket(context())
        try:
            with pytest.raises(FileNotFoundError):
                await sock.connect(path)
            # A socket file nobody listens on.
            stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stale.bind(path)
            stale.close()
            with pytest.raises(ConnectionRefusedError):
                await sock.connect(path)
        finally:
            sock.close()

    run(backend, main)


def test_stale_socket_file_needs_unlink_existing(make_ctx: Any, path: str) -> None:
    ctx = make_ctx()
    first = LocalStreamAcceptor(ctx, path)
    first.close()  # leaves the socket file behind
    with pytest.raises(OSError) as info:
        LocalStreamAcceptor(ctx, path)
    assert info.value.errno == errno.EADDRINUSE
    second = LocalStreamAcceptor(ctx, path, unlink_existing=True)
    second.close()
    # A regular file of that name is never deleted.
    os.unlink(path)
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(OSError):
        LocalStreamAcceptor(ctx, path, unlink_existing=True)
    with open(path) as f:
        assert f.read() == "keep me"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract names are Linux-only")
def test_abstract_name(backend: str) -> None:
    name = f"\0corosio-test-{os.getpid()}-{backend}"

    async def main() -> bytes:
        ctx = context()
        acc = LocalStreamAcceptor(ctx, name)
        client = LocalStreamSocket(ctx)
        try:
            assert acc.local_endpoint() == name
            await client.connect(name)
            server = await acc.accept()
            await client.write_all(b"abs")
            data = await server.read_exactly(3)
            server.close()
            return data
        finally:
            client.close()
            acc.close()

    assert run(backend, main) == b"abs"


def test_blocking_peer_and_socat(backend: str, path: str, tmp_path: Any) -> None:
    """A plain blocking client, then socat, talk to our acceptor."""
    result: list[bytes] = []

    def blocking_client() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(path)
            c.sendall(b"from blocking")
            c.shutdown(socket.SHUT_WR)
            result.append(c.recv(64))

    async def main() -> list[bytes]:
        ctx = context()
        acc = LocalStreamAcceptor(ctx, path)
        got = []
        try:
            thread = threading.Thread(target=blocking_client)
            thread.start()
            server = await acc.accept()
            got.append(await server.read_exactly(13))
            await server.write_all(b"ack")
            server.close()
            thread.join(10)  # it has its reply already: no context work needed
            if shutil.which("socat"):
                proc = subprocess.Popen(
                    ["socat", "-", f"UNIX-CONNECT:{path}"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert proc.stdin is not None
                proc.stdin.write(b"from socat")
                proc.stdin.close()
                server = await acc.accept()
                data = bytearray()
                buf = bytearray(64)
                while n := await server.read_some(buf):
                    data += buf[:n]
                got.append(bytes(data))
                server.close()
                proc.wait(10)
                assert proc.stdout is not None
                proc.stdout.close()
            return got
        finally:
            acc.close()

    got = run(backend, main)
    assert got[0] == b"from blocking"
    assert result == [b"ack"]
    if len(got) > 1:
        assert got[1] == b"from socat"


def test_server_serves_and_stops(backend: str, path: str) -> None:
    async def handler(sock: LocalStreamSocket) -> None:
        data = await sock.read_exactly(4)
        await sock.write_all(data.upper())

    async def main() -> list[bytes]:
        ctx = context()
        server = LocalStreamServer(ctx, path, handler)
        server.start()
        replies = []
        try:
            assert server.local_endpoint() == path
            for word in (b"abcd", b"wxyz"):
                client = LocalStreamSocket(ctx)
                try:
                    await client.connect(path)
                    await client.write_all(word)
                    replies.append(await client.read_exactly(4))
                finally:
                    client.close()
        finally:
            server.stop()
        return replies

    assert run(backend, main, threads=4) == [b"ABCD", b"WXYZ"]


def test_accept_cancelled_leaves_connection_in_backlog(backend: str, path: str) -> None:
    async def main() -> bytes:
        ctx = context()
        acc = LocalStreamAcceptor(ctx, path)
        client = LocalStreamSocket(ctx)
        try:
            task = cio.spawn(ctx, acc.accept())
            await parked(acc)
            acc.cancel()
            with pytest.raises(Cancelled):
                await task
            await client.connect(path)
            await client.write_all(b"q")
            server = await acc.accept()
            data = await server.read_exactly(1)
            server.close()
            return data
        finally:
            client.close()
            acc.close()

    assert run(backend, main) == b"q"


# ---------------------------------------------------------------- descriptors


def test_send_and_receive_descriptors(backend: str) -> None:
    async def main() -> bytes:
        ctx = context()
        a, b = stream_pair(ctx)
        r, w = os.pipe()
        try:
            assert await a.send_fds(b"F", [w]) == 1
            buf = bytearray(8)
            n, fds = await b.recv_fds(buf, 4)
            assert n == 1 and bytes(buf[:1]) == b"F" and len(fds) == 1
            assert not os.get_inheritable(fds[0])
            os.write(fds[0], b"through the copy")
            os.close(fds[0])
            return os.read(r, 64)
        finally:
            for fd in (r, w):
                os.close(fd)
            a.close()
            b.close()

    assert run(backend, main) == b"through the copy"


def test_descriptor_arguments(backend: str) -> None:
    async def main() -> None:
        a, b = stream_pair(context())
        try:
            with pytest.raises(ValueError):
                await a.send_fds(b"", [0])
            with pytest.raises(TypeError):
                await a.send_fds(b"x", ["0"])
            with pytest.raises(ValueError):
                await a.send_fds(b"x", [-1])
            with pytest.raises(ValueError):
                await b.recv_fds(bytearray(1), -1)
            # No descriptors attached: just the data.
            await a.send_fds(b"x", [])
            assert await b.recv_fds(bytearray(1), 2) == (1, [])
        finally:
            a.close()
            b.close()

    run(backend, main)


_CHILD = textwrap.dedent(
    """
    import socket, sys, os
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(sys.argv[1])
    msg, fds, _, _ = socket.recv_fds(c, 16, 4)
    os.write(fds[0], b"written by the child: " + msg)
    """
)


def test_descriptor_passed_to_child_process(backend: str, path: str) -> None:
    """A child process connects, receives our pipe's write end, writes to it."""

    async def main() -> bytes:
        ctx = context()
        acc = LocalStreamAcceptor(ctx, path)
        r, w = os.pipe()
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, path])
        try:
            conn = await acc.accept()
            try:
                await conn.send_fds(b"hi", [w])
            finally:
                conn.close()
            os.close(w)
            w = -1
            await cio.sleep(0)
            assert proc.wait(10) == 0
            return os.read(r, 64)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
            acc.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    assert run(backend, main) == b"written by the child: hi"


# ---------------------------------------------------------------- datagram


def test_datagram_send_to_recv_from(backend: str, tmp_path: Any) -> None:
    p1, p2 = str(tmp_path / "d1"), str(tmp_path / "d2")

    async def main() -> list[Any]:
        ctx = context()
        s1, s2 = LocalDatagramSocket(ctx), LocalDatagramSocket(ctx)
        try:
            s1.bind(p1)
            s2.bind(p2)
            assert await s1.send_to(b"dgram to path", p2) == 13
            buf = bytearray(64)
            n, sender = await s2.recv_from(buf)
            # An unbound sender is unnamed.
            anon = LocalDatagramSocket(ctx)
            await anon.send_to(b"?", p2)
            _, nobody = await s2.recv_from(buf)
            anon.close()
            return [n, sender, nobody, s1.local_endpoint()]
        finally:
            s1.close()
            s2.close()

    assert run(backend, main) == [13, p1, "", p1]


def test_datagram_pair_boundaries_truncation_and_no_read_exactly(backend: str) -> None:
    async def main() -> list[Any]:
        a, b = datagram_pair(context())
        try:
            assert isinstance(a, LocalDatagramSocket)
            assert not hasattr(a, "read_exactly")
            await a.send(b"short")
            await a.send(b"a much longer message")
            buf = bytearray(64)
            first = await b.recv(buf)
            small = bytearray(6)
            second = await b.recv(small)
            return [first, second, bytes(small)]
        finally:
            a.close()
            b.close()

    assert run(backend, main) == [5, 6, b"a much"]


def test_datagram_bind_failure_and_real_peer(backend: str, tmp_path: Any) -> None:
    p = str(tmp_path / "real")

    async def main() -> bytes:
        sock = LocalDatagramSocket(context())
        try:
            with pytest.raises(FileNotFoundError):
                sock.bind(str(tmp_path / "missing-dir" / "s"))
            sock.bind(p)
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
                peer.sendto(b"from a plain socket", p)
            buf = bytearray(64)
            n, _ = await sock.recv_from(buf)
            return bytes(buf[:n])
        finally:
            sock.close()

    assert run(backend, main) == b"from a plain socket"


def test_socket_pair_arguments(make_ctx: Any) -> None:
    ctx = make_ctx()
    with pytest.raises(TypeError):
        local_socket_pair(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        local_socket_pair(ctx, socket.SOCK_RAW)
    a, b = local_socket_pair(ctx)
    assert isinstance(a, LocalStreamSocket) and isinstance(b, LocalStreamSocket)
    assert a.local_endpoint() == "" and b.remote_endpoint() == ""
    a.close()
    b.close()


def test_pair_works_with_blocking_peer_in_child(backend: str) -> None:
    """One end of a pair is handed to a child process as a plain fd."""

    async def main() -> bytes:
        ctx = context()
        mine, theirs = socket.socketpair()
        ours = LocalStreamSocket._adopt(ctx, mine, "")
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import os,sys; fd=int(sys.argv[1]); os.write(fd, os.read(fd, 64).upper())",
                str(theirs.fileno()),
            ],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        try:
            await ours.write_all(b"echo me")
            data = await ours.read_exactly(7)
            assert child.wait(10) == 0
            return data
        finally:
            ours.close()
            if child.poll() is None:
                child.kill()
                child.wait(10)

    assert run(backend, main) == b"ECHO ME"


def test_cancel_versus_completion_race_on_pair(backend: str) -> None:
    """Stop tokens fired from another thread while bytes arrive on a local
    stream: every byte is read exactly once, in order (4 runner threads)."""
    rounds = 200

    async def main() -> bytes:
        ctx = context()
        a, b = stream_pair(ctx)
        got = bytearray()
        buf = bytearray(1)
        try:
            for r in range(rounds):
                src = StopSource()

                def fire(r: int = r, src: StopSource = src) -> None:
                    os.write(a.fileno(), bytes([r % 256]))
                    src.request_stop()

                thread = threading.Thread(target=fire)
                thread.start()
                try:
                    n = await b.read_some(buf, stop_token=src.token)
                    got += buf[:n]
                except Cancelled:
                    pass
                thread.join(10)
            while len(got) < rounds:
                n = await b.read_some(buf)
                got += buf[:n]
        finally:
            a.close()
            b.close()
        return bytes(got)

    assert run(backend, main, threads=4) == bytes(r % 256 for r in range(rounds))


def test_close_cancels_parked_read_on_pair(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = stream_pair(ctx)
        task = cio.spawn(ctx, wrap(b.read_some(bytearray(1))))
        await parked(b)
        b.close()
        with pytest.raises(Cancelled):
            await task
        a.close()

    run(backend, main)
