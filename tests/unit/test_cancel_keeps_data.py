"""Cancellation never loses data (docs/architecture.md, "Cancellation never loses data").

When a stop token, ``Task.cancel()`` or ``timeout()`` fires after an
operation already completed (bytes received or sent, a connection accepted,
a connect finished) but before its task resumed, the task gets the result
and the cancellation lands at its next suspension.

Every race here is made deterministic on one thread with the pattern of
issue 10's reproduction: a helper task ``x`` parks a read on a socket ``c``;
the test makes ``c`` readable *first*, then lets the target operation
complete, so one reactor pass reports both and ``x`` (resumed first) fires
the cancellation while the target's completion is already queued.  Each
readiness is awaited with ``select`` (which leaves the reactor's own
edge-triggered state alone) instead of sleeping.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import Cancelled, IOContext, TCPAcceptor, TCPSocket
from corosio_py.testing import socket_pair
from tests.unit.limits import PATIENCE

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]



def _wait_readable(fd: int) -> None:
    r, _, _ = select.select([fd], [], [], PATIENCE)
    assert r, f"fd {fd} did not become readable"


def _wait_writable(fd: int) -> None:
    _, w, _ = select.select([], [fd], [], PATIENCE)
    assert w, f"fd {fd} did not become writable"


class Trigger:
    """The helper task ``x``: parks a read on ``c``; when ``c`` turns
    readable (:meth:`fire`) it runs ``action`` -- the cancellation."""

    def __init__(self, ctx: IOContext) -> None:
        # Made before the target's sockets: the level-triggered backends
        # report fds in registration order, so ``c`` comes first there too.
        self.c_peer, self.c = socket_pair(ctx)
        self.action: Callable[[], object] = lambda: None
        self.task = cio.spawn(ctx, self._body())

    async def _body(self) -> None:
        await self.c.read_some(bytearray(1))
        self.action()

    def cancel_with(self, source: cio.StopSource, how: str, task: list[cio.Task[Any]]) -> None:
        """Fire ``source`` (how="token") or cancel ``task[0]`` (how="task")."""
        if how == "token":
            self.action = source.request_stop
        else:
            self.action = lambda: task[0].cancel()

    def fire(self) -> None:
        """Make ``c`` readable (before the target's completion is reported)."""
        os.write(self.c_peer.fileno(), b"!")
        _wait_readable(self.c.fileno())

    def close(self) -> None:
        assert self.task.done()
        self.task.result()
        self.c_peer.close()
        self.c.close()


def _run(ctx: IOContext) -> None:
    ctx.restart()
    ctx.run()


def _spawn(ctx: IOContext, coro: Coroutine[Any, Any, Any]) -> cio.Task[Any]:
    task = cio.spawn(ctx, coro)
    ctx.poll()  # the task parks its operation (and x its read)
    assert not task.done()
    return task


# ---------------------------------------------------------------- reads


def test_issue_reproduction_stop_token_after_recv_keeps_the_bytes(backend: str) -> None:
    """Issue 10 item 1, verbatim: the bytes "hello" must not vanish."""
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        b_peer, b = socket_pair(ctx)
        src = cio.StopSource()
        got: list[Any] = []
        buf = bytearray(16)

        async def reader() -> None:
            try:
                got.append(await b.read_some(buf, stop_token=src.token))
            except Cancelled:
                got.append("Cancelled")
            got.append(await b.read_some(buf))

        trigger.action = src.request_stop
        _spawn(ctx, reader())
        trigger.fire()
        os.write(b_peer.fileno(), b"hello")
        b_peer.shutdown(socket.SHUT_WR)
        _wait_readable(b.fileno())
        _run(ctx)
        assert got == [5, 0]
        assert bytes(buf[:5]) == b"hello"
        assert src.stop_requested  # the token stays stopped
        trigger.close()
        b_peer.close()
        b.close()


def _reader_cancelled_later(
    b: TCPSocket, got: list[Any], buf: bytearray, token: cio.StopToken | None = None
) -> Coroutine[Any, Any, None]:
    async def reader() -> None:
        got.append(await b.read_some(buf, stop_token=token))
        try:
            # The next suspension: the pending cancellation lands here, and
            # the read never starts (nothing is consumed).
            got.append(await b.read_some(buf, stop_token=token))
        except Cancelled:
            got.append("Cancelled")

    return reader()


@pytest.mark.parametrize("how", ["task", "token"])
def test_read_completed_before_cancel_delivers_bytes_then_cancels(backend: str, how: str) -> None:
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        b_peer, b = socket_pair(ctx)
        src = cio.StopSource()
        got: list[Any] = []
        buf = bytearray(16)
        token = src.token if how == "token" else None
        holder: list[cio.Task[Any]] = []
        trigger.cancel_with(src, how, holder)
        holder.append(_spawn(ctx, _reader_cancelled_later(b, got, buf, token)))
        trigger.fire()
        os.write(b_peer.fileno(), b"hello")
        _wait_readable(b.fileno())
        _run(ctx)
        assert got == [5, "Cancelled"]
        # The cancelled second read consumed nothing: the next bytes are there.
        os.write(b_peer.fileno(), b"world")
        rest = cio.spawn(ctx, _read_all_available(b))
        _run(ctx)
        assert rest.result() == b"world"
        assert holder[0].done() and not holder[0].cancelled()
        trigger.close()
        b_peer.close()
        b.close()


async def _read_all_available(sock: TCPSocket) -> bytes:
    buf = bytearray(16)
    n = await sock.read_some(buf)
    return bytes(buf[:n])


def test_read_completed_before_timeout_fires_delivers_bytes(backend: str) -> None:
    """The scope's expiry lands at the next suspension inside the block,
    which raises TimeoutError at the ``with``."""
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        b_peer, b = socket_pair(ctx)
        got: list[Any] = []
        scopes: list[cio.timeout] = []
        buf = bytearray(16)

        async def reader() -> None:
            try:
                with cio.timeout(60) as scope:
                    scopes.append(scope)
                    got.append(await b.read_some(buf))
                    got.append(await b.read_some(buf))
            except TimeoutError:
                got.append("TimeoutError")

        # What the scope's timer does when it fires (white box: the deadline
        # cannot be made to expire between the two handlers of one pass).
        trigger.action = lambda: scopes[0]._entry._fire()  # type: ignore[union-attr]
        _spawn(ctx, reader())
        trigger.fire()
        os.write(b_peer.fileno(), b"hello")
        _wait_readable(b.fileno())
        _run(ctx)
        assert got == [5, "TimeoutError"]
        assert scopes[0].expired
        assert ctx._sched.outstanding() == 0
        trigger.close()
        b_peer.close()
        b.close()


def test_timeout_fired_after_the_last_suspension_exits_normally(backend: str) -> None:
    """A scope that expired after its last operation completed has nothing
    left to cancel: the block exits normally (``expired`` is still True),
    and the expiry does not leak out to a later suspension."""
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        b_peer, b = socket_pair(ctx)
        got: list[Any] = []
        scopes: list[cio.timeout] = []
        buf = bytearray(16)

        async def reader() -> None:
            with cio.timeout(60) as scope:
                scopes.append(scope)
                got.append(await b.read_some(buf))
            got.append("exited")
            await cio.sleep(0)  # outside the block: not cancelled
            got.append("slept")

        trigger.action = lambda: scopes[0]._entry._fire()  # type: ignore[union-attr]
        task = _spawn(ctx, reader())
        trigger.fire()
        os.write(b_peer.fileno(), b"hello")
        _wait_readable(b.fileno())
        _run(ctx)
        assert got == [5, "exited", "slept"]
        assert scopes[0].expired
        task.result()
        trigger.close()
        b_peer.close()
        b.close()


# ---------------------------------------------------------------- writes


def _fill(sock: TCPSocket) -> int:
    """Write to ``sock`` (non-blocking fd) until its send path is full."""
    total = 0
    chunk = b"f" * 65536
    while True:
        try:
            total += os.write(sock.fileno(), chunk)
        except BlockingIOError:
            return total


def _drain(sock: TCPSocket) -> int:
    total = 0
    while True:
        try:
            data = os.read(sock.fileno(), 1 << 20)
        except BlockingIOError:
            return total
        if not data:
            return total
        total += len(data)


def _recv_blocking(sock: TCPSocket) -> bytes:
    _wait_readable(sock.fileno())
    return os.read(sock.fileno(), 1 << 20)


def _drain_until_writable(peer: TCPSocket, sock: TCPSocket) -> int:
    """Drain ``peer`` until ``sock`` can send again (the window reopens in
    steps: each drain lets queued data through, which fills ``peer`` again)."""
    total = 0
    for _ in range(10_000):
        total += _drain(peer)
        _, w, _ = select.select([], [sock.fileno()], [], 0.01)
        if w:
            return total
    raise AssertionError("the socket never became writable")


@pytest.mark.parametrize("how", ["task", "token"])
def test_write_completed_before_cancel_reports_bytes_sent(backend: str, how: str) -> None:
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        a, a_peer = socket_pair(ctx)
        a.send_buffer_size = 4096
        a_peer.receive_buffer_size = 4096
        src = cio.StopSource()
        token = src.token if how == "token" else None
        got: list[Any] = []
        payload = b"y" * 1000

        async def writer() -> None:
            got.append(await a.write_some(payload, stop_token=token))
            try:
                got.append(await a.write_some(payload, stop_token=token))
            except Cancelled:
                got.append("Cancelled")

        holder: list[cio.Task[Any]] = []
        trigger.cancel_with(src, how, holder)
        filled = _fill(a)
        holder.append(_spawn(ctx, writer()))
        assert a._desc is not None and a._desc.writes.op is not None  # parked
        trigger.fire()
        drained = _drain_until_writable(a_peer, a)
        _run(ctx)
        assert got == [1000, "Cancelled"]
        # What write_some reported was sent arrives, and nothing more.
        a.shutdown(socket.SHUT_WR)
        while data := _recv_blocking(a_peer):
            drained += len(data)
        assert drained == filled + 1000
        trigger.close()
        a.close()
        a_peer.close()


# ---------------------------------------------------------------- accept


@pytest.mark.parametrize("how", ["task", "token"])
def test_accept_completed_before_cancel_delivers_the_connection(backend: str, how: str) -> None:
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        src = cio.StopSource()
        token = src.token if how == "token" else None
        got: list[Any] = []

        async def acceptor() -> None:
            sock = await acc.accept(stop_token=token)
            got.append(sock.remote_endpoint().port)
            sock.close()
            try:
                await acc.accept(stop_token=token)
                got.append("accepted again")
            except Cancelled:
                got.append("Cancelled")

        holder: list[cio.Task[Any]] = []
        trigger.cancel_with(src, how, holder)
        holder.append(_spawn(ctx, acceptor()))
        trigger.fire()
        address = ("127.0.0.1", acc.local_endpoint().port)
        client = socket.create_connection(address, timeout=PATIENCE)
        second = socket.create_connection(address, timeout=PATIENCE)
        _wait_readable(acc.fileno())
        _run(ctx)
        assert got == [client.getsockname()[1], "Cancelled"]
        # The accept that raised Cancelled took nothing: the second
        # connection is still in the backlog.
        left = cio.spawn(ctx, acc.accept())
        _run(ctx)
        sock = left.result()
        assert sock.remote_endpoint().port == second.getsockname()[1]
        sock.close()
        client.close()
        second.close()
        acc.close()
        trigger.close()


# ---------------------------------------------------------------- connect


@pytest.mark.parametrize("how", ["task", "token"])
def test_connect_completed_before_cancel_keeps_the_connection(backend: str, how: str) -> None:
    """The handshake is held back (the listener's backlog is full, so the
    SYN is dropped and retransmitted once a slot frees, about a second
    later) until ``c`` is readable: the connect parks first, and both
    readiness reports land in one reactor pass, ``c``'s first."""
    with IOContext(backend=backend) as ctx:
        trigger = Trigger(ctx)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # one queued connection fills it
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        src = cio.StopSource()
        token = src.token if how == "token" else None
        sock = TCPSocket(ctx)
        got: list[Any] = []

        async def connector() -> None:
            await sock.connect(("127.0.0.1", port), stop_token=token)
            got.append(sock.remote_endpoint().port)
            try:
                await sock.write_some(b"z", stop_token=token)
                got.append("wrote")
            except Cancelled:
                got.append("Cancelled")

        holder: list[cio.Task[Any]] = []
        trigger.cancel_with(src, how, holder)
        holder.append(_spawn(ctx, connector()))  # parks: its SYN was dropped
        assert sock._desc is not None and sock._desc.writes.op is not None
        trigger.fire()
        listener.accept()[0].close()  # a slot frees: the retransmitted SYN gets in
        _wait_writable(sock.fileno())
        _run(ctx)
        assert got == [port, "Cancelled"]
        assert sock.is_open
        server, _ = listener.accept()
        server.close()
        filler.close()
        sock.close()
        listener.close()
        trigger.close()
