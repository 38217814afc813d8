"""Readiness waits, connect_any and socket options: the intent of upstream's
wait, connect and socket_option tests, on every backend."""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import (
    Cancelled,
    LocalStreamAcceptor,
    LocalStreamSocket,
    StopSource,
    TCPAcceptor,
    TCPServer,
    TCPSocket,
    UDPSocket,
    WaitType,
    connect_any,
    local_socket_pair,
)
from corosio_py.testing import socket_pair
from tests.unit.tcp_helpers import context, fill_send_buffer, parked, run, stream_pair, wrap

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

LOOPBACK = ("127.0.0.1", 0)


# ---------------------------------------------------------------- wait


def test_wait_read_consumes_nothing(backend: str) -> None:
    async def main() -> bytes:
        a, b = socket_pair(context())
        try:
            task = cio.spawn(context(), wrap(b.wait(WaitType.READ)))
            await parked(b)
            await a.write_all(b"hello")
            assert await task is None
            return await b.read_exactly(5)
        finally:
            a.close()
            b.close()

    assert run(backend, main) == b"hello"


def test_wait_write_ready_at_once_then_parks_until_drained(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        try:
            await a.wait(WaitType.WRITE)  # a fresh socket is writable
            filled = await fill_send_buffer(a)
            task = cio.spawn(ctx, wrap(a.wait(WaitType.WRITE)))
            await parked(a, write=True, task=task)
            got = 0
            buf = bytearray(65536)
            while not task.done() and got < filled:
                got += await b.read_some(buf)
            await task
        finally:
            a.close()
            b.close()

    run(backend, main)


def test_wait_read_parks_after_drain(backend: str) -> None:
    """A readiness edge left behind by drained data must not complete a wait."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        try:
            await a.write_all(b"xy")
            await cio.sleep(0.01)  # let a reactor pass cache the edge
            assert await b.read_some(bytearray(8)) == 2
            task = cio.spawn(ctx, wrap(b.wait(WaitType.READ)))
            await parked(b, task=task)
            assert not task.done()
            b.cancel()
            with pytest.raises(Cancelled):
                await task
        finally:
            a.close()
            b.close()

    run(backend, main)


def test_wait_after_short_read_completes(backend: str) -> None:
    async def main() -> bytes:
        a, b = socket_pair(context())
        try:
            await a.write_all(b"xy")
            one = bytearray(1)
            assert await b.read_some(one) == 1
            await b.wait(WaitType.READ)
            rest = bytearray(8)
            n = await b.read_some(rest)
            return bytes(one) + bytes(rest[:n])
        finally:
            a.close()
            b.close()

    assert run(backend, main) == b"xy"


def test_wait_on_udp_second_datagram_and_cancel(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        r, s = UDPSocket(ctx), UDPSocket(ctx)
        try:
            r.bind(LOOPBACK)
            await s.send_to(b"a", r.local_endpoint())
            await s.send_to(b"b", r.local_endpoint())
            await r.wait(WaitType.READ)
            await r.recv_from(bytearray(4))
            await r.wait(WaitType.READ)  # the second datagram is still there
            await r.recv_from(bytearray(4))
            task = cio.spawn(ctx, wrap(r.wait(WaitType.READ)))
            await parked(r)
            r.cancel()
            with pytest.raises(Cancelled):
                await task
        finally:
            r.close()
            s.close()

    run(backend, main)


def test_acceptor_wait_then_accept(backend: str, tmp_path: Any) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, LOOPBACK)
        client = TCPSocket(ctx)
        local = LocalStreamAcceptor(ctx, str(tmp_path / "w.sock"))
        try:
            task = cio.spawn(ctx, wrap(acc.wait(WaitType.READ)))
            await parked(acc)
            await client.connect(acc.local_endpoint())
            await task
            peer = await acc.accept()
            peer.close()
            # An error wait on a listening socket parks until cancelled.
            for listener in (acc, local):
                err = cio.spawn(ctx, wrap(listener.wait(WaitType.ERROR)))
                await parked(listener)
                listener.cancel()
                with pytest.raises(Cancelled):
                    await err
        finally:
            client.close()
            acc.close()
            local.close()

    run(backend, main)


def test_wait_error_on_reset_leaves_the_error_for_the_read(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        try:
            task = cio.spawn(ctx, wrap(b.wait(WaitType.ERROR)))
            await parked(b)
            await b.write_all(b"unread by a")
            a.linger = (True, 0)
            a.close()  # RST
            await task
            with pytest.raises(ConnectionResetError):
                await b.read_some(bytearray(8))
        finally:
            a.close()
            b.close()

    run(backend, main)


def test_wait_error_with_unread_data_does_not_spin(backend: str) -> None:
    """An error wait on a socket with unread data: the reactor must not wake
    every pass for the readability nobody waits for (on poll/select it once
    watched the fd for reading and spun), and the error still ends it."""

    async def main() -> float:
        ctx = context()
        a, b = socket_pair(ctx)
        try:
            await a.write_all(b"unread by b")  # b stays readable throughout
            task = cio.spawn(ctx, wrap(b.wait(WaitType.ERROR)))
            await parked(b)
            before = time.process_time()
            await cio.sleep(0.3)  # the only other work: a spinning reactor shows here
            used = time.process_time() - before
            assert not task.done()
            a.linger = (True, 0)
            a.close()  # RST: the wait completes
            await task
            return used
        finally:
            a.close()
            b.close()

    used = run(backend, main)
    # A spinning reactor burns about the whole 0.3 s; an idle one almost
    # nothing (select probes every ERROR_POLL_INTERVAL).
    assert used < 0.15, f"{used:.3f} s of CPU while one error wait was parked"


def test_wait_on_local_stream_and_misuse(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = stream_pair(ctx)
        try:
            task = cio.spawn(ctx, wrap(b.wait(WaitType.READ)))
            await parked(b)
            with pytest.raises(RuntimeError):
                await b.read_some(bytearray(1))  # the wait is the pending read
            await a.write_all(b"!")
            await task
            with pytest.raises(TypeError):
                await b.wait("read")
            src = StopSource()
            src.request_stop()
            with pytest.raises(Cancelled):
                await b.wait(WaitType.READ, stop_token=src.token)
        finally:
            a.close()
            b.close()
        with pytest.raises(OSError) as info:
            await b.wait(WaitType.READ)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            await LocalStreamSocket(ctx).wait(WaitType.WRITE)

    run(backend, main)


def test_wait_on_four_threads(backend: str) -> None:
    async def main() -> int:
        ctx = context()
        pairs = [socket_pair(ctx) for _ in range(8)]
        try:

            async def one(a: TCPSocket, b: TCPSocket) -> int:
                for _ in range(20):
                    await a.write_all(b"z")
                    await b.wait(WaitType.READ)
                    await b.read_exactly(1)
                return 20

            return sum(await cio.gather(*(one(a, b) for a, b in pairs)))
        finally:
            for a, b in pairs:
                a.close()
                b.close()

    assert run(backend, main, threads=4) == 160


# ---------------------------------------------------------------- connect_any


def _dead_port() -> int:
    probe = socket.socket()
    probe.bind(LOOPBACK)
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_connect_any_first_that_answers(backend: str) -> None:
    async def main() -> tuple[Any, Any]:
        ctx = context()
        acc = TCPAcceptor(ctx, LOOPBACK)
        try:
            dead = ("127.0.0.1", _dead_port())
            sock = await connect_any(ctx, [dead, acc.local_endpoint()])
            peer = await acc.accept()
            result = sock.remote_endpoint(), acc.local_endpoint()
            sock.close()
            peer.close()
            return result
        finally:
            acc.close()

    remote, listening = run(backend, main)
    assert remote == listening


def test_connect_any_all_fail_chains_every_error(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        ports = [_dead_port() for _ in range(3)]
        with pytest.raises(ConnectionRefusedError) as info:
            await connect_any(ctx.executor, [("127.0.0.1", p) for p in ports])
        chain = []
        error: BaseException | None = info.value
        while error is not None:
            chain.append(error)
            error = error.__cause__
        assert len(chain) == 3
        assert all(isinstance(e, ConnectionRefusedError) for e in chain)

    run(backend, main)


def test_connect_any_resolves_host_names(backend: str) -> None:
    async def main() -> bool:
        ctx = context()
        acc = TCPAcceptor(ctx, LOOPBACK)
        try:
            sock = await connect_any(ctx, ("localhost", acc.local_endpoint().port))
            peer = await acc.accept()
            ok = sock.is_open
            sock.close()
            peer.close()
            return ok
        finally:
            acc.close()

    try:
        assert run(backend, main)
    except ConnectionRefusedError:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")


def test_connect_any_bad_input_and_cancel(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        with pytest.raises(ValueError):
            await connect_any(ctx, [])
        with pytest.raises(TypeError):
            await connect_any(ctx, "127.0.0.1")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await connect_any(object(), [("127.0.0.1", 1)])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await connect_any(ctx, [42])  # type: ignore[list-item]
        src = StopSource()
        src.request_stop()
        with pytest.raises(Cancelled):
            await connect_any(ctx, [("127.0.0.1", 1)], stop_token=src.token)

    run(backend, main)


# ---------------------------------------------------------------- options


def test_socket_options_round_trip(make_ctx: Any) -> None:
    ctx = make_ctx()
    a, b = socket_pair(ctx)
    for name in ("no_delay", "keep_alive"):
        for value in (True, False, True):
            setattr(a, name, value)
            assert getattr(a, name) is value
    a.receive_buffer_size = 16384
    assert a.receive_buffer_size >= 16384
    a.linger = (True, 5)
    assert a.linger == (True, 5)
    a.linger = (False, 0)
    assert a.linger[0] is False
    a.close()
    b.close()
    for name in ("no_delay", "keep_alive", "receive_buffer_size", "linger"):
        with pytest.raises(OSError) as info:
            getattr(a, name)
        assert info.value.errno == errno.EBADF
    ls, lt = local_socket_pair(ctx)
    ls.send_buffer_size = 8192
    assert ls.send_buffer_size >= 8192
    ls.close()
    lt.close()


def test_acceptor_reuse_port_shares_one_port(make_ctx: Any) -> None:
    ctx = make_ctx()
    first = TCPAcceptor(ctx, reuse_port=True)
    assert first.reuse_port and first.reuse_address
    first.bind(LOOPBACK)
    first.listen()
    assert first.reuse_port
    second = TCPAcceptor(ctx, first.local_endpoint(), reuse_port=True)
    assert second.local_endpoint() == first.local_endpoint()
    third = TCPAcceptor(ctx)
    third.reuse_port = False
    with pytest.raises(OSError) as info:
        third.bind(first.local_endpoint())
        third.listen()
    assert info.value.errno == errno.EADDRINUSE
    for acc in (first, second, third):
        acc.close()


def test_server_reuse_port_two_servers_one_port(backend: str) -> None:
    async def handler(sock: TCPSocket) -> None:
        await sock.write_all(b"k")

    async def main() -> None:
        ctx = context()
        one = TCPServer(ctx, LOOPBACK, handler, reuse_port=True)
        one.start()
        two = TCPServer(ctx, one.local_endpoint(), handler, reuse_port=True)
        two.start()
        try:
            assert two.local_endpoint() == one.local_endpoint()
            for _ in range(4):
                c = TCPSocket(ctx)
                await c.connect(one.local_endpoint())
                assert await c.read_exactly(1) == b"k"
                c.close()
        finally:
            one.stop()
            two.stop()

    run(backend, main)


def test_inheritable_is_false_for_new_sockets(make_ctx: Any) -> None:
    ctx = make_ctx()
    objs = [UDPSocket(ctx), TCPAcceptor(ctx, LOOPBACK), *local_socket_pair(ctx)]
    objs[0].bind(LOOPBACK)
    for obj in objs:
        assert not os.get_inheritable(obj.fileno())
        obj.close()
