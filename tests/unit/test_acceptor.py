"""TCPAcceptor, on every backend.

Ports the upstream acceptor catalogue and the
acceptor items of reactor_paths (``test/unit/reactor_paths.cpp``), plus EMFILE handling (in a
subprocess with RLIMIT_NOFILE lowered) and accept churn.  Cancelling a
pending accept is also covered in test_cancel_io.py.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any, cast

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext, TCPAcceptor, TCPSocket
from tests.unit.tcp_helpers import context, has_ipv6_loopback, parked, run

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_construction(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        acc = TCPAcceptor(ctx)
        assert not acc.is_open
        assert acc.fileno() == -1
        assert acc.reuse_address is True
        assert acc.context is ctx
        with pytest.raises(TypeError):
            TCPAcceptor(object())  # type: ignore[arg-type]


def test_listen_on_port_zero(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        acc = TCPAcceptor(ctx)
        acc.open()
        assert acc.is_open
        fd = acc.fileno()
        assert not os.get_blocking(fd)
        assert not os.get_inheritable(fd)
        acc.bind(("127.0.0.1", 0))
        acc.listen()
        ep = acc.local_endpoint()
        assert ep.address == IPv4Address("127.0.0.1")
        assert ep.port != 0
        acc.close()
        assert not acc.is_open
        acc.close()  # idempotent
        acc.cancel()  # no-op when closed


def test_constructor_with_endpoint_listens(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        assert acc.is_open
        # It is listening: a plain blocking client can connect at once.
        with socket.create_connection(("127.0.0.1", acc.local_endpoint().port), timeout=5):
            pass
        acc.close()


def test_constructor_failure_leaks_nothing(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        holder = TCPAcceptor(ctx, ("127.0.0.1", 0), reuse_address=False)
        port = holder.local_endpoint().port
        with pytest.raises(OSError) as info:
            TCPAcceptor(ctx, ("127.0.0.1", port), reuse_address=False)
        assert info.value.errno == errno.EADDRINUSE
        holder.close()
        with pytest.raises(ValueError):
            TCPAcceptor(ctx, ("not-an-ip", 0))


def test_reuse_address_property(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        acc = TCPAcceptor(ctx, reuse_address=False)
        assert acc.reuse_address is False
        acc.open()
        assert acc.reuse_address is False
        acc.reuse_address = True
        assert acc.reuse_address is True
        acc.close()
        assert acc.reuse_address is True  # remembered for the next open
        acc.open()
        assert acc.reuse_address is True
        acc.close()


def test_bind_opens_and_closed_operations_raise(backend: str) -> None:
    async def main() -> None:
        acc = TCPAcceptor(context())
        with pytest.raises(OSError) as info:
            acc.listen()
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            acc.local_endpoint()
        with pytest.raises(OSError) as info:
            await acc.accept()
        assert info.value.errno == errno.EBADF
        acc.bind(("127.0.0.1", 0))
        assert acc.is_open
        acc.listen(5)
        acc.close()
        with pytest.raises(OSError) as info:
            await acc.accept()
        assert info.value.errno == errno.EBADF

    run(backend, main)


def test_accept_on_a_non_listening_acceptor_reports_the_os_error(backend: str) -> None:
    async def main() -> None:
        acc = TCPAcceptor(context())
        acc.open()
        with pytest.raises(OSError) as info:
            await acc.accept()
        assert info.value.errno == errno.EINVAL
        acc.close()

    run(backend, main)


@pytest.mark.parametrize("parks", [False, True], ids=["pending", "parked"])
def test_accept(backend: str, parks: bool) -> None:
    """A connection already waiting (speculative accept) or arriving later."""

    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        client = TCPSocket(ctx)

        async def accept() -> TCPSocket:
            return await acc.accept()

        if parks:
            task = corosio_py.spawn(ctx, accept())
            await parked(acc)
            await client.connect(acc.local_endpoint())
            server = await task
        else:
            await client.connect(acc.local_endpoint())
            server = await acc.accept()
        assert server.is_open
        assert not os.get_blocking(server.fileno())
        assert not os.get_inheritable(server.fileno())
        assert server.remote_endpoint() == client.local_endpoint()
        assert server.local_endpoint() == client.remote_endpoint()
        await client.write_all(b"ping")
        assert await server.read_exactly(4) == b"ping"
        await server.write_all(b"pong")
        assert await client.read_exactly(4) == b"pong"
        client.close()
        server.close()
        acc.close()

    for threads in (1, 2):
        run(backend, main, threads)


def test_second_concurrent_accept_raises_runtime_error(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))

        async def accept() -> TCPSocket:
            return await acc.accept()

        first = corosio_py.spawn(ctx, accept())
        await parked(acc)
        with pytest.raises(RuntimeError):
            await acc.accept()
        acc.close()
        with pytest.raises(Cancelled):
            await first

    run(backend, main)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_acceptor_is_dual_stack(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("::", 0))
        desc = acc._desc
        assert desc is not None
        if desc.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
            acc.close()
            pytest.skip("the OS keeps IPV6_V6ONLY on")
        port = acc.local_endpoint().port
        client = TCPSocket(ctx)
        await client.connect(("127.0.0.1", port))
        server = await acc.accept()
        address = server.remote_endpoint().address
        assert getattr(address, "ipv4_mapped", address) == IPv4Address("127.0.0.1")
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_multiple_acceptors(backend: str) -> None:
    """reactor_paths testMultipleAcceptors: 3 accepts and 3 connects at once."""

    async def main() -> int:
        ctx = context()
        acceptors = [TCPAcceptor(ctx, ("127.0.0.1", 0)) for _ in range(3)]
        clients = [TCPSocket(ctx) for _ in range(3)]

        async def accept(acc: TCPAcceptor) -> TCPSocket:
            return await acc.accept()

        async def connect(sock: TCPSocket, acc: TCPAcceptor) -> None:
            await sock.connect(acc.local_endpoint())

        tasks: list[corosio_py.Task[Any]] = [
            corosio_py.spawn(ctx, accept(acc)) for acc in acceptors
        ]
        pairs = zip(clients, acceptors, strict=True)
        tasks += [corosio_py.spawn(ctx, connect(c, a)) for c, a in pairs]
        results = await corosio_py.gather(*tasks)
        servers = [r for r in results if isinstance(r, TCPSocket)]
        for sock in servers + clients:
            sock.close()
        for acc in acceptors:
            acc.close()
        return sum(task.done() for task in tasks)

    assert run(backend, main, threads=3) == 6


def test_accept_churn(backend: str) -> None:
    """A short version of the upstream accept stress: connect, accept, close."""
    rounds = 60

    async def main() -> int:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        ep = acc.local_endpoint()

        async def acceptor() -> int:
            count = 0
            for _ in range(rounds):
                peer = await acc.accept()
                assert await peer.read_exactly(1) == b"!"
                peer.close()
                count += 1
            return count

        async def connector() -> None:
            for _ in range(rounds):
                client = TCPSocket(ctx)
                await client.connect(ep)
                await client.write_all(b"!")
                client.close()

        served = corosio_py.spawn(ctx, acceptor())
        await connector()
        count = await served
        acc.close()
        return count

    assert run(backend, main, threads=2) == rounds


_EMFILE_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, socket, sys
    sys.path.insert(0, sys.argv[2])
    import corosio_py
    from corosio_py import TCPAcceptor

    def exhaust():
        hogs = []
        while True:
            try:
                hogs.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                return hogs

    def release(hogs):
        for fd in hogs:
            os.close(fd)

    async def main():
        ctx = corosio_py.current_executor().context
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        port = acc.local_endpoint().port
        clients = [socket.socket() for _ in range(2)]
        out = {}
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))

        # 1. Speculative path: the connection is already queued.
        clients[0].connect(("127.0.0.1", port))
        hogs = exhaust()
        try:
            await acc.accept()
            out["speculative"] = "accepted"
        except OSError as exc:
            out["speculative"] = exc.errno
        release(hogs)
        peer = await acc.accept()
        out["after_speculative"] = peer.remote_endpoint().port == clients[0].getsockname()[1]
        peer.close()

        # 2. Parked path: the accept parks, then the connection arrives
        #    while no fd is free.
        async def accept():
            return await acc.accept()
        task = corosio_py.spawn(ctx, accept())
        while acc._desc.reads.op is None:
            await corosio_py.sleep(0.001)
        hogs = exhaust()
        clients[1].setblocking(False)
        clients[1].connect_ex(("127.0.0.1", port))
        try:
            sock = await task
            out["parked"] = "accepted"
            sock.close()
        except OSError as exc:
            out["parked"] = exc.errno
        release(hogs)
        peer = await acc.accept()
        out["after_parked"] = peer.remote_endpoint().port == clients[1].getsockname()[1]
        peer.close()
        for c in clients:
            c.close()
        acc.close()
        return out

    print(json.dumps(corosio_py.run(main(), backend=sys.argv[1])))
    """
)


def test_emfile_on_accept_then_recovery(backend: str) -> None:
    """EMFILE raises to the caller; the acceptor accepts again once fds free."""
    pytest.importorskip("resource")
    proc = subprocess.run(
        [sys.executable, "-c", _EMFILE_SCRIPT, backend, REPO_ROOT],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["speculative"] in (errno.EMFILE, errno.ENFILE), out
    assert out["after_speculative"] is True
    assert out["parked"] in (errno.EMFILE, errno.ENFILE), out
    assert out["after_parked"] is True


def test_context_close_closes_an_accepted_socket_not_yet_delivered(backend: str) -> None:
    """An accept completed by the reactor whose resumption is still queued
    when the context closes: the accepted socket must be closed (the
    Operation contract's ``discard``), not left to the garbage collector."""
    ctx = IOContext(backend=backend)
    acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
    task = corosio_py.spawn(ctx, acc.accept())
    ctx.run_one()  # the task starts; its accept parks
    desc = acc._desc
    assert desc is not None and desc.reads.op is not None
    client = socket.create_connection(("127.0.0.1", acc.local_endpoint().port), timeout=5)
    # One reactor pass by hand: the accept completes and its resumption is
    # queued (here: in ``out``) but not run -- then the context closes.
    out: deque[Callable[[], object]] = deque()
    for _ in range(100):
        ctx._sched._reactor_pass(out, 0.05)
        if out:
            break
    assert out, "the accept did not complete"
    conn, _ = cast(tuple[socket.socket, Any], task._value)  # the raw accepted (socket, address)
    ctx.close()
    assert task.cancelled()
    leaked = conn.fileno() != -1
    conn.close()
    client.close()
    assert not leaked
