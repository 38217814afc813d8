"""Helpers shared by the socket unit tests (test_socket, test_acceptor,
test_local_socket, ...)."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import corosio_py
from corosio_py import (
    IOContext,
    LocalDatagramSocket,
    LocalStreamSocket,
    Task,
    TCPSocket,
    local_socket_pair,
)
from corosio_py._handle import DescriptorHandle
from tests.unit.limits import PATIENCE

T = TypeVar("T")



def run(
    backend: str, main: Callable[[], Coroutine[Any, Any, T]], threads: int = 1
) -> T:
    """Run ``main()`` on a fresh context with ``threads`` threads."""
    return corosio_py.run(main(), threads=threads, backend=backend)


async def wrap(awaitable: Awaitable[T]) -> T:
    """A coroutine awaiting ``awaitable`` (``spawn`` wants a coroutine; socket
    methods return operation objects)."""
    return await awaitable


def context() -> IOContext:
    """The context of the running task."""
    return corosio_py.current_executor().context


def free_port() -> int:
    """A loopback port that was free a moment ago (bind port 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def has_ipv6_loopback() -> bool:
    """Whether ``::1`` can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def stream_pair(ctx: IOContext) -> tuple[LocalStreamSocket, LocalStreamSocket]:
    """``local_socket_pair(ctx)``, typed as the stream sockets it returns."""
    a, b = local_socket_pair(ctx)
    assert isinstance(a, LocalStreamSocket) and isinstance(b, LocalStreamSocket)
    return a, b


def datagram_pair(ctx: IOContext) -> tuple[LocalDatagramSocket, LocalDatagramSocket]:
    """``local_socket_pair(ctx, SOCK_DGRAM)``, typed as the datagram sockets it returns."""
    a, b = local_socket_pair(ctx, socket.SOCK_DGRAM)
    assert isinstance(a, LocalDatagramSocket) and isinstance(b, LocalDatagramSocket)
    return a, b


def _parked(obj: DescriptorHandle, write: bool) -> bool:
    desc = obj._desc
    if desc is None:
        return False
    with desc.lock:
        return (desc.writes.op if write else desc.reads.op) is not None


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the context until ``condition()`` holds (bounded)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await corosio_py.sleep(0.0005)


async def parked(
    obj: DescriptorHandle, *, write: bool = False, task: Task[Any] | None = None
) -> None:
    """Wait until ``obj`` has an operation parked in the read (or write) slot
    (or, when given, until ``task`` is done: its operation did not park).

    The handshake that replaces "sleep 50 ms and hope it parked": reads the
    descriptor's slot under its lock.
    """
    await until(
        lambda: _parked(obj, write) or (task is not None and task.done()),
        f"a parked {'write' if write else 'read'}",
    )


async def fill_send_buffer(sock: TCPSocket) -> int:
    """Write until the kernel buffers are full (the next write would park).

    Shrinks the send buffer first so this takes little memory; returns the
    number of bytes written.
    """
    sock.send_buffer_size = 4096
    chunk = b"\0" * 65536
    total = 0
    desc = sock._desc
    assert desc is not None
    while True:
        try:
            with desc.lock:
                n = desc.sock.send(chunk)
        except BlockingIOError:
            return total
        total += n
