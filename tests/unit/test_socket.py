"""TCPSocket and Endpoint, on every backend.

Ports the upstream socket catalogue and the TCP items of reactor_paths
(upstream ``test/unit/reactor_paths.cpp``), plus: an 8 MiB transfer checked
by sha256, peer reset, refused connect, SIGPIPE safety, fd hygiene and socket_pair.
Cancellation lives in test_cancel_io.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

import corosio_py
from corosio_py import Endpoint, IOContext, TCPAcceptor, TCPSocket
from corosio_py._descriptor import DescriptorOp
from corosio_py._ops import PENDING
from corosio_py.testing import socket_pair
from tests.unit.tcp_helpers import (
    context,
    fill_send_buffer,
    free_port,
    has_ipv6_loopback,
    parked,
    run,
    wrap,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

#: The checkout, for subprocesses (the package may not be installed).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- Endpoint


def test_endpoint_is_a_named_tuple(backend: str) -> None:
    ep = Endpoint(IPv4Address("127.0.0.1"), 80)
    assert ep.address == IPv4Address("127.0.0.1")
    assert ep.port == 80
    assert tuple(ep) == (IPv4Address("127.0.0.1"), 80)
    assert str(ep) == "127.0.0.1:80"
    assert str(Endpoint(IPv6Address("::1"), 8080)) == "[::1]:8080"
    assert ep.family == socket.AF_INET
    assert Endpoint(IPv6Address("::1"), 1).family == socket.AF_INET6


def test_endpoint_conversion(backend: str) -> None:
    from corosio_py._endpoint import as_endpoint

    assert as_endpoint(("127.0.0.1", 5)) == Endpoint(IPv4Address("127.0.0.1"), 5)
    assert as_endpoint(("::1", 5)) == Endpoint(IPv6Address("::1"), 5)
    assert as_endpoint(Endpoint("10.0.0.1", 7)).address == IPv4Address("10.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="literal"):
        as_endpoint(("localhost", 80))
    with pytest.raises(ValueError):
        as_endpoint(("127.0.0.1", 70000))
    with pytest.raises(TypeError):
        as_endpoint(("127.0.0.1", "80"))
    with pytest.raises(TypeError):
        as_endpoint(("127.0.0.1", True))
    with pytest.raises(TypeError):
        as_endpoint("127.0.0.1:80")
    with pytest.raises(TypeError):
        as_endpoint((1, 80))


# ---------------------------------------------------------------- lifecycle


def test_construction(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        assert not sock.is_open
        assert sock.fileno() == -1
        assert sock.context is ctx
    with pytest.raises(TypeError):
        TCPSocket(object())  # type: ignore[arg-type]


def test_open_close(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        assert sock.is_open
        fd = sock.fileno()
        assert fd >= 0
        # Non-blocking and close-on-exec, as every socket the library opens.
        assert not os.get_blocking(fd)
        assert not os.get_inheritable(fd)
        sock.close()
        assert not sock.is_open
        assert sock.fileno() == -1
        sock.close()  # idempotent
        sock.cancel()  # no-op on a closed socket


def test_open_rejects_other_families(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        with pytest.raises(ValueError):
            sock.open(socket.AF_UNIX)
        assert not sock.is_open


def test_reopen_closes_the_previous_fd(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        first = sock.fileno()
        first_inode = os.fstat(first).st_ino
        sock.open()
        assert sock.is_open
        if sock.fileno() == first:
            assert os.fstat(first).st_ino != first_inode  # the number was reused
        else:
            with pytest.raises(OSError):
                os.fstat(first)
        sock.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_socket_is_v6only(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open(socket.AF_INET6)
        desc = sock._desc
        assert desc is not None
        assert desc.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        sock.close()


def test_open_on_a_closed_context_raises(backend: str) -> None:
    ctx = IOContext(backend=backend)
    ctx.close()
    sock = TCPSocket(ctx)
    with pytest.raises(RuntimeError):
        sock.open()
    assert not sock.is_open


# ---------------------------------------------------------------- basic I/O


def test_read_some(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        assert await a.write_some(b"hello") == 5
        buf = bytearray(32)
        n = await b.read_some(buf)
        assert n == 5
        assert buf[:n] == b"hello"
        a.close()
        b.close()

    run(backend, main)


def test_write_some(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        for message in (b"abc", b"defgh", b"ijklmnop"):
            assert await a.write_some(message) == len(message)
            assert await b.read_exactly(len(message)) == message
        a.close()
        b.close()

    run(backend, main)


def test_partial_read(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"12345")
        buf = bytearray(1024)
        assert await b.read_some(buf) == 5
        a.close()
        b.close()

    run(backend, main)


def test_sequential_read_write(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        buf = bytearray(16)
        for word in (b"one", b"two", b"three"):
            await a.write_some(word)
            n = await b.read_some(buf)
            assert bytes(buf[:n]) == word
        a.close()
        b.close()

    run(backend, main)


def test_bidirectional_simultaneous(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"from_a")
        await b.write_some(b"from_b")
        assert await b.read_exactly(6) == b"from_a"
        assert await a.read_exactly(6) == b"from_b"
        await a.write_some(b"msg_a")
        await b.write_some(b"msg_b")
        assert await b.read_exactly(5) == b"msg_a"
        assert await a.read_exactly(5) == b"msg_b"
        a.close()
        b.close()

    run(backend, main, threads=2)


def test_read_parks_until_the_peer_writes(backend: str) -> None:
    async def main() -> bytes:
        ctx = context()
        a, b = socket_pair(ctx)
        buf = bytearray(16)

        async def reader() -> bytes:
            n = await b.read_some(buf)
            return bytes(buf[:n])

        task = corosio_py.spawn(ctx, reader())
        await parked(b)
        await a.write_some(b"late")
        result = await task
        a.close()
        b.close()
        return result

    for threads in (1, 3):
        assert run(backend, main, threads) == b"late"


def test_concurrent_read_and_write_on_one_socket(backend: str) -> None:
    """reactor_paths testConcurrentReadWrite: one read and one write at once."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        buf = bytearray(32)

        async def reader() -> int:
            return await a.read_some(buf)

        async def writer() -> int:
            return await a.write_some(b"concurrent")

        rt = corosio_py.spawn(ctx, reader())
        await parked(a)
        wt = corosio_py.spawn(ctx, writer())
        assert await wt == 10
        assert await b.read_exactly(10) == b"concurrent"
        await b.write_some(b"concurrent")
        assert await rt == 10
        assert buf[:10] == b"concurrent"
        a.close()
        b.close()

    run(backend, main, threads=2)


# ---------------------------------------------------------------- buffers


def test_empty_buffers(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        assert await a.write_some(b"") == 0
        assert await a.write_some([]) == 0
        assert await a.write_some([b"", bytearray()]) == 0
        await a.write_some(b"x")
        # An empty read gives 0 at once and consumes nothing (not EOF).
        assert await b.read_some(bytearray()) == 0
        assert await b.read_some(memoryview(bytearray(4))[:0]) == 0
        buf = bytearray(4)
        assert await b.read_some(buf) == 1
        assert buf[:1] == b"x"
        a.close()
        b.close()

    run(backend, main)


def test_small_buffer(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        one = bytearray(1)
        for ch in b"ABCDE":
            assert await a.write_some(bytes([ch])) == 1
            assert await b.read_some(one) == 1
            assert one[0] == ch
        a.close()
        b.close()

    run(backend, main)


def test_large_buffer_in_one_task(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        data = bytes(i % 251 for i in range(64 * 1024))
        sent = 0
        while sent < len(data):
            sent += await a.write_some(data[sent:])
        got = bytearray()
        buf = bytearray(8192)
        while len(got) < len(data):
            n = await b.read_some(buf)
            assert n > 0
            got += buf[:n]
        assert got == data
        a.close()
        b.close()

    run(backend, main)


def test_read_into_memoryview_slice(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"abc")
        storage = bytearray(b"..........")
        n = await b.read_some(memoryview(storage)[4:])
        assert n == 3
        assert storage == b"....abc..."
        a.close()
        b.close()

    run(backend, main)


def test_bad_buffers_raise_type_error_at_the_await(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        # The calls themselves do not raise (coroutine methods report at
        # the await), the awaits do.
        read_bytes = b.read_some(b"immutable")
        read_str = b.read_some("text")
        write_str = a.write_some("text")
        write_list = a.write_some([b"ok", 5])
        write_int = a.write_some(5)
        for awaitable in (read_bytes, read_str, write_str, write_list, write_int):
            with pytest.raises(TypeError):
                await awaitable
        # The socket is still usable.
        await a.write_some(b"z")
        assert await b.read_exactly(1) == b"z"
        a.close()
        b.close()

    run(backend, main)


def test_gather_write(backend: str) -> None:
    """reactor_paths testGatherWrite: three buffers, one gathered call."""

    async def main() -> None:
        a, b = socket_pair(context())
        n = await a.write_some([b"hello-", bytearray(b"scatter-"), memoryview(b"world")])
        assert n == 19
        assert await b.read_exactly(19) == b"hello-scatter-world"
        a.close()
        b.close()

    run(backend, main)


def test_gather_write_uses_one_sendmsg(backend: str) -> None:
    calls: list[int] = []

    async def main() -> None:
        a, b = socket_pair(context())
        desc = a._desc
        assert desc is not None
        real = desc.sock

        class Spy:
            def sendmsg(self, buffers: list[bytes], *args: object) -> int:
                calls.append(len(buffers))
                return real.sendmsg(buffers, *args)  # type: ignore[arg-type]

        desc.sock = Spy()  # type: ignore[assignment]
        try:
            assert await a.write_some([b"a", b"b", b"c"]) == 3
        finally:
            desc.sock = real
        assert await b.read_exactly(3) == b"abc"
        a.close()
        b.close()

    run(backend, main)
    assert calls == [3]


def test_write_eagain_parks_and_resumes(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """reactor_paths testWriteEAGAIN: small buffers force the writer to park.

    The receive buffer is 16 KiB rather than upstream's 1 KiB: with a 1 KiB
    window Linux loopback crawls at ~16 KB/s (persist timer), reactor or not.
    """
    total = 256 * 1024
    parks: list[bool] = []
    real_start = DescriptorOp.start

    def counting_start(self: DescriptorOp, task: Any) -> object:
        result = real_start(self, task)
        if result is PENDING:
            parks.append(self.write_direction)
        return result

    monkeypatch.setattr(DescriptorOp, "start", counting_start)

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        a.send_buffer_size = 1024
        b.receive_buffer_size = 16384

        async def writer() -> int:
            return await a.write_all(b"w" * total)

        async def reader() -> int:
            got = 0
            buf = bytearray(4096)
            while got < total:
                n = await b.read_some(buf)
                assert n > 0
                got += n
            return got

        wt = corosio_py.spawn(ctx, writer())
        await parked(a, write=True)  # the reader starts once the writer parked
        rt = corosio_py.spawn(ctx, reader())
        assert await wt == total
        assert await rt == total
        a.close()
        b.close()

    run(backend, main, threads=2)
    assert parks.count(True) > 0  # the writer did park on EAGAIN


# ---------------------------------------------------------------- EOF, reset


def test_read_after_peer_close(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"final")
        a.close()
        assert await b.read_exactly(5) == b"final"
        assert await b.read_some(bytearray(8)) == 0  # EOF
        assert await b.read_some(bytearray(8)) == 0  # and it stays EOF
        b.close()

    run(backend, main)


@pytest.mark.parametrize("parks", [False, True], ids=["ready", "parked"])
def test_data_and_eof_together(backend: str, parks: bool) -> None:
    """Data and FIN arrive before (or while) the reader waits, and the read
    returns less than its buffer: the next read still sees EOF at once.
    (A read that ends short of its buffer does not prove that nothing is
    pending: the FIN may be, and it brings no further readiness report.)"""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        buf = bytearray(4096)
        task = corosio_py.spawn(ctx, wrap(b.read_some(buf)))
        if parks:
            await parked(b)
        await a.write_all(b"tail")
        a.shutdown(socket.SHUT_WR)
        assert await task == 4
        with corosio_py.timeout(5):
            assert await b.read_some(buf) == 0
        a.close()
        b.close()

    for threads in (1, 2):
        run(backend, main, threads)


def test_local_shutdown_after_a_short_read_is_seen_at_once(backend: str) -> None:
    """A read after a short read may skip its doomed speculative recv; a
    local ``shutdown(SHUT_RD)`` brings no readiness edge, so the next read
    must still try its system call and see EOF at once (no hang)."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        buf = bytearray(4096)
        await a.write_all(b"abc")
        assert await b.read_some(buf) == 3  # short: the queue is drained
        b.shutdown(socket.SHUT_RD)
        with corosio_py.timeout(5):
            assert await b.read_some(buf) == 0
        a.close()
        b.close()

    run(backend, main, 1)


def test_sync_completion_loop(backend: str) -> None:
    """socket_stress sync_completion, bounded: 1000 one-byte exchanges that
    complete without parking (inline completions under the budget)."""

    async def main() -> int:
        a, b = socket_pair(context())
        one = bytearray(1)
        count = 0
        for i in range(1000):
            await a.write_some(bytes([i & 0xFF]))
            assert await b.read_some(one) == 1
            assert one[0] == i & 0xFF
            count += 1
        a.close()
        b.close()
        return count

    assert run(backend, main) == 1000


def test_eof_wakes_a_parked_read(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        a.close()
        assert await task == 0
        b.close()

    run(backend, main)


def test_write_after_peer_close_reports_an_error(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        b.close()
        await corosio_py.sleep(0.05)
        chunk = b"\0" * 8192
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                await a.write_some(chunk)
        a.close()

    run(backend, main)


def test_peer_reset_read(backend: str) -> None:
    """Abortive close (linger 0) of the peer: a parked read fails or sees EOF."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        a.linger = (True, 0)
        a.close()
        try:
            assert await task == 0
        except ConnectionResetError:
            pass
        b.close()

    run(backend, main)


def test_peer_reset_write(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        b.linger = (True, 0)
        b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                await a.write_some(b"\0" * 8192)
                await corosio_py.sleep(0.001)
        a.close()

    run(backend, main)


def test_writes_never_raise_sigpipe(backend: str) -> None:
    """With SIGPIPE restored to its default action (as an embedding
    application may have it), writing to a reset peer must not kill us."""
    script = textwrap.dedent(
        f"""
        import signal, sys
        sys.path.insert(0, {REPO_ROOT!r})
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        import corosio_py
        from corosio_py.testing import socket_pair

        async def main():
            ctx = corosio_py.current_executor().context
            a, b = socket_pair(ctx)
            b.linger = (True, 0)
            b.close()
            errors = 0
            for _ in range(200):
                try:
                    await a.write_some(b"x" * 8192)
                    await a.write_some([b"y" * 100, b"z" * 100])
                except (BrokenPipeError, ConnectionResetError):
                    errors += 1
            a.close()
            return errors

        print("errors", corosio_py.run(main(), backend={backend!r}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=False
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.startswith("errors ")
    assert int(proc.stdout.split()[1]) > 0


# ---------------------------------------------------------------- shutdown


def test_shutdown_send(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"hello")
        a.shutdown(socket.SHUT_WR)
        assert await b.read_exactly(5) == b"hello"
        assert await b.read_some(bytearray(4)) == 0
        a.close()
        b.close()

    run(backend, main)


def test_shutdown_receive(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        b.shutdown(socket.SHUT_RD)
        await b.write_some(b"from_b")
        assert await a.read_exactly(6) == b"from_b"
        a.close()
        b.close()

    run(backend, main)


def test_shutdown_receive_wakes_a_parked_read(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(4))))
        await parked(b)
        b.shutdown(socket.SHUT_RD)
        assert await task == 0
        a.close()
        b.close()

    run(backend, main)


def test_shutdown_both(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_some(b"goodbye")
        a.shutdown(socket.SHUT_RDWR)
        assert await b.read_exactly(7) == b"goodbye"
        assert await b.read_some(bytearray(4)) == 0
        a.close()
        b.close()

    run(backend, main)


def test_shutdown_on_closed_socket_is_a_no_op(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        for how in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            sock.shutdown(how)
        sock.open()
        sock.close()
        sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(ValueError):
            sock.shutdown(42)


# ---------------------------------------------------------------- closed socket


def test_io_on_a_closed_socket_raises_ebadf(backend: str) -> None:
    async def main() -> None:
        never = TCPSocket(context())
        a, b = socket_pair(context())
        a.close()
        for sock in (never, a):
            for awaitable in (
                sock.read_some(bytearray(4)),
                sock.read_some(bytearray()),
                sock.write_some(b"x"),
                sock.write_some(b""),
                sock.read_exactly(3),
                sock.write_all(b"abc"),
            ):
                with pytest.raises(OSError) as info:
                    await awaitable
                assert info.value.errno == errno.EBADF
        b.close()

    run(backend, main)


# ---------------------------------------------------------------- concurrency misuse


def test_second_concurrent_read_raises_runtime_error(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        first = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(4))))
        await parked(b)
        with pytest.raises(RuntimeError):
            await b.read_some(bytearray(4))
        await a.write_some(b"ok")
        assert await first == 2
        a.close()
        b.close()

    run(backend, main)


def test_second_concurrent_write_raises_runtime_error(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        await fill_send_buffer(a)
        first = corosio_py.spawn(ctx, wrap(a.write_some(b"x" * 1024)))
        await parked(a, write=True)
        with pytest.raises(RuntimeError):
            await a.write_some(b"y")
        b.close()  # the parked write then fails (or completes)
        try:
            await first
        except (BrokenPipeError, ConnectionResetError):
            pass
        a.close()

    run(backend, main)


# ---------------------------------------------------------------- options


def test_no_delay(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        for value in (True, False, True):
            sock.no_delay = value
            assert sock.no_delay is value
        sock.close()


def test_keep_alive(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        for value in (True, False, True):
            sock.keep_alive = value
            assert sock.keep_alive is value
        sock.close()


def test_buffer_sizes(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        assert sock.receive_buffer_size > 0
        assert sock.send_buffer_size > 0
        sock.receive_buffer_size = 65536
        sock.send_buffer_size = 65536
        assert sock.receive_buffer_size > 0
        assert sock.send_buffer_size > 0
        with pytest.raises(ValueError):
            sock.send_buffer_size = -1
        with pytest.raises(TypeError):
            sock.send_buffer_size = "big"  # type: ignore[assignment]
        sock.close()


def test_linger(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        sock.open()
        sock.linger = (True, 5)
        assert sock.linger == (True, 5)
        sock.linger = (False, 0)
        assert sock.linger[0] is False
        sock.linger = (True, 10)
        assert sock.linger == (True, 10)
        with pytest.raises(ValueError):
            sock.linger = (True, -1)
        assert sock.linger == (True, 10)  # unchanged by the failed set
        with pytest.raises(TypeError):
            sock.linger = 5  # type: ignore[assignment]
        sock.close()


def test_options_on_connected_sockets(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        a, b = socket_pair(ctx)
        for sock in (a, b):
            sock.no_delay = True
            assert sock.no_delay
            sock.keep_alive = True
            assert sock.keep_alive
            assert sock.receive_buffer_size > 0
            assert sock.send_buffer_size > 0
        a.close()
        b.close()


def test_options_on_a_closed_socket_raise(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        with pytest.raises(OSError):
            _ = sock.no_delay
        with pytest.raises(OSError):
            sock.keep_alive = True
        sock.open()
        sock.close()
        with pytest.raises(OSError):
            _ = sock.linger


# ---------------------------------------------------------------- composed operations


def test_read_exactly(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_all(b"X" * 100)
        assert await b.read_exactly(100) == b"X" * 100
        assert await b.read_exactly(0) == b""
        with pytest.raises(ValueError):
            await b.read_exactly(-1)
        with pytest.raises(TypeError):
            await b.read_exactly(1.5)  # type: ignore[arg-type]
        a.close()
        b.close()

    run(backend, main)


def test_write_all(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        assert await a.write_all(b"Y" * 500) == 500
        assert await b.read_exactly(500) == b"Y" * 500
        assert await a.write_all([b"ab", memoryview(b"cd"), bytearray(b"")]) == 4
        assert await b.read_exactly(4) == b"abcd"
        assert await a.write_all(b"") == 0
        with pytest.raises(TypeError):
            await a.write_all("text")
        a.close()
        b.close()

    run(backend, main)


def test_read_until_eof(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        message = b"a 30-byte message for reading!"
        await a.write_all(message)
        a.close()
        got = bytearray()
        buf = bytearray(7)
        while n := await b.read_some(buf):
            got += buf[:n]
        assert got == message
        b.close()

    run(backend, main)


def test_read_exactly_partial_eof(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        await a.write_all(b"Z" * 50)
        a.close()
        with pytest.raises(EOFError, match="50 of 100"):
            await b.read_exactly(100)
        b.close()

    run(backend, main)


def test_binary_data(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        data = bytes(range(256))
        await a.write_all(data)
        assert await b.read_exactly(256) == data
        a.close()
        b.close()

    run(backend, main)


@pytest.mark.parametrize("threads", [1, 4])
def test_large_transfer_sha256(backend: str, threads: int) -> None:
    """8 MiB with writer and reader concurrent, checked by sha256."""
    size = 8 * 1024 * 1024
    payload = os.urandom(size)
    expected = hashlib.sha256(payload).hexdigest()

    async def main() -> str:
        ctx = context()
        a, b = socket_pair(ctx)

        async def writer() -> None:
            view = memoryview(payload)
            step = 256 * 1024
            for start in range(0, size, step):
                await a.write_all(view[start : start + step])
            a.shutdown(socket.SHUT_WR)

        async def reader() -> str:
            digest = hashlib.sha256()
            buf = bytearray(65536)
            view = memoryview(buf)
            total = 0
            while n := await b.read_some(buf):
                digest.update(view[:n])
                total += n
            assert total == size
            return digest.hexdigest()

        wt = corosio_py.spawn(ctx, writer())
        rt = corosio_py.spawn(ctx, reader())
        await wt
        result = await rt
        a.close()
        b.close()
        return result

    assert run(backend, main, threads) == expected


# ---------------------------------------------------------------- connect, endpoints


def test_connect_and_endpoints_ephemeral(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        acc_ep = acc.local_endpoint()
        assert acc_ep.address == IPv4Address("127.0.0.1")
        assert acc_ep.port != 0
        accept = corosio_py.spawn(ctx, acc.accept())
        client = TCPSocket(ctx)
        await client.connect(acc_ep)  # opens the socket
        assert client.is_open
        server = await accept
        assert client.remote_endpoint() == acc_ep
        assert client.local_endpoint().port != 0
        assert server.remote_endpoint() == client.local_endpoint()
        assert server.local_endpoint() == client.remote_endpoint()
        # Consistent repeated reads.
        assert client.local_endpoint() == client.local_endpoint()
        assert server.remote_endpoint() == server.remote_endpoint()
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_connect_to_a_specified_port(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        port = free_port()
        acc = TCPAcceptor(ctx, ("127.0.0.1", port))
        assert acc.local_endpoint().port == port
        accept = corosio_py.spawn(ctx, acc.accept())
        client = TCPSocket(ctx)
        await client.connect(("127.0.0.1", port))
        server = await accept
        assert client.remote_endpoint() == Endpoint(IPv4Address("127.0.0.1"), port)
        assert server.local_endpoint().port == port
        client.close()
        server.close()
        acc.close()

    run(backend, main)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_connect_ipv6(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("::1", 0))
        accept = corosio_py.spawn(ctx, acc.accept())
        client = TCPSocket(ctx)
        await client.connect(acc.local_endpoint())
        server = await accept
        assert client.remote_endpoint().address == IPv6Address("::1")
        await client.write_all(b"six")
        assert await server.read_exactly(3) == b"six"
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_connect_refused(backend: str) -> None:
    async def main() -> None:
        client = TCPSocket(context())
        with pytest.raises(ConnectionRefusedError):
            await client.connect(("127.0.0.1", free_port()))
        # testEndpointsAfterConnectFailure: no endpoints were cached.
        with pytest.raises(OSError):
            client.remote_endpoint()
        with pytest.raises(OSError):
            client.local_endpoint()
        client.close()

    for threads in (1, 2):
        run(backend, main, threads)


def test_connect_bad_endpoint_raises_at_the_await(backend: str) -> None:
    async def main() -> None:
        client = TCPSocket(context())
        by_name = client.connect(("localhost", 80))
        by_type = client.connect("127.0.0.1:80")
        with pytest.raises(ValueError):
            await by_name
        with pytest.raises(TypeError):
            await by_type
        assert not client.is_open

    run(backend, main)


def test_bind_then_connect(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        accept = corosio_py.spawn(ctx, acc.accept())
        client = TCPSocket(ctx)
        client.bind(("127.0.0.1", 0))  # opens the socket
        bound = client.local_endpoint()
        assert bound.port != 0
        await client.connect(acc.local_endpoint())
        server = await accept
        assert client.local_endpoint() == bound
        assert server.remote_endpoint() == bound
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_endpoints_on_closed_and_unconnected_sockets(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        with pytest.raises(OSError) as info:
            sock.local_endpoint()
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            sock.remote_endpoint()
        sock.open()
        with pytest.raises(OSError) as info:
            sock.remote_endpoint()
        assert info.value.errno == errno.ENOTCONN
        with pytest.raises(OSError):
            sock.local_endpoint()
        sock.close()
        a, b = socket_pair(ctx)
        assert a.remote_endpoint() == b.local_endpoint()
        a.close()
        # After close and reopen (unconnected) nothing is cached.
        with pytest.raises(OSError):
            a.remote_endpoint()
        a.open()
        with pytest.raises(OSError):
            a.remote_endpoint()
        a.close()
        b.close()


# ---------------------------------------------------------------- socket_pair, context close


def test_socket_pair_leaves_the_context_unchanged(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        before = (ctx.stopped(), ctx._sched.outstanding())
        a, b = socket_pair(ctx)
        assert (ctx.stopped(), ctx._sched.outstanding()) == before
        for sock in (a, b):
            assert sock.is_open
            assert not os.get_blocking(sock.fileno())
            assert not os.get_inheritable(sock.fileno())
        assert a.local_endpoint() == b.remote_endpoint()
        assert a.remote_endpoint() == b.local_endpoint()
        assert a.remote_endpoint().address == IPv4Address("127.0.0.1")

        async def main() -> bytes:
            await a.write_all(b"pair")
            return await b.read_exactly(4)

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        assert task.result() == b"pair"
        a.close()
        b.close()
    with pytest.raises(TypeError):
        socket_pair(object())  # type: ignore[arg-type]


def test_context_close_closes_sockets_and_abandons_parked_ops(backend: str) -> None:
    """reactor_paths testShutdownWithParkedOps (TCP): close the context with a
    read, a write and an accept parked: no hang, coroutines closed, fds
    closed, nothing resumed."""
    ctx = IOContext(backend=backend)
    a, b = socket_pair(ctx)
    acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
    finalized: list[str] = []

    async def reader() -> None:
        try:
            await b.read_some(bytearray(4))
        finally:
            finalized.append("reader")

    async def writer() -> None:
        try:
            await fill_send_buffer(a)
            await a.write_some(b"w" * 4096)
        finally:
            finalized.append("writer")

    async def acceptor() -> None:
        try:
            await acc.accept()
        finally:
            finalized.append("acceptor")

    tasks = [corosio_py.spawn(ctx, fn()) for fn in (reader, writer, acceptor)]
    for _ in range(3):
        ctx.run_one()  # each task starts and parks its operation
    for obj, write in ((b, False), (a, True), (acc, False)):
        desc = obj._desc
        assert desc is not None
        assert (desc.writes.op if write else desc.reads.op) is not None
    ctx.close()
    assert sorted(finalized) == ["acceptor", "reader", "writer"]
    assert all(task.cancelled() for task in tasks)
    assert not a.is_open
    assert not b.is_open
    assert not acc.is_open
    a.close()  # no-ops now
    b.cancel()
    acc.close()


def test_single_threaded_context(backend: str) -> None:
    """concurrency_hint=1: the lock-free scheduler drives sockets, accepts,
    cancellation and connect failures the same way."""
    ctx = IOContext(concurrency_hint=1, backend=backend)
    a, b = socket_pair(ctx)
    acc = TCPAcceptor(ctx, ("127.0.0.1", 0))

    async def main() -> None:
        reader = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        b.cancel()
        with pytest.raises(corosio_py.Cancelled):
            await reader
        await a.write_all(b"one")
        assert await b.read_exactly(3) == b"one"
        accept = corosio_py.spawn(ctx, acc.accept())
        client = TCPSocket(ctx)
        await client.connect(acc.local_endpoint())
        server = await accept
        assert server.remote_endpoint() == client.local_endpoint()
        refused = TCPSocket(ctx)
        with pytest.raises(ConnectionRefusedError):
            await refused.connect(("127.0.0.1", free_port()))
        for sock in (client, server, refused):
            sock.close()

    task = corosio_py.spawn(ctx, main())
    ctx.run()
    task.result()
    a.close()
    b.close()
    acc.close()
    ctx.close()
