"""TCPServer, on every backend.

Ports the upstream tcp_server catalogue (``test/unit/tcp_server.cpp``) to
this API, then checks what ``TCPServer``'s docstrings promise: one
handler task per connection on any thread of the context, ``connections``,
the socket closed when the handler returns, a handler's exception logged
and confined to its connection, ``stop()`` from inside a handler and from a
foreign thread, the server as outstanding work, and argument validation.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

import pytest

import corosio_py
from corosio_py import Cancelled, Endpoint, IOContext, Task, TCPServer, TCPSocket
from corosio_py.testing import wait_all_tasks_blocked
from tests.unit.limits import JOIN, PATIENCE, PROMPT
from tests.unit.tcp_helpers import has_ipv6_loopback, until

T = TypeVar("T")

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ("127.0.0.1", 0)
#: TEST-NET-1 (RFC 5737): never a local address, so bind fails locally.
NON_LOCAL = ("192.0.2.1", 0)

class NoEOFError(AssertionError):
    """A client task saw no EOF within PROMPT of the server closing."""


def result_of(task: Task[T], backend: str) -> T:
    """``task.result()`` (a missing EOF raises :class:`NoEOFError`)."""
    return task.result()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


async def echo_once(sock: TCPSocket) -> None:
    """The upstream test worker: echo one message, then return (close)."""
    buf = bytearray(1024)
    n = await sock.read_some(buf)
    if n:
        await sock.write_all(bytes(buf[:n]))


async def echo_forever(sock: TCPSocket) -> None:
    """Echo until the peer closes."""
    buf = bytearray(4096)
    while True:
        n = await sock.read_some(buf)
        if n == 0:
            return
        await sock.write_all(bytes(buf[:n]))


async def exchange(endpoint: Endpoint, message: bytes) -> bytes:
    """A client task: connect, send ``message``, read the echo, close."""
    client = TCPSocket(corosio_py.current_executor().context)
    try:
        await client.connect(endpoint)
        await client.write_all(message)
        return await client.read_exactly(len(message))
    finally:
        client.close()


async def read_to_eof(sock: TCPSocket, backend: str) -> bytes:
    """Read until EOF (a reset counts as EOF: the server closed on us)."""
    data = bytearray()
    buf = bytearray(4096)
    try:
        with corosio_py.timeout(PROMPT):
            while True:
                try:
                    n = await sock.read_some(buf)
                except ConnectionResetError:
                    return bytes(data)
                if n == 0:
                    return bytes(data)
                data += buf[:n]
    except TimeoutError:
        raise NoEOFError(f"no EOF within {PROMPT} s of the server closing") from None


def run_threads(ctx: IOContext, n: int) -> list[threading.Thread]:
    """Start ``n`` threads in ``ctx.run()``; returns them (see join_all)."""
    threads = [
        threading.Thread(target=_run_into, args=(ctx,), name=f"server-test-{i}", daemon=True)
        for i in range(n)
    ]
    for thread in threads:
        thread.start()
    return threads


_run_results: dict[str, int | BaseException] = {}


def _run_into(ctx: IOContext) -> None:
    name = threading.current_thread().name
    try:
        _run_results[name] = ctx.run()
    except BaseException as error:  # pragma: no cover - reported by join_all
        _run_results[name] = error


def join_all(ctx: IOContext, threads: list[threading.Thread]) -> None:
    """Join threads started by run_threads; fail if run() did not return."""
    deadline = time.monotonic() + JOIN
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        ctx.stop()  # let the threads go before failing
        for thread in threads:
            thread.join(5)
        pytest.fail(f"run() did not return in {alive}")
    for thread in threads:
        result = _run_results.pop(thread.name)
        if isinstance(result, BaseException):
            raise result


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` from a plain (non-context) thread, bounded."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def open_fd_count() -> int:
    for path in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(path):
            return len(os.listdir(path))
    return -1


def blocking_client(server: TCPServer) -> socket.socket:
    ep = server.local_endpoint()
    return socket.create_connection((str(ep.address), ep.port), timeout=PATIENCE)


# --------------------------------------------------------------------------
# the upstream tcp_server catalogue (test/unit/tcp_server.cpp)
# --------------------------------------------------------------------------


def test_stop_server(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()
        assert server.running

        async def stopper() -> None:
            await corosio_py.sleep(0.01)
            server.stop()

        task = corosio_py.spawn(ctx, stopper())
        ctx.run()
        assert task.done()
        task.result()
        assert not server.running
        assert server.connections == 0
        assert ctx.stopped()


def test_stop_with_active_connection(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()
        endpoint = server.local_endpoint()
        flags = {"echoed": False, "stopped": False}

        async def client() -> None:
            assert await exchange(endpoint, b"hello") == b"hello"
            flags["echoed"] = True
            server.stop()
            flags["stopped"] = True

        task = corosio_py.spawn(ctx, client())
        ctx.run()
        task.result()
        assert flags == {"echoed": True, "stopped": True}
        assert server.connections == 0


def test_start_idempotent(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()
        endpoint = server.local_endpoint()
        server.start()  # harmless: same listener, no second accept loop
        assert server.local_endpoint() == endpoint
        fds = open_fd_count()
        server.start()
        assert open_fd_count() == fds

        async def main() -> None:
            assert await exchange(endpoint, b"once") == b"once"
            await corosio_py.sleep(0.01)
            server.stop()

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        task.result()


def test_stop_idempotent(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()

        async def stopper() -> None:
            await corosio_py.sleep(0.01)
            server.stop()
            server.stop()

        task = corosio_py.spawn(ctx, stopper())
        ctx.run()
        task.result()
        server.stop()  # and once more with the context stopped
        assert not server.running


def test_stop_without_start(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.stop()
        server.stop()
        assert not server.running
        assert server.connections == 0
        with pytest.raises(OSError):
            server.local_endpoint()
        started = time.monotonic()
        assert ctx.run() == 0  # nothing outstanding
        assert time.monotonic() - started < 5


def test_restart(backend: str) -> None:
    handled: list[bytes] = []

    async def handler(sock: TCPSocket) -> None:
        buf = bytearray(64)
        n = await sock.read_some(buf)
        handled.append(bytes(buf[:n]))
        await sock.write_all(bytes(buf[:n]))

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)

        async def session(message: bytes) -> None:
            assert await exchange(server.local_endpoint(), message) == message
            await corosio_py.sleep(0.05)
            server.stop()

        server.start()
        first = corosio_py.spawn(ctx, session(b"hello"))
        ctx.run()
        first.result()
        assert handled == [b"hello"]
        assert ctx.stopped()  # a stop/run cycle leaves the context stopped (A.6)

        ctx.restart()
        server.start()
        assert server.running
        second = corosio_py.spawn(ctx, session(b"world"))
        ctx.run()
        second.result()
        assert handled == [b"hello", b"world"]
        assert server.connections == 0


def test_start_stop_start_without_running(backend: str) -> None:
    # Upstream needs join() between sessions (testStartWithoutJoinThrows);
    # here stop() never blocks and a fresh start() just works.
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()
        server.stop()
        server.start()

        async def main() -> None:
            assert await exchange(server.local_endpoint(), b"again") == b"again"
            server.stop()

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        task.result()


@pytest.mark.parametrize("backlog", [128, 64])
def test_listen_on_loopback_port_zero(backend: str, backlog: int) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once, backlog=backlog)
        with pytest.raises(OSError):
            server.local_endpoint()  # not started: not bound
        server.start()
        ep = server.local_endpoint()
        assert isinstance(ep, Endpoint)
        assert ep.address == IPv4Address("127.0.0.1")
        assert ep.port != 0
        assert str(server.local_endpoint()) == str(ep)
        # It is listening: a plain blocking client connects at once.
        with blocking_client(server):
            pass
        server.stop()
        with pytest.raises(OSError):
            server.local_endpoint()
        ctx.run()


def test_endpoint_object_accepted(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, Endpoint(IPv4Address("127.0.0.1"), 0), echo_once)
        server.start()
        assert server.local_endpoint().port != 0
        server.stop()
        ctx.run()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, ("::1", 0), echo_once)
        server.start()
        endpoint = server.local_endpoint()
        assert endpoint.address == IPv6Address("::1")

        async def main() -> None:
            assert await exchange(endpoint, b"six") == b"six"
            server.stop()

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        task.result()


def test_bind_error_non_local_address(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, NON_LOCAL, echo_once)
        fds = open_fd_count()
        with pytest.raises(OSError) as info:
            server.start()
        assert info.value.errno == errno.EADDRNOTAVAIL
        assert open_fd_count() == fds  # the acceptor's socket was closed
        assert not server.running
        with pytest.raises(OSError):
            server.local_endpoint()
        with pytest.raises(OSError):
            server.start()  # still failing, still not leaking
        assert open_fd_count() == fds
        server.stop()  # a no-op
        started = time.monotonic()
        assert ctx.run() == 0  # a failed start is not outstanding work
        assert time.monotonic() - started < 5


def test_bind_error_address_in_use(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        holder = TCPServer(ctx, LOOPBACK, echo_once)
        holder.start()
        port = holder.local_endpoint().port
        server = TCPServer(ctx, ("127.0.0.1", port), echo_once, reuse_address=False)
        fds = open_fd_count()
        with pytest.raises(OSError) as info:
            server.start()
        assert info.value.errno == errno.EADDRINUSE
        assert open_fd_count() == fds
        assert not server.running
        holder.stop()
        ctx.run()


# --------------------------------------------------------------------------
# what TCPServer's docstrings promise
# --------------------------------------------------------------------------


def test_handlers_run_on_context_threads(
    backend: str, record_property: Callable[[str, object], None]
) -> None:
    clients = 50
    names: list[str] = []
    names_lock = threading.Lock()
    tasks: set[object] = set()

    async def handler(sock: TCPSocket) -> None:
        with names_lock:
            names.append(threading.current_thread().name)
            tasks.add(corosio_py.current_task())
        await corosio_py.sleep(0.002)  # let other threads pick up work
        await echo_once(sock)

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        endpoint = server.local_endpoint()

        async def main() -> None:
            replies = await corosio_py.gather(
                *(exchange(endpoint, f"client {i:02}".encode()) for i in range(clients))
            )
            assert replies == [f"client {i:02}".encode() for i in range(clients)]
            server.stop()

        task = corosio_py.spawn(ctx, main())
        threads = run_threads(ctx, 4)
        join_all(ctx, threads)
        task.result()

    assert len(names) == clients
    assert len(tasks) == clients  # one handler task per connection
    worker_names = {t.name for t in threads}
    used = set(names)
    assert used <= worker_names
    assert len(used) >= 1
    # Reported, not asserted: on 2 shared cores one thread may win them all.
    record_property("handler_threads", len(used))
    print(f"[{backend}] {clients} handlers ran on {len(used)} of 4 threads")


def test_connections_count_and_socket_closed(backend: str) -> None:
    count = 5
    server_socks: list[TCPSocket] = []
    lock = threading.Lock()

    async def handler(sock: TCPSocket) -> None:
        with lock:
            server_socks.append(sock)
        buf = bytearray(64)
        while await sock.read_some(buf):  # blocked until the client closes
            pass

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        assert server.connections == 0
        threads = run_threads(ctx, 2)
        try:
            clients = [blocking_client(server) for _ in range(count)]
            try:
                wait_for(lambda: server.connections == count, f"{count} connections")
                wait_for(lambda: len(server_socks) == count, f"{count} handlers")
                assert all(s.is_open for s in server_socks)
                # One client goes: exactly its handler ends.
                clients.pop().close()
                wait_for(lambda: server.connections == count - 1, "one connection to end")
                assert sum(not s.is_open for s in server_socks) == 1
            finally:
                for client in clients:
                    client.close()
            wait_for(lambda: server.connections == 0, "all connections to end")
            # Handlers returned without closing: the server closed their sockets.
            assert not any(s.is_open for s in server_socks)
        finally:
            server.stop()
            join_all(ctx, threads)


def test_socket_closed_when_handler_returns(backend: str) -> None:
    seen: list[TCPSocket] = []

    async def handler(sock: TCPSocket) -> None:
        seen.append(sock)
        await sock.write_all(b"bye")
        # returns without closing

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        endpoint = server.local_endpoint()

        async def client() -> bytes:
            sock = TCPSocket(ctx)
            try:
                await sock.connect(endpoint)
                return await read_to_eof(sock, backend)  # EOF proves the server closed it
            finally:
                sock.close()
                server.stop()

        task = corosio_py.spawn(ctx, client())
        ctx.run()
        assert result_of(task, backend) == b"bye"
        assert len(seen) == 1
        assert not seen[0].is_open


def test_handler_exception_logged_and_confined(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="corosio_py")

    async def handler(sock: TCPSocket) -> None:
        buf = bytearray(64)
        while True:
            n = await sock.read_some(buf)
            if n == 0:
                return
            if bytes(buf[:n]) == b"boom":
                raise ValueError("handler exploded")
            await sock.write_all(bytes(buf[:n]))

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        endpoint = server.local_endpoint()

        async def main() -> bytes:
            good = TCPSocket(ctx)
            bad = TCPSocket(ctx)
            try:
                await good.connect(endpoint)
                await good.write_all(b"ping")
                assert await good.read_exactly(4) == b"ping"
                await bad.connect(endpoint)
                await bad.write_all(b"boom")
                assert await read_to_eof(bad, backend) == b""  # its connection ended
                # The other connection is untouched, and the server still accepts.
                await good.write_all(b"pong")
                assert await good.read_exactly(4) == b"pong"
                assert await exchange(endpoint, b"new") == b"new"
                return b"ok"
            finally:
                good.close()
                bad.close()
                server.stop()

        task = corosio_py.spawn(ctx, main())
        join_all(ctx, run_threads(ctx, 2))
        assert result_of(task, backend) == b"ok"

    failures = [
        r
        for r in caplog.records
        if r.exc_info is not None and isinstance(r.exc_info[1], ValueError)
    ]
    assert len(failures) == 1, caplog.text
    assert failures[0].levelno >= logging.ERROR
    assert "handler exploded" in caplog.text


class _AsyncCallable:
    async def __call__(self, sock: TCPSocket) -> None:
        await echo_once(sock)


class _SyncCallable:
    def __call__(self, sock: TCPSocket) -> None:
        return None


@pytest.mark.parametrize(
    "handler",
    [lambda sock: None, _SyncCallable(), functools.partial(lambda sock: None), print],
    ids=["lambda", "sync-callable", "partial-of-sync", "builtin"],
)
def test_non_coroutine_handler_is_refused_at_construction(backend: str, handler: Any) -> None:
    """A handler that cannot give a coroutine fails at TCPServer(...), not
    on every connection."""
    with IOContext(backend=backend) as ctx, pytest.raises(TypeError, match="async function"):
        TCPServer(ctx, LOOPBACK, handler)


@pytest.mark.parametrize(
    "handler",
    [_AsyncCallable(), functools.partial(echo_once)],
    ids=["async-callable", "partial-of-async"],
)
def test_async_callable_handlers_are_accepted(backend: str, handler: Any) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        endpoint = server.local_endpoint()

        async def main() -> bytes:
            sock = TCPSocket(ctx)
            try:
                await sock.connect(endpoint)
                await sock.write_all(b"ping")
                return await read_to_eof(sock, backend)
            finally:
                sock.close()
                server.stop()

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        assert result_of(task, backend) == b"ping"


def test_stop_from_inside_handler(backend: str) -> None:
    events: list[str] = []
    lock = threading.Lock()

    async def handler(sock: TCPSocket) -> None:
        buf = bytearray(64)
        try:
            n = await sock.read_some(buf)
        except Cancelled:
            with lock:
                events.append("blocked handler cancelled")
            raise
        if bytes(buf[:n]) == b"stop":
            server.stop()
            with lock:
                events.append("stop called")
            assert not sock.is_open  # stop() closed our own socket too
            await corosio_py.yield_now()  # cancelled at this suspension
            with lock:
                events.append("not cancelled")  # pragma: no cover

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        endpoint = server.local_endpoint()

        async def main() -> tuple[bytes, bytes]:
            idle = TCPSocket(ctx)
            stopper = TCPSocket(ctx)
            try:
                await idle.connect(endpoint)
                await until(lambda: server.connections == 1, "the idle handler")
                await stopper.connect(endpoint)
                await stopper.write_all(b"stop")
                return await read_to_eof(stopper, backend), await read_to_eof(idle, backend)
            finally:
                idle.close()
                stopper.close()

        task = corosio_py.spawn(ctx, main())
        threads = run_threads(ctx, 2)
        join_all(ctx, threads)
        assert result_of(task, backend) == (b"", b"")
    assert sorted(events) == ["blocked handler cancelled", "stop called"]
    assert not server.running
    assert server.connections == 0


def test_stop_from_foreign_thread(backend: str) -> None:
    count = 8
    lock = threading.Lock()
    server_socks: list[TCPSocket] = []
    outcomes: list[str] = []

    async def handler(sock: TCPSocket) -> None:
        with lock:
            server_socks.append(sock)
        buf = bytearray(64)
        try:
            await sock.read_some(buf)  # the clients never write
            outcome = "read returned"
        except Cancelled:
            outcome = "cancelled"
            raise
        except OSError as error:
            outcome = f"OSError {error.errno}"
        finally:
            with lock:
                outcomes.append(outcome)

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        threads = run_threads(ctx, 4)
        clients = [blocking_client(server) for _ in range(count)]
        try:
            wait_for(lambda: len(server_socks) == count, f"{count} blocked handlers")
            wait_for(lambda: server.connections == count, f"{count} connections")
            wait_all_tasks_blocked(ctx)  # the reads park
            started = time.monotonic()
            server.stop()  # from this thread, which never runs the context
            assert time.monotonic() - started < 2.0  # does not block
            join_all(ctx, threads)  # run() returns in all four threads
            assert outcomes == ["cancelled"] * count
            assert not any(s.is_open for s in server_socks)
            assert server.connections == 0
            assert not server.running
            for client in clients:  # each client sees its connection closed
                try:
                    assert client.recv(16) == b""
                except ConnectionResetError:
                    pass
        finally:
            for client in clients:
                client.close()


def test_stop_closes_the_socket_of_a_handler_that_ignores_cancel(backend: str) -> None:
    # stop() closes the handlers' sockets itself: a handler that swallows
    # its Cancelled and reads again gets EBADF instead of blocking forever.
    outcomes: list[str] = []

    async def handler(sock: TCPSocket) -> None:
        buf = bytearray(16)
        try:
            await sock.read_some(buf)
        except Cancelled:
            outcomes.append("cancelled")
        try:
            await sock.read_some(buf)
            outcomes.append("second read returned")
        except OSError as error:
            outcomes.append(errno.errorcode.get(error.errno or 0, str(error)))
        except Cancelled:
            outcomes.append("cancelled again")

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        threads = run_threads(ctx, 2)
        with blocking_client(server):
            wait_for(lambda: server.connections == 1, "the connection")
            wait_all_tasks_blocked(ctx)  # the first read parks
            server.stop()
            join_all(ctx, threads)
    assert outcomes == ["cancelled", "EBADF"]


def test_handler_return_reaches_peer_while_context_keeps_running(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # The handler, woken from a foreign thread, returns on a thread that is
    # not the reactor while the reactor blocks (a work guard keeps both
    # threads in run()): the server's close() must still reach the client.
    timers: list[corosio_py.Timer] = []

    async def handler(sock: TCPSocket) -> None:
        timer = corosio_py.Timer(corosio_py.current_executor().context)
        timer.expires_after(60)
        timers.append(timer)
        try:
            await timer.wait()
        except Cancelled:
            return  # the server closes the socket now

    with IOContext(backend=backend) as ctx:
        guard = ctx.work_guard()
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        threads = run_threads(ctx, 2)
        try:
            with blocking_client(server) as client:
                wait_for(lambda: len(timers) == 1, "the handler")
                wait_all_tasks_blocked(ctx)  # the wait parks
                assert timers[0].cancel() == 1
                client.settimeout(PROMPT)
                try:
                    data = client.recv(16)
                except ConnectionResetError:
                    data = b""
                except TimeoutError:
                    pytest.fail(f"no EOF within {PROMPT} s of the handler returning")
                assert data == b""
                wait_for(lambda: server.connections == 0, "the handler to end")
        finally:
            guard.reset()
            server.stop()
            join_all(ctx, threads)


def test_stop_before_a_handler_first_runs(backend: str) -> None:
    # stop() lands after the accept but before the handler task's first
    # step: the connection is still closed and no longer counted.
    ran: list[bool] = []

    async def handler(sock: TCPSocket) -> None:
        ran.append(True)

    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        with blocking_client(server) as client:
            deadline = time.monotonic() + PATIENCE
            while server.connections == 0:  # the accept loop takes it...
                assert time.monotonic() < deadline, "no connection accepted"
                ctx.poll_one()
            server.stop()  # ...and the handler task is still queued
            ctx.run()
            assert server.connections == 0
            assert client.recv(16) == b""
        assert ran in ([], [True])


_EMFILE_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, resource, socket, sys, threading
    sys.path.insert(0, sys.argv[2])
    import corosio_py as cio

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logging.getLogger("corosio_py").addHandler(Collect())

    async def echo(sock):
        buf = bytearray(16)
        n = await sock.read_some(buf)
        await sock.write_all(bytes(buf[:n]))

    ctx = cio.IOContext(backend=sys.argv[1])
    server = cio.TCPServer(ctx, ("127.0.0.1", 0), echo)
    server.start()
    client = socket.socket()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    hogs = []
    while True:
        try:
            hogs.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    client.connect(("127.0.0.1", server.local_endpoint().port))  # accept: EMFILE

    async def release_later():
        await cio.sleep(0.3)  # a timer: fires only if the accept loop suspends
        for fd in hogs:
            os.close(fd)

    cio.spawn(ctx, release_later())
    runner = threading.Thread(target=ctx.run, daemon=True)  # one thread
    runner.start()
    client.settimeout(20)
    try:
        client.sendall(b"hi")
        reply = client.recv(16).decode()
    except OSError as error:
        reply = repr(error)
    server.stop()
    runner.join(20)
    print(json.dumps({
        "reply": reply,
        "warnings": len(messages),
        "first": messages[:1],
        "run_returned": not runner.is_alive(),
    }), flush=True)
    os._exit(0)
    """
)


def test_accept_emfile_backs_off_and_recovers(backend: str) -> None:
    # Out of fds, accept fails with EMFILE while the connection stays queued.
    # The accept loop must suspend between attempts (a one-thread context
    # still runs its timers), log once, and accept once fds are free.
    pytest.importorskip("resource")
    proc = subprocess.run(
        [sys.executable, "-c", _EMFILE_SCRIPT, backend, REPO_ROOT],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["reply"] == "hi", out
    assert out["run_returned"], out
    assert 1 <= out["warnings"] <= 5, out
    assert "Too many open files" in out["first"][0], out


def test_server_is_outstanding_work(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_once)
        server.start()
        ctx.run_for(0.05)  # returns on time, not for lack of work
        assert not ctx.stopped()
        threads = run_threads(ctx, 2)
        time.sleep(0.2)
        assert all(t.is_alive() for t in threads)  # run() keeps going
        # Still serving while parked in run().
        with blocking_client(server) as client:
            client.sendall(b"hi")
            assert client.recv(16) == b"hi"
        assert all(t.is_alive() for t in threads)
        server.stop()
        join_all(ctx, threads)
        assert ctx.stopped()


def test_many_sequential_connections(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        server = TCPServer(ctx, LOOPBACK, echo_forever)
        server.start()
        endpoint = server.local_endpoint()

        async def main() -> None:
            for i in range(100):
                message = f"conn {i}".encode()
                assert await exchange(endpoint, message) == message
            await until(lambda: server.connections == 0, "handlers to finish")
            server.stop()

        task = corosio_py.spawn(ctx, main())
        join_all(ctx, run_threads(ctx, 2))
        task.result()


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def test_non_callable_handler(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        with pytest.raises(TypeError):
            TCPServer(ctx, LOOPBACK, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            TCPServer(ctx, LOOPBACK, "handler")  # type: ignore[arg-type]


def test_not_an_io_context(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        with pytest.raises(TypeError):
            TCPServer(object(), LOOPBACK, echo_once)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            TCPServer(ctx.executor, LOOPBACK, echo_once)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            TCPServer(None, LOOPBACK, echo_once)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "endpoint",
    [
        ("localhost", 0),  # not a literal address
        ("300.1.2.3", 0),
        ("127.0.0.1", -1),
        ("127.0.0.1", 65536),
        ("127.0.0.1", "80"),
        ("127.0.0.1", 1.5),
        ("127.0.0.1", True),
        ("127.0.0.1",),
        ("127.0.0.1", 0, 0),
        "127.0.0.1:80",
        8080,
        None,
    ],
    ids=repr,
)
def test_bad_endpoint(backend: str, endpoint: object) -> None:
    with IOContext(backend=backend) as ctx:
        fds = open_fd_count()
        with pytest.raises((ValueError, TypeError)):
            server = TCPServer(ctx, endpoint, echo_once)
            server.start()  # the error may come at the call or at start()
        assert open_fd_count() == fds
        assert ctx.run() == 0


def test_bad_backlog(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        with pytest.raises(TypeError):
            TCPServer(ctx, LOOPBACK, echo_once, backlog="16")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            TCPServer(ctx, LOOPBACK, echo_once, backlog=1.0)  # type: ignore[arg-type]


def test_close_context_with_server_running(backend: str) -> None:
    # Closing the context while the server is started and a handler is
    # blocked abandons everything without a hang or an fd leak (the module's
    # fd check covers the leak).
    entered = threading.Event()

    async def handler(sock: TCPSocket) -> None:
        entered.set()
        await sock.read_some(bytearray(16))

    ctx = IOContext(backend=backend)
    try:
        server = TCPServer(ctx, LOOPBACK, handler)
        server.start()
        threads = run_threads(ctx, 1)
        with blocking_client(server):
            assert entered.wait(PATIENCE)
            ctx.stop()
            join_all(ctx, threads)
    finally:
        ctx.close()
    server.stop()  # after close: still harmless
    assert not server.running
