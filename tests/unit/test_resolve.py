"""resolve(): getaddrinfo off the context's threads, cancellable.

Real lookups are limited to literals and ``localhost``; everything about
threads, blocking, errors and cancellation uses a stand-in ``getaddrinfo``
so no test depends on DNS.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, Endpoint, IOContext, StopSource, TCPAcceptor, TCPSocket, _workers
from tests.unit.tcp_helpers import context, run, until

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

_real_getaddrinfo = socket.getaddrinfo


class BlockingResolver:
    """A getaddrinfo stand-in that blocks until released, recording calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.finished = threading.Event()
        self.calls: list[tuple[Any, Any]] = []
        self.threads: list[threading.Thread] = []
        self.on_context_thread: list[bool] = []
        self.ctx: IOContext | None = None

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((host, port))
        self.threads.append(threading.current_thread())
        if self.ctx is not None:
            self.on_context_thread.append(self.ctx.executor.running_in_this_thread())
        self.entered.set()
        try:
            if not self.release.wait(20):
                raise AssertionError("the resolver was never released")
            return _real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        finally:
            self.finished.set()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockingResolver]:
    fake = BlockingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.release.set()


# ---------------------------------------------------------------- real lookups


def test_resolve_a_literal(backend: str) -> None:
    async def main() -> list[Endpoint]:
        return await corosio_py.resolve("127.0.0.1", 8080)

    assert run(backend, main) == [Endpoint(IPv4Address("127.0.0.1"), 8080)]


def test_resolve_a_port_string(backend: str) -> None:
    async def main() -> list[Endpoint]:
        return await corosio_py.resolve("127.0.0.1", "8081")

    assert run(backend, main) == [Endpoint(IPv4Address("127.0.0.1"), 8081)]


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 support")
def test_resolve_an_ipv6_literal(backend: str) -> None:
    async def main() -> list[Endpoint]:
        return await corosio_py.resolve("::1", 7)

    assert run(backend, main) == [Endpoint(IPv6Address("::1"), 7)]


def test_resolve_localhost_and_connect(backend: str) -> None:
    async def main() -> None:
        ctx = context()
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        port = acc.local_endpoint().port
        endpoints = await corosio_py.resolve("localhost", port)
        assert endpoints
        assert len(set(endpoints)) == len(endpoints)  # no duplicates
        for ep in endpoints:
            assert ep.address.is_loopback
            assert ep.port == port
        target = next(ep for ep in endpoints if ep.address.version == 4)
        client = TCPSocket(ctx)
        await client.connect(target)
        server = await acc.accept()
        assert server.remote_endpoint() == client.local_endpoint()
        client.close()
        server.close()
        acc.close()

    run(backend, main)


def test_resolve_argument_errors(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await corosio_py.resolve(b"localhost", 80)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await corosio_py.resolve("localhost", 8.0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await corosio_py.resolve("localhost", True)

    run(backend, main)


# ---------------------------------------------------------------- threads, errors


def test_resolve_runs_off_the_context_and_does_not_block_it(
    backend: str, resolver: BlockingResolver
) -> None:
    """With one context thread, the lookup blocks until a *task* releases it:
    had it run on the context's thread this would deadlock."""

    async def main() -> list[Endpoint]:
        ctx = context()
        resolver.ctx = ctx

        async def lookup() -> list[Endpoint]:
            return await corosio_py.resolve("example.test", 443)

        task = corosio_py.spawn(ctx, lookup())
        await until(resolver.entered.is_set, "the lookup to start")
        await corosio_py.sleep(0.01)  # the context keeps running meanwhile
        assert not task.done()
        resolver.release.set()
        return await task

    assert run(backend, main) == [Endpoint(ip_address("127.0.0.1"), 443)]
    assert resolver.calls == [("example.test", 443)]
    assert resolver.on_context_thread == [False]
    assert resolver.threads[0] is not threading.main_thread()


def test_resolve_errors_propagate(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing)

    async def main() -> None:
        with pytest.raises(socket.gaierror) as info:
            await corosio_py.resolve("nowhere.invalid", 80)
        assert isinstance(info.value, OSError)

    run(backend, main)


# ---------------------------------------------------------------- cancellation


def _assert_no_late_completion(
    ctx: IOContext | None, resolver: BlockingResolver, errors: list[BaseException]
) -> None:
    """Release the lookups, let their helper calls end, check they posted nothing."""
    resolver.release.set()
    assert resolver.finished.wait(10)
    assert _workers.settle(10)  # every helper call handed back (or dropped)
    assert errors == []
    if ctx is not None:
        assert ctx._sched.outstanding() == 0


def test_task_cancel_of_a_pending_resolve(
    backend: str, resolver: BlockingResolver, thread_errors: list[BaseException]
) -> None:
    ctx = IOContext(backend=backend)

    async def main() -> None:
        task = corosio_py.spawn(ctx, corosio_py.resolve("slow.test", 80))
        await until(resolver.entered.is_set, "the lookup to start")
        assert task.cancel()
        with pytest.raises(Cancelled):
            await task

    main_task = corosio_py.spawn(ctx, main())
    ctx.run()
    main_task.result()
    # The late result is dropped: nothing is posted, nothing counted.
    _assert_no_late_completion(ctx, resolver, thread_errors)
    ctx.close()


def test_stop_token_and_timeout_cancel_a_pending_resolve(
    backend: str, resolver: BlockingResolver, thread_errors: list[BaseException]
) -> None:
    async def main() -> None:
        source = StopSource()

        async def stoppable() -> list[Endpoint]:
            return await corosio_py.resolve("slow.test", 80, stop_token=source.token)

        ctx = context()
        task = corosio_py.spawn(ctx, stoppable())
        await until(resolver.entered.is_set, "the lookup to start")
        source.request_stop()
        with pytest.raises(Cancelled):
            await task
        with pytest.raises(TimeoutError), corosio_py.timeout(0.02):
            await corosio_py.resolve("slow.test", 81)

    run(backend, main)
    _assert_no_late_completion(None, resolver, thread_errors)
    assert len(resolver.calls) == 2


def test_precancelled_resolve_never_looks_up(backend: str, resolver: BlockingResolver) -> None:
    async def main() -> None:
        source = StopSource()
        source.request_stop()
        with pytest.raises(Cancelled):
            await corosio_py.resolve("slow.test", 80, stop_token=source.token)

    run(backend, main)
    assert resolver.calls == []


def test_context_close_abandons_a_pending_resolve(
    backend: str, resolver: BlockingResolver, thread_errors: list[BaseException]
) -> None:
    ctx = IOContext(backend=backend)
    finalized: list[bool] = []

    async def lookup() -> None:
        try:
            await corosio_py.resolve("slow.test", 80)
        finally:
            finalized.append(True)

    task = corosio_py.spawn(ctx, lookup())
    while not resolver.entered.is_set():
        ctx.run_one_for(0.01)
    ctx.close()
    assert finalized == [True]
    assert task.cancelled()
    # The helper thread finishes later and must post nothing to the closed
    # context (a post would raise or unbalance the work count).
    _assert_no_late_completion(ctx, resolver, thread_errors)


# ---------------------------------------------------------------- concurrency_hint=1


def test_resolve_on_a_single_threaded_context(backend: str) -> None:
    """With concurrency_hint=1 no other thread may touch the scheduler: the
    helper thread wakes the reactor through a socket instead of posting."""
    ctx = IOContext(concurrency_hint=1, backend=backend)

    async def main() -> list[Endpoint]:
        return await corosio_py.resolve("127.0.0.1", 99)

    task = corosio_py.spawn(ctx, main())
    ctx.run()
    assert task.result() == [Endpoint(IPv4Address("127.0.0.1"), 99)]
    ctx.close()


def test_cancel_a_resolve_on_a_single_threaded_context(
    backend: str, resolver: BlockingResolver, thread_errors: list[BaseException]
) -> None:
    ctx = IOContext(concurrency_hint=1, backend=backend)

    async def main() -> list[Endpoint]:
        lookup = corosio_py.spawn(ctx, corosio_py.resolve("slow.test", 80))
        await until(resolver.entered.is_set, "the lookup to start")
        lookup.cancel()
        with pytest.raises(Cancelled):
            await lookup
        # The late wake-up of the cancelled lookup must not disturb this one.
        resolver.release.set()
        return await corosio_py.resolve("slow.test", 81)

    task = corosio_py.spawn(ctx, main())
    ctx.run()
    assert task.result() == [Endpoint(IPv4Address("127.0.0.1"), 81)]
    _assert_no_late_completion(ctx, resolver, thread_errors)
    ctx.close()


def test_context_close_abandons_a_resolve_on_a_single_threaded_context(
    backend: str, resolver: BlockingResolver, thread_errors: list[BaseException]
) -> None:
    ctx = IOContext(concurrency_hint=1, backend=backend)
    task = corosio_py.spawn(ctx, corosio_py.resolve("slow.test", 80))
    while not resolver.entered.is_set():
        ctx.run_one_for(0.01)
    ctx.close()
    assert task.cancelled()
    _assert_no_late_completion(ctx, resolver, thread_errors)
