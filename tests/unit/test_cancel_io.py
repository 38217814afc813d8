"""Cancellation of socket and acceptor operations, on every backend.

Covers the cancellation items of the upstream socket and acceptor suites,
precancel (upstream ``test/unit/precancel.cpp``, TCP parts), the stop-token
items of reactor_paths (``test/unit/reactor_paths.cpp``), two rules of
docs/architecture.md, "Parking" (a cancel racing an initiation is not lost;
no cancel stays pending on the descriptor to hit the next operation), and races
of cancel/close from foreign threads while four threads run the context.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, StopSource, TCPAcceptor, TCPSocket
from corosio_py.testing import socket_pair
from tests.unit.tcp_helpers import context, fill_send_buffer, free_port, parked, run, until, wrap

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]


@pytest.fixture(autouse=True)
def _debug_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant checks on: a double completion drives the work count
    negative, which then raises instead of passing silently."""
    monkeypatch.setenv("COROSIO_DEBUG", "1")


@contextlib.contextmanager
def pending_connect_target() -> Iterator[tuple[str, int]]:
    """A loopback address where a connect stays in progress.

    A listener with backlog 0 whose queue is already full: Linux drops the
    SYNs of further clients, so their connect neither succeeds nor fails.
    """
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.settimeout(5)
        filler.connect(listener.getsockname())
        yield listener.getsockname()
    finally:
        filler.close()
        listener.close()


# ---------------------------------------------------------------- cancel(), close()


def test_cancel_read(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        b.cancel()
        with pytest.raises(Cancelled):
            await task
        # The socket stays usable and no data was lost.
        await a.write_all(b"after")
        assert await b.read_exactly(5) == b"after"
        a.close()
        b.close()

    run(backend, main)


def test_cancel_write(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        await fill_send_buffer(a)
        task = corosio_py.spawn(ctx, wrap(a.write_some(b"x" * 4096)))
        await parked(a, write=True)
        a.cancel()
        with pytest.raises(Cancelled):
            await task
        a.close()
        b.close()

    run(backend, main)


def test_cancel_connect(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        client = TCPSocket(ctx)
        with pending_connect_target() as target:
            task = corosio_py.spawn(ctx, wrap(client.connect(target)))
            await until(lambda: task.done() or client._desc is not None, "the connect to start")
            await parked(client, write=True, task=task)
            if task.done():
                client.close()
                pytest.skip("this OS completes connects to a full backlog")
            client.cancel()
            with pytest.raises(Cancelled):
                await task
            with pytest.raises(OSError):
                client.remote_endpoint()  # nothing cached
            assert client.is_open  # cancel does not close
            client.close()

    run(backend, main)


def test_close_while_reading(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        b.close()
        assert not b.is_open
        with pytest.raises(Cancelled):
            await task
        a.close()

    run(backend, main)


def test_close_with_pending_read_and_write(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        await fill_send_buffer(a)
        reader = corosio_py.spawn(ctx, wrap(a.read_some(bytearray(8))))
        writer = corosio_py.spawn(ctx, wrap(a.write_some(b"y" * 4096)))
        await parked(a)
        await parked(a, write=True)
        a.close()
        with pytest.raises(Cancelled):
            await reader
        with pytest.raises(Cancelled):
            await writer
        b.close()

    for threads in (1, 4):
        run(backend, main, threads)


def test_cancel_accept(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        task = corosio_py.spawn(ctx, acc.accept())
        await parked(acc)
        acc.cancel()
        with pytest.raises(Cancelled):
            await task
        # Still usable.
        client = TCPSocket(ctx)
        await client.connect(acc.local_endpoint())
        server = await acc.accept()
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_close_while_pending_accept(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        task = corosio_py.spawn(ctx, acc.accept())
        await parked(acc)
        acc.close()
        with pytest.raises(Cancelled):
            await task

    run(backend, main)


def test_cancel_without_pending_operations_affects_nothing_later(backend: str) -> None:
    """cancel() applies to operations started before it returned, only."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        b.cancel()
        b.cancel()
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        await a.write_some(b"ok")
        assert await task == 2
        a.close()
        b.close()

    run(backend, main)


# ---------------------------------------------------------------- Task.cancel, timeout


def test_task_cancel_completes_the_parked_read(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(8))))
        await parked(b)
        assert task.cancel()
        with pytest.raises(Cancelled):
            await task
        assert task.cancelled()
        with b._desc.lock:  # type: ignore[union-attr]
            assert b._desc.reads.op is None  # type: ignore[union-attr]
        a.close()
        b.close()

    run(backend, main)


def test_timeout_cancels_a_read(backend: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        with pytest.raises(TimeoutError), corosio_py.timeout(0.05):
            await b.read_some(bytearray(8))
        # An expired timeout: the read never starts, nothing is consumed.
        await a.write_some(b"k")
        with pytest.raises(TimeoutError), corosio_py.timeout(-1):
            await b.read_some(bytearray(8))
        assert await b.read_exactly(1) == b"k"
        a.close()
        b.close()

    run(backend, main)


# ---------------------------------------------------------------- stop tokens


def test_stop_token_cancels_a_parked_read(backend: str) -> None:
    """socket.cpp testStopTokenCancellation, with a handshake instead of timers."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        source = StopSource()

        async def reader() -> int:
            await b.write_some(b"R")
            return await b.read_some(bytearray(8), stop_token=source.token)

        task = corosio_py.spawn(ctx, reader())
        assert await a.read_exactly(1) == b"R"
        await parked(b)
        source.request_stop()
        with pytest.raises(Cancelled):
            await task
        a.close()
        b.close()

    run(backend, main, threads=2)


def test_stop_token_cancels_a_parked_accept(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        source = StopSource()
        task = corosio_py.spawn(ctx, acc.accept(stop_token=source.token))
        await parked(acc)
        source.request_stop()
        with pytest.raises(Cancelled):
            await task
        acc.close()

    run(backend, main)


def test_stop_token_cancels_a_parked_write_and_connect(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        await fill_send_buffer(a)
        source = StopSource()
        writer = corosio_py.spawn(ctx, wrap(a.write_some(b"w" * 4096, stop_token=source.token)))
        await parked(a, write=True)
        client = TCPSocket(ctx)
        with pending_connect_target() as target:
            connect = corosio_py.spawn(ctx, wrap(client.connect(target, stop_token=source.token)))
            await until(lambda: connect.done() or client._desc is not None, "the connect")
            source.request_stop()
            with pytest.raises(Cancelled):
                await writer
            with pytest.raises(Cancelled):
                await connect
        client.close()
        a.close()
        b.close()

    run(backend, main)


def test_a_stop_after_completion_does_not_cancel_the_next_operation(backend: str) -> None:
    """4.4.3: a stop that fires after its operation finished is not left as a
    pending cancel for the next operation of that kind."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        source = StopSource()
        await a.write_some(b"1")
        assert await b.read_some(bytearray(1), stop_token=source.token) == 1
        source.request_stop()  # too late for that read
        task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(1))))
        await parked(b)
        await a.write_some(b"2")
        assert await task == 1
        a.close()
        b.close()

    run(backend, main)


# ------------------------------------------------ precancel (upstream precancel.cpp)


def _stopped_token() -> Any:
    source = StopSource()
    source.request_stop()
    return source.token


def test_precancel_socket_operations(backend: str) -> None:
    """Every operation under an already-stopped token is Cancelled and has no
    side effect: no data consumed, none sent."""

    async def main() -> None:
        a, b = socket_pair(context())
        token = _stopped_token()
        await a.write_some(b"q")
        attempts = (
            b.read_some(bytearray(8), stop_token=token),
            b.read_some(bytearray(), stop_token=token),
            b.read_exactly(1, stop_token=token),
            b.write_some(b"never", stop_token=token),
            b.write_some(b"", stop_token=token),
            b.write_all(b"never", stop_token=token),
            b.write_some([b"ne", b"ver"], stop_token=token),
        )
        done = 0
        for attempt in attempts:
            with pytest.raises(Cancelled):
                await attempt
            done += 1
        assert done == len(attempts)
        assert await b.read_exactly(1) == b"q"  # the data is still there
        await b.write_all(b"!")
        assert await a.read_exactly(1) == b"!"  # and nothing else was sent
        a.close()
        b.close()

    run(backend, main)


def test_precancel_connect(backend: str) -> None:
    async def main() -> None:
        client = TCPSocket(context())
        with pytest.raises(Cancelled):
            await client.connect(("127.0.0.1", free_port()), stop_token=_stopped_token())
        assert not client.is_open  # never even opened

    run(backend, main)


def test_precancel_accept(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        client = TCPSocket(ctx)
        await client.connect(acc.local_endpoint())
        with pytest.raises(Cancelled):
            await acc.accept(stop_token=_stopped_token())
        # The connection was not taken: a normal accept gets it.
        server = await acc.accept()
        assert server.remote_endpoint() == client.local_endpoint()
        client.close()
        server.close()
        acc.close()

    run(backend, main)


# ------------------------------------------------ cancel during initiation
# (docs/architecture.md, "Parking")


class _InjectAtPark:
    """Scheduler proxy whose ``work_started`` (called by an initiation that
    is about to park, after its failed attempt) starts ``action`` once on
    another thread -- a cancel landing in exactly that window.  The
    initiation holds the descriptor lock until it has parked, so the cancel
    waits for the lock and then finds the op parked and claims it."""

    def __init__(self, real: Any, action: Callable[[], object]) -> None:
        self._real = real
        self._action: Callable[[], object] | None = action
        self.thread: threading.Thread | None = None

    def work_started(self) -> None:
        self._real.work_started()
        action, self._action = self._action, None
        if action is not None:
            self.thread = threading.Thread(target=action)
            self.thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_cancel_racing_an_initiation_is_not_lost(backend: str, how: str) -> None:
    async def main() -> None:
        a, b = socket_pair(context())
        desc = b._desc
        assert desc is not None
        desc.sched = _InjectAtPark(desc.sched, getattr(b, how))  # type: ignore[assignment]
        # Without the epoch check the read would park after the cancel and
        # wait forever; the timeout turns that into a failure.
        with pytest.raises(Cancelled), corosio_py.timeout(5):
            await b.read_some(bytearray(8))
        assert desc.reads.op is None
        a.close()
        b.close()

    run(backend, main)


def test_cancel_racing_an_accept_initiation_is_not_lost(backend: str) -> None:
    async def main() -> None:
        acc = TCPAcceptor(context(), ("127.0.0.1", 0))
        desc = acc._desc
        assert desc is not None
        desc.sched = _InjectAtPark(desc.sched, acc.cancel)  # type: ignore[assignment]
        with pytest.raises(Cancelled), corosio_py.timeout(5):
            await acc.accept()
        acc.close()

    run(backend, main)


# ---------------------------------------------------------------- races from other threads


class _Canceller(threading.Thread):
    """A foreign thread that runs ``action`` each time it is triggered."""

    def __init__(self) -> None:
        super().__init__(name="test-canceller", daemon=True)
        self.trigger = threading.Event()
        self.done = threading.Event()
        self.action: Callable[[], object] | None = None
        self.stop = False

    def run(self) -> None:
        while True:
            self.trigger.wait()
            self.trigger.clear()
            if self.stop:
                return
            assert self.action is not None
            self.action()
            self.done.set()

    def fire(self, action: Callable[[], object]) -> None:
        self.done.clear()
        self.action = action
        self.trigger.set()

    def finish(self) -> None:
        self.stop = True
        self.trigger.set()
        self.join(10)


def test_cancel_races_readiness_from_another_thread(backend: str) -> None:
    """Each read completes exactly once -- data or Cancelled -- and no byte
    is lost or duplicated, while a foreign thread cancels and the peer
    writes at the same moment (4 threads run the context)."""
    iterations = 300

    async def main() -> tuple[int, int]:
        ctx = context()
        a, b = socket_pair(ctx)
        canceller = _Canceller()
        canceller.start()
        got = cancelled = 0
        buf = bytearray(1)
        try:
            for i in range(iterations):

                async def reader() -> int:
                    return await b.read_some(buf)

                task = corosio_py.spawn(ctx, reader())
                if i % 2:
                    # Half the time the read surely parked (unless a byte
                    # left by a cancelled read completed it at once).
                    await parked(b, task=task)
                canceller.fire(b.cancel)
                await a.write_some(b"d")
                try:
                    got += await task
                except Cancelled:
                    cancelled += 1
                await until(canceller.done.is_set, "the canceller")
        finally:
            canceller.finish()
        # Every byte written is either read or still in the socket.
        left = 0
        a.shutdown(socket.SHUT_WR)
        while n := await b.read_some(bytearray(512)):
            left += n
        assert got + left == iterations
        a.close()
        b.close()
        return got, cancelled

    got, cancelled = run(backend, main, threads=4)
    assert got + cancelled == iterations


def test_close_races_pending_operations_from_another_thread(backend: str) -> None:
    """close() from a foreign thread while a read and a write are starting or
    parked: each completes exactly once (Cancelled, or EBADF if it started
    after the close) and nothing hangs."""
    iterations = 100

    async def main() -> int:
        ctx = context()
        canceller = _Canceller()
        canceller.start()
        outcomes = 0
        try:
            for i in range(iterations):
                a, b = socket_pair(ctx)
                await fill_send_buffer(a)
                reader = corosio_py.spawn(ctx, wrap(a.read_some(bytearray(8))))
                writer = corosio_py.spawn(ctx, wrap(a.write_some(b"z" * 4096)))
                if i % 2:
                    await parked(a)
                    # The kernel may free send space after the fill (the
                    # peer's window grows), so the write can complete
                    # without parking: a completion is an outcome too.
                    await parked(a, write=True, task=writer)
                canceller.fire(a.close)
                for task in (reader, writer):
                    try:
                        await task
                        assert task is writer  # nobody writes to a: no read completes
                        outcomes += 1
                    except Cancelled:
                        outcomes += 1
                    except OSError as exc:
                        assert exc.errno == errno.EBADF
                        outcomes += 1
                await until(canceller.done.is_set, "the closer")
                assert not a.is_open
                b.close()
        finally:
            canceller.finish()
        return outcomes

    assert run(backend, main, threads=4) == 2 * iterations


def test_stop_token_races(backend: str) -> None:
    """socket_stress stop_token, bounded: stop at once, after a yield, or
    racing a write; every read ends (data or Cancelled), bytes conserved."""
    iterations = 150

    async def main() -> tuple[int, int]:
        ctx = context()
        a, b = socket_pair(ctx)
        got = cancelled = written = 0
        buf = bytearray(1)
        for i in range(iterations):
            source = StopSource()

            async def reader(token: Any = source.token) -> int:
                return await b.read_some(buf, stop_token=token)

            task = corosio_py.spawn(ctx, reader())
            if i % 3 == 1:
                await corosio_py.yield_now()
            elif i % 3 == 2:
                await a.write_some(b"x")
                written += 1
            source.request_stop()
            try:
                got += await task
            except Cancelled:
                cancelled += 1
        a.shutdown(socket.SHUT_WR)
        left = 0
        while n := await b.read_some(bytearray(512)):
            left += n
        # Cancellation never loses data: a stop that lands after the byte
        # was read but before the reader resumed still delivers the byte.
        assert got + left == written
        a.close()
        b.close()
        return got, cancelled

    got, cancelled = run(backend, main, threads=4)
    assert got + cancelled == iterations
    assert cancelled > 0


def test_concurrent_ops_then_close_everything(backend: str) -> None:
    """socket_stress concurrent_ops, bounded: 4 pairs with a writer and a
    reader each; closing every socket ends all of them (Cancelled, or the
    error/EOF the close caused on the other end)."""

    async def main() -> int:
        ctx = context()
        pairs = [socket_pair(ctx) for _ in range(4)]
        # One counter per reader: each is written by one task only.
        received = [0] * len(pairs)

        async def writer(sock: TCPSocket) -> None:
            chunk = b"c" * 256
            with contextlib.suppress(Cancelled, OSError):
                while True:
                    await sock.write_some(chunk)

        async def reader(index: int, sock: TCPSocket) -> None:
            buf = bytearray(256)
            with contextlib.suppress(Cancelled, OSError):
                while n := await sock.read_some(buf):
                    received[index] += n

        tasks = [corosio_py.spawn(ctx, writer(x)) for x, _ in pairs]
        tasks += [corosio_py.spawn(ctx, reader(i, y)) for i, (_, y) in enumerate(pairs)]
        await until(lambda: sum(received) > 64 * 1024, "some traffic")
        for x, y in pairs:
            x.close()
            y.close()
        await corosio_py.gather(*tasks)
        return sum(received)

    assert run(backend, main, threads=4) > 64 * 1024


class _CloseContextFirst:
    """Scheduler proxy whose ``post_counted`` closes the context first: a
    foreign-thread cancel whose claim happened just before ``IOContext.close``
    and whose post lands just after it."""

    def __init__(self, real: Any, ctx: Any) -> None:
        self._real = real
        self._ctx = ctx

    def post_counted(self, handler: Callable[[], object]) -> None:
        self._ctx.close()
        self._real.post_counted(handler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_cancel_racing_context_close_keeps_the_work_count_sane(backend: str) -> None:
    ctx = corosio_py.IOContext(backend=backend)
    a, b = socket_pair(ctx)
    task = corosio_py.spawn(ctx, wrap(b.read_some(bytearray(4))))
    ctx.run_one()  # the task parks its read
    desc = b._desc
    assert desc is not None and desc.reads.op is not None
    desc.sched = _CloseContextFirst(desc.sched, ctx)  # type: ignore[assignment]
    b.cancel()  # from this (foreign) thread: claim, then the post after close
    assert task.cancelled()
    a.close()
    b.close()
    assert ctx._sched.outstanding() == 0
