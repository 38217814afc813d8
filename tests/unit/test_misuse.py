"""Misuse gets a clear error where it happens (docs/architecture.md, "Conventions").

* A ``stop_token=`` that is not a StopToken: ``TypeError`` at the await of
  every operation, never an ``AttributeError`` escaping ``run()``.
* An operation awaited by another event loop (asyncio): ``RuntimeError``
  naming ``corosio_py.run``; one created and never awaited: a
  ``RuntimeWarning``, as a never-awaited coroutine gives.
* Wrong types and values of socket and server arguments: ``TypeError`` /
  ``ValueError`` at the call, never ``struct.error`` or a silent wrap.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import Cancelled, IOContext, TCPAcceptor, TCPSocket
from corosio_py.testing import socket_pair
from tests.unit.tcp_helpers import context, run

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

Factory = Callable[[TCPSocket, TCPSocket, TCPAcceptor], Awaitable[Any]]

#: Every awaitable that takes ``stop_token=``, with a bad token.
BAD_TOKEN_OPS: dict[str, Callable[[Any], Factory]] = {
    "read_some": lambda t: lambda a, b, acc: b.read_some(bytearray(4), stop_token=t),
    "read_some-empty": lambda t: lambda a, b, acc: b.read_some(bytearray(), stop_token=t),
    "write_some": lambda t: lambda a, b, acc: a.write_some(b"x", stop_token=t),
    "write_some-list": lambda t: lambda a, b, acc: a.write_some([b"x"], stop_token=t),
    "write_some-bad-data": lambda t: lambda a, b, acc: a.write_some(5, stop_token=t),
    "connect": lambda t: lambda a, b, acc: TCPSocket(acc.context).connect(
        acc.local_endpoint(), stop_token=t
    ),
    "accept": lambda t: lambda a, b, acc: acc.accept(stop_token=t),
    "read_exactly": lambda t: lambda a, b, acc: b.read_exactly(4, stop_token=t),
    "read_exactly-0": lambda t: lambda a, b, acc: b.read_exactly(0, stop_token=t),
    "write_all": lambda t: lambda a, b, acc: a.write_all(b"xy", stop_token=t),
    "write_all-empty": lambda t: lambda a, b, acc: a.write_all(b"", stop_token=t),
    "resolve": lambda t: lambda a, b, acc: cio.resolve("127.0.0.1", 80, stop_token=t),
}


@pytest.mark.parametrize(
    "bad", [object(), "token", cio.StopSource()], ids=["object", "str", "source"]
)
@pytest.mark.parametrize("op", list(BAD_TOKEN_OPS))
def test_bad_stop_token_raises_type_error_at_the_await(backend: str, op: str, bad: Any) -> None:
    factory = BAD_TOKEN_OPS[op](bad)

    async def main() -> str:
        ctx = context()
        a, b = socket_pair(ctx)
        acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
        try:
            awaitable = factory(a, b, acc)  # no error at the call
            with pytest.raises(TypeError, match="stop_token must be a StopToken") as info:
                await awaitable
            # The task is still healthy: the sockets work afterwards.
            await a.write_all(b"ok")
            assert await b.read_exactly(2) == b"ok"
            return str(info.value)
        finally:
            a.close()
            b.close()
            acc.close()

    assert "StopToken" in run(backend, main)


# ------------------------------------------------------- foreign event loops


FOREIGN_AWAITS: dict[str, Callable[[TCPSocket, TCPSocket], Awaitable[Any]]] = {
    "read_some": lambda a, b: b.read_some(bytearray(4)),
    "write_some": lambda a, b: a.write_some(b"x"),
    "connect": lambda a, b: TCPSocket(a.context).connect(("127.0.0.1", 9)),
    "read_exactly": lambda a, b: b.read_exactly(2),
    "sleep": lambda a, b: cio.sleep(0),
    "yield_now": lambda a, b: cio.yield_now(),
}


@pytest.mark.parametrize("what", list(FOREIGN_AWAITS))
def test_awaiting_an_operation_in_asyncio_names_corosio_run(backend: str, what: str) -> None:
    with IOContext(backend=backend) as ctx:
        a, b = socket_pair(ctx)

        async def body() -> None:
            await FOREIGN_AWAITS[what](a, b)

        with pytest.raises(RuntimeError, match=r"corosio_py\.run\(\) or corosio_py\.spawn\(\)"):
            asyncio.run(body())
        a.close()
        b.close()
        assert ctx._sched.outstanding() == 0  # nothing started


def test_awaiting_a_task_in_asyncio_names_corosio_run(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        task = cio.spawn(ctx, cio.sleep(0))

        async def body() -> None:
            await task

        with pytest.raises(RuntimeError, match=r"corosio_py\.run"):
            asyncio.run(body())
        ctx.run()
        assert task.done()


NEVER_AWAITED: dict[str, Callable[[TCPSocket, TCPSocket], object]] = {
    "write_some": lambda a, b: a.write_some(b"x"),
    "write_some-empty": lambda a, b: a.write_some(b""),
    "read_some": lambda a, b: b.read_some(bytearray(4)),
    "read_some-bad": lambda a, b: b.read_some(b"read-only"),
    "connect": lambda a, b: TCPSocket(a.context).connect(("127.0.0.1", 9)),
    "sleep": lambda a, b: cio.sleep(1),
}


@pytest.mark.parametrize("what", list(NEVER_AWAITED))
def test_operation_never_awaited_warns(backend: str, what: str) -> None:
    with IOContext(backend=backend) as ctx:
        a, b = socket_pair(ctx)
        with pytest.warns(RuntimeWarning, match="was never awaited"):
            NEVER_AWAITED[what](a, b)  # dropped at once, like a bare coroutine call
            gc.collect()
        a.close()
        b.close()


def test_awaited_operations_never_warn(backend: str) -> None:
    """Awaited operations -- completed, failed, parked then cancelled,
    refused by a stopped token, or refused by spawn on a closed context --
    give no "never awaited" warning."""

    async def main() -> None:
        ctx = context()
        a, b = socket_pair(ctx)
        stopped = cio.StopSource()
        stopped.request_stop()
        await a.write_some(b"x")
        await b.read_some(bytearray(1))
        with pytest.raises(OSError):
            await TCPSocket(ctx).connect(("127.0.0.1", 9))
        with pytest.raises(Cancelled):
            await b.read_some(bytearray(1), stop_token=stopped.token)
        with pytest.raises(TypeError):
            await b.read_some(b"read-only")
        with cio.timeout(0.001), pytest.raises(Cancelled):
            await b.read_some(bytearray(1))
        await cio.sleep(0)
        await cio.yield_now()
        async with cio.TaskGroup() as tg:
            tg.spawn(cio.sleep(0))  # type: ignore[arg-type]
        await cio.gather(cio.sleep(0))
        a.close()
        b.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(backend, main)
        closed = IOContext(backend=backend)
        closed.close()
        with pytest.raises(RuntimeError):
            cio.spawn(closed, cio.sleep(0))
        cio.TaskGroup()  # never entered
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [
        str(w.message) for w in caught
    ]


# ------------------------------------------------------- arguments


def test_socket_open_family_type_and_value(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        sock = TCPSocket(ctx)
        acc = TCPAcceptor(ctx)
        for obj in (sock, acc):
            with pytest.raises(TypeError, match="family"):
                obj.open("inet")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="family"):
                obj.open(None)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="family"):
                obj.open(12345)
            assert not obj.is_open


def test_socket_shutdown_how_type_and_value(backend: str) -> None:
    with IOContext(backend=backend) as ctx:
        a, b = socket_pair(ctx)
        with pytest.raises(TypeError, match="how"):
            a.shutdown(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="how"):
            a.shutdown("SHUT_WR")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="how"):
            a.shutdown(7)
        a.shutdown(socket.SHUT_WR)  # still usable
        a.close()
        b.close()


@pytest.mark.parametrize("seconds", [2**31, 2**40, 2**64, -1])
def test_linger_out_of_range_is_a_value_error(backend: str, seconds: int) -> None:
    with IOContext(backend=backend) as ctx:
        a, b = socket_pair(ctx)
        a.linger = (True, 7)
        with pytest.raises(ValueError, match="linger"):
            a.linger = (True, seconds)
        assert a.linger == (True, 7)  # unchanged by the failed set
        a.linger = (True, 2**31 - 1)  # the largest the OS takes
        a.linger = (False, 0)
        a.close()
        b.close()


@pytest.mark.parametrize("port", [99999, 65536, -1, "99999", "65536"])
def test_out_of_range_port_is_a_value_error_for_connect_and_resolve(
    backend: str, port: Any
) -> None:
    async def main() -> None:
        if isinstance(port, int):
            sock = TCPSocket(context())
            with pytest.raises(ValueError, match="out of range"):
                await sock.connect(("127.0.0.1", port))
            sock.close()
        with pytest.raises(ValueError, match="out of range"):
            await cio.resolve("localhost", port)
        # In range, as a number or a string, still resolves.
        assert (await cio.resolve("127.0.0.1", 65535))[0].port == 65535
        assert (await cio.resolve("127.0.0.1", "80"))[0].port == 80

    run(backend, main)


@pytest.mark.parametrize(
    ("threads", "error"),
    [(0, ValueError), (-1, ValueError), ("2", TypeError), (1.5, TypeError), (True, TypeError)],
)
def test_run_with_bad_threads_closes_the_coroutine(
    backend: str, threads: Any, error: type[Exception]
) -> None:
    async def body() -> int:
        return 1

    coro = body()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(error):
            cio.run(coro, threads=threads, backend=backend)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        del coro
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
