"""UDPSocket: the intent of upstream's udp_socket tests, on every backend,
against real peers (Python's blocking ``socket``), with 1 and 4 threads."""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import Cancelled, Endpoint, IOContext, StopSource, UDPSocket
from tests.unit.tcp_helpers import context, parked, run, wrap

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

LOOPBACK = ("127.0.0.1", 0)


def _peer() -> socket.socket:
    """A blocking UDP peer on loopback (10 s timeout: never a hang)."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(LOOPBACK)
    peer.settimeout(10.0)
    return peer


def test_closed_socket_state(make_ctx: Any) -> None:
    sock = UDPSocket(make_ctx())
    assert not sock.is_open
    assert sock.fileno() == -1
    with pytest.raises(OSError) as info:
        sock.local_endpoint()
    assert info.value.errno == errno.EBADF
    sock.close()  # idempotent on a never-opened socket
    sock.cancel()


def test_open_bind_close(make_ctx: Any) -> None:
    sock = UDPSocket(make_ctx())
    sock.open()
    assert sock.is_open
    sock.bind(LOOPBACK)
    ep = sock.local_endpoint()
    assert isinstance(ep, Endpoint) and ep.port != 0
    sock.close()
    assert not sock.is_open


def test_bad_arguments(make_ctx: Any) -> None:
    with pytest.raises(TypeError):
        UDPSocket(object())  # type: ignore[arg-type]
    sock = UDPSocket(make_ctx())
    with pytest.raises(ValueError):
        sock.open(socket.AF_UNIX)
    with pytest.raises(TypeError):
        sock.open("inet")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sock.bind(("localhost", 0))


def test_send_to_real_peer_and_back(backend: str) -> None:
    peer = _peer()

    async def main() -> tuple[int, tuple[int, Endpoint], bytes]:
        sock = UDPSocket(context())
        try:
            sent = await sock.send_to(b"ping", peer.getsockname())
            data, addr = peer.recvfrom(64)
            assert data == b"ping"
            assert addr[1] == sock.local_endpoint().port
            peer.sendto(b"pong!", addr)
            buf = bytearray(64)
            got = await sock.recv_from(buf)
            return sent, got, bytes(buf[: got[0]])
        finally:
            sock.close()

    name = peer.getsockname()
    try:
        sent, (n, sender), data = run(backend, main)
    finally:
        peer.close()
    assert sent == 4
    assert n == 5 and data == b"pong!"
    assert (str(sender.address), sender.port) == name


def test_truncated_datagram_reports_what_was_stored(backend: str) -> None:
    async def main() -> list[Any]:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            await b.send_to(b"0123456789", a.local_endpoint())
            await b.send_to(b"next", a.local_endpoint())
            small = bytearray(4)
            first = await a.recv_from(small)
            big = bytearray(64)
            second = await a.recv_from(big)
            # One datagram per receive: the rest of the first is gone.
            return [first[0], bytes(small), second[0], bytes(big[: second[0]])]
        finally:
            a.close()
            b.close()

    assert run(backend, main) == [4, b"0123", 4, b"next"]


def test_datagram_boundaries_and_empty_datagram(backend: str) -> None:
    async def main() -> list[int]:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            await b.connect(a.local_endpoint())
            assert b.remote_endpoint() == a.local_endpoint()
            await b.send(b"short")
            await b.send(b"")
            await b.send(b"a longer message")
            buf = bytearray(64)
            return [(await a.recv_from(buf))[0] for _ in range(3)]
        finally:
            a.close()
            b.close()

    assert run(backend, main) == [5, 0, 16]


def test_connected_recv_and_unconnected_errors(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            with pytest.raises(OSError) as info:
                await a.send(b"x")
            assert info.value.errno == errno.ENOTCONN
            with pytest.raises(OSError) as info:
                await a.recv(bytearray(1))
            assert info.value.errno == errno.ENOTCONN
            b.bind(LOOPBACK)
            await a.connect(b.local_endpoint())
            await b.connect(a.local_endpoint())
            await a.send(memoryview(b"hey"))
            buf = bytearray(8)
            assert await b.recv(buf) == 3
            assert bytes(buf[:3]) == b"hey"
        finally:
            a.close()
            b.close()

    run(backend, main)


def test_icmp_error_surfaces_as_connection_refused(backend: str) -> None:
    # Bind then close: nothing listens on that port any more.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(LOOPBACK)
    dead = probe.getsockname()
    probe.close()

    async def main() -> None:
        sock = UDPSocket(context())
        try:
            await sock.connect(dead)
            await sock.send(b"anyone?")
            with pytest.raises(ConnectionRefusedError):
                await sock.recv(bytearray(8))
        finally:
            sock.close()

    run(backend, main)


def test_cancel_parked_recv_keeps_later_datagram(backend: str) -> None:
    async def main() -> bytes:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            task = cio.spawn(ctx, wrap(a.recv_from(bytearray(8))))
            await parked(a)
            a.cancel()
            with pytest.raises(Cancelled):
                await task
            await b.send_to(b"after", a.local_endpoint())
            buf = bytearray(8)
            n, _ = await a.recv_from(buf)
            return bytes(buf[:n])
        finally:
            a.close()
            b.close()

    assert run(backend, main) == b"after"


def test_every_datagram_of_a_burst_is_received_and_later_ones_wake(backend: str) -> None:
    """A parked receive woken by one readiness report for a burst of three
    datagrams (one empty): the queue is not empty after the first, so the
    next receives must try their system call; once a woken receive found the
    queue empty the next one parks without trying, and a later datagram must
    still wake it (no readiness is lost to the skipped attempt)."""

    async def main() -> list[bytes]:
        ctx = context()
        a = UDPSocket(ctx)
        peer = _peer()
        got: list[bytes] = []

        async def receive(count: int) -> None:
            buf = bytearray(16)
            for _ in range(count):
                n, _ = await a.recv_from(buf)
                got.append(bytes(buf[:n]))

        try:
            a.bind(LOOPBACK)
            target = a.local_endpoint()
            sockaddr = (str(target.address), target.port)
            task = cio.spawn(ctx, receive(3))
            await parked(a)
            for payload in (b"a", b"", b"c"):  # queued before the reactor looks
                peer.sendto(payload, sockaddr)
            await task
            for payload in (b"d", b"e", b"f"):  # one at a time, each into a parked receive
                task = cio.spawn(ctx, receive(1))
                await parked(a)
                peer.sendto(payload, sockaddr)
                await task
            return got
        finally:
            a.close()
            peer.close()

    assert run(backend, main) == [b"a", b"", b"c", b"d", b"e", b"f"]


def test_close_completes_parked_ops_with_cancelled(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a = UDPSocket(ctx)
        a.bind(LOOPBACK)
        task = cio.spawn(ctx, wrap(a.recv_from(bytearray(8))))
        await parked(a)
        a.close()
        with pytest.raises(Cancelled):
            await task
        with pytest.raises(OSError) as info:
            await a.recv_from(bytearray(8))
        assert info.value.errno == errno.EBADF

    run(backend, main)


def test_second_concurrent_recv_is_refused(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a = UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            task = cio.spawn(ctx, wrap(a.recv_from(bytearray(8))))
            await parked(a)
            with pytest.raises(RuntimeError):
                await a.recv_from(bytearray(8))
            task.cancel()
            with pytest.raises(Cancelled):
                await task
        finally:
            a.close()

    run(backend, main)


def test_stopped_token_never_takes_a_datagram(backend: str) -> None:
    async def main() -> int:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            await b.send_to(b"kept", a.local_endpoint())
            src = StopSource()
            src.request_stop()
            with pytest.raises(Cancelled):
                await a.recv_from(bytearray(8), stop_token=src.token)
            n, _ = await a.recv_from(bytearray(8))
            return int(n)
        finally:
            a.close()
            b.close()

    assert run(backend, main) == 4


def test_bad_buffers_fail_at_the_await(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a = UDPSocket(ctx)
        try:
            a.bind(LOOPBACK)
            op = a.recv_from(b"read-only")  # no error at the call
            with pytest.raises(TypeError):
                await op
            with pytest.raises(TypeError):
                await a.send_to(42, a.local_endpoint())
            with pytest.raises(TypeError):
                await a.send_to([b"a", b"b"], a.local_endpoint())
            with pytest.raises(ValueError):
                await a.send_to(b"x", ("not an address", 1))
        finally:
            a.close()

    run(backend, main)


def test_options(make_ctx: Any) -> None:
    ctx: IOContext = make_ctx()
    sock = UDPSocket(ctx)
    # Preset before open: remembered and applied when bind opens the socket.
    sock.reuse_address = True
    sock.reuse_port = True
    sock.broadcast = True
    assert sock.reuse_address and sock.reuse_port and sock.broadcast
    sock.bind(LOOPBACK)
    assert sock.reuse_address and sock.reuse_port and sock.broadcast
    sock.broadcast = False
    assert not sock.broadcast
    sock.receive_buffer_size = 65536
    assert sock.receive_buffer_size >= 65536
    sock.send_buffer_size = 32768
    assert sock.send_buffer_size >= 32768
    with pytest.raises(ValueError):
        sock.send_buffer_size = 0
    with pytest.raises(TypeError):
        sock.receive_buffer_size = "big"  # type: ignore[assignment]
    # Two sockets share one port with SO_REUSEPORT.
    other = UDPSocket(ctx)
    other.reuse_port = True
    other.bind(sock.local_endpoint())
    other.close()
    sock.close()
    with pytest.raises(OSError):
        sock.receive_buffer_size  # noqa: B018


def test_ipv6(backend: str) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main() -> int:
        ctx = context()
        a, b = UDPSocket(ctx), UDPSocket(ctx)
        try:
            a.bind(("::1", 0))
            await b.send_to(b"six", a.local_endpoint())
            n, sender = await a.recv_from(bytearray(8))
            assert sender.address.version == 6
            return int(n)
        finally:
            a.close()
            b.close()

    assert run(backend, main) == 3


def test_echo_on_four_threads_every_datagram_once(backend: str) -> None:
    """Several clients against one echo server, 4 runner threads: every
    datagram comes back exactly once."""
    clients, rounds = 4, 100

    async def main() -> list[list[int]]:
        ctx = context()
        server = UDPSocket(ctx)
        server.bind(LOOPBACK)

        async def echo() -> None:
            buf = bytearray(64)
            for _ in range(clients * rounds):
                n, sender = await server.recv_from(buf)
                await server.send_to(bytes(buf[:n]), sender)

        async def client(i: int) -> list[int]:
            sock = UDPSocket(ctx)
            seen = []
            try:
                await sock.connect(server.local_endpoint())
                buf = bytearray(64)
                for r in range(rounds):
                    await sock.send(f"{i}:{r}".encode())
                    n = await sock.recv(buf)
                    seen.append(int(bytes(buf[:n]).split(b":")[1]))
            finally:
                sock.close()
            return seen

        try:
            echo_task = cio.spawn(ctx, echo())
            result = await cio.gather(*(client(i) for i in range(clients)))
            await echo_task
            return result
        finally:
            server.close()

    for seen in run(backend, main, threads=4):
        assert seen == list(range(rounds))


def test_cancel_versus_datagram_race_loses_nothing(backend: str) -> None:
    """A stop token fired from another thread while a datagram arrives:
    either the datagram is delivered (and the token cancels the next
    operation) or the receive raises Cancelled and the datagram stays
    queued.  Every datagram is received exactly once."""
    rounds = 200
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def main() -> tuple[list[int], int]:
        ctx = context()
        sock = UDPSocket(ctx)
        sock.bind(LOOPBACK)
        target = sock.local_endpoint()
        got: list[int] = []
        cancelled = 0
        buf = bytearray(16)
        try:
            for r in range(rounds):
                src = StopSource()
                go = threading.Event()

                def fire(r: int = r, src: StopSource = src, go: threading.Event = go) -> None:
                    go.wait(10)
                    peer.sendto(r.to_bytes(4, "big"), (str(target.address), target.port))
                    src.request_stop()

                thread = threading.Thread(target=fire)
                thread.start()
                go.set()
                try:
                    n, _ = await sock.recv_from(buf, stop_token=src.token)
                    got.append(int.from_bytes(buf[:n], "big"))
                except Cancelled:
                    cancelled += 1
                thread.join(10)
            # What a cancel left queued is still there, in order.
            while len(got) < rounds:
                n, _ = await sock.recv_from(buf)
                got.append(int.from_bytes(buf[:n], "big"))
        finally:
            sock.close()
        return got, cancelled

    try:
        got, _cancelled = run(backend, main, threads=4)
    finally:
        peer.close()
    assert sorted(got) == list(range(rounds))


def test_socat_peer_echo(backend: str, tmp_path: Any) -> None:
    """socat as an independent UDP echo peer."""
    import shutil
    import subprocess

    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(LOOPBACK)
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen(
        ["socat", f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def main() -> bytes:
        sock = UDPSocket(context())
        buf = bytearray(64)
        try:
            # socat may not be listening yet: resend until it answers.
            for _ in range(100):
                await sock.send_to(b"via socat", ("127.0.0.1", port))
                try:
                    with cio.timeout(0.1):
                        n, _ = await sock.recv_from(buf)
                        return bytes(buf[:n])
                except (TimeoutError, ConnectionRefusedError):
                    continue
            raise AssertionError("socat never answered")
        finally:
            sock.close()

    try:
        assert run(backend, main) == b"via socat"
    finally:
        proc.kill()
        proc.wait(10)


def test_fd_passes_to_child_inheritable_only_when_asked(make_ctx: Any) -> None:
    """Sockets are close-on-exec: a child does not inherit them."""
    sock = UDPSocket(make_ctx())
    sock.bind(LOOPBACK)
    assert not os.get_inheritable(sock.fileno())
    sock.close()
