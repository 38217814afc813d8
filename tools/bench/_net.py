"""Helpers shared by the socket workloads (loopback sockets, latency stats).

Everything binds to 127.0.0.1 and every loop has a fixed count.  Latencies
are ``time.perf_counter_ns`` differences; the figures are reported in µs.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from tools.bench._harness import (
    Impl,
    RunArgs,
    asyncio_backend_label,
    check,
    corosio_context,
    new_event_loop,
    percentile,
    trio_backend_label,
)

HOST = "127.0.0.1"
#: Ping-pong message size (bytes).
MSG = 64
#: The receive buffer of the floors and of corosio_py's echo side: one
#: preallocated buffer, no allocation per read.
RBUF = 64 * 1024

clock_ns = time.perf_counter_ns


def messages() -> tuple[bytes, bytes]:
    """Two distinct 64-byte messages; round trip ``i`` sends ``[i & 1]``.

    Alternating the payload lets the client catch an echo of stale data
    (a read that reports bytes but did not fill the buffer).
    """
    return bytes(range(MSG)), bytes(range(MSG, 2 * MSG))


def listen_socket(backlog: int = 512) -> socket.socket:
    """A blocking listening socket on 127.0.0.1, an ephemeral port."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, 0))
    ls.listen(backlog)
    return ls


def nodelay(*socks: socket.socket) -> None:
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connected_pairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """``count`` connected (client, server) pairs, TCP_NODELAY on both ends."""
    ls = listen_socket(max(count, 1))
    try:
        addr = ls.getsockname()
        pairs = []
        for _ in range(count):
            c = socket.create_connection(addr)
            s, _ = ls.accept()
            nodelay(c, s)
            pairs.append((c, s))
    finally:
        ls.close()
    return pairs


def is_hint1(args: RunArgs) -> bool:
    return args.impl.endswith("_hint1")


def corosio_ctx(args: RunArgs) -> Any:
    """The IOContext of a corosio_py cell (``*_hint1``: concurrency_hint=1)."""
    return corosio_context(args, lockless=is_hint1(args))


def run_asyncio(impl: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` on a fresh asyncio loop (uvloop's for ``uvloop*``)."""
    loop = new_event_loop(impl)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def latency_stats(lat_ns: Sequence[int], expected: int) -> tuple[float, float, float]:
    """(mean, p50, p99) in µs of per-round-trip times; checks the count."""
    check(len(lat_ns) == expected, f"{len(lat_ns)} round trips timed, expected {expected}")
    ordered = sorted(lat_ns)
    mean = statistics.fmean(ordered) / 1000.0
    return mean, percentile(ordered, 0.50) / 1000.0, percentile(ordered, 0.99) / 1000.0


#: The peers every stream-socket workload compares against ("x asyncio" is
#: asyncio streams, "x uvloop" uvloop streams).
STREAM_REFERENCES: dict[str, str] = {
    "asyncio": "asyncio_streams",
    "asyncio protocol": "asyncio_protocol",
    "uvloop": "uvloop_streams",
    "uvloop protocol": "uvloop_protocol",
    "epoll floor": "floor_epoll",
}


def stream_impls() -> tuple[Impl, ...]:
    """corosio_py (both hints) and the stream-socket peers, in report order."""
    return (
        Impl("corosio_py", "corosio_py"),
        Impl("corosio_py_hint1", "corosio_py", all_backends=False),
        Impl("asyncio_streams", "asyncio", backend=asyncio_backend_label()),
        Impl("asyncio_protocol", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop_streams", "uvloop", backend="libuv"),
        Impl("uvloop_protocol", "uvloop", backend="libuv"),
        Impl("trio", "trio", backend=trio_backend_label(), quick=False),
        Impl("floor_epoll", "floor", backend="epoll"),
    )


#: (per-round-trip ns of the timed round trips, bad echoes, bytes echoed)
PingResult = tuple[list[int], int, int]


async def corosio_stream_echo(sock: Any, echoed: list[int]) -> None:
    """Echo task of the corosio_py ping-pong workloads: ``read_some`` into a
    preallocated buffer, ``write_some`` it back; counts into ``echoed[0]``;
    closes ``sock`` at EOF."""
    buf = bytearray(RBUF)
    view = memoryview(buf)
    read = sock.read_some
    write = sock.write_some
    while True:
        k = await read(buf)
        if not k:
            break
        sent = await write(view[:k])
        while sent < k:
            sent += await write(view[sent:k])
        echoed[0] += k
    sock.close()


async def corosio_stream_ping(sock: Any, total: int, warm: int) -> PingResult:
    """Client task of the corosio_py ping-pong workloads: ``total`` 64-byte
    round trips, the last ``total - warm`` timed; closes ``sock``."""
    msgs = messages()
    buf = bytearray(RBUF)
    view = memoryview(buf)
    read = sock.read_some
    write = sock.write_some
    lat: list[int] = []
    rec = lat.append
    bad = 0
    for i in range(total):
        msg = msgs[i & 1]
        t = clock_ns()
        sent = await write(msg)
        while sent < MSG:
            sent += await write(msg[sent:])
        got = await read(buf)
        while got < MSG:
            k = await read(view[got:])
            if not k:
                raise EOFError("the echo server closed early")
            got += k
        t1 = clock_ns()
        if i >= warm:
            rec(t1 - t)
        if got != MSG or buf[:MSG] != msg:
            bad += 1
    sock.close()
    return lat, bad, 0


def asyncio_echo_handler(echoed: list[int]) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
    """The asyncio streams echo handler (``readexactly``, ``write``, ``drain``)."""
    import asyncio

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while True:
                data = await reader.readexactly(MSG)
                echoed[0] += len(data)
                writer.write(data)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return handle


async def asyncio_stream_ping(reader: Any, writer: Any, total: int, warm: int) -> PingResult:
    """The asyncio streams client: ``write``, ``drain``, ``readexactly``."""
    msgs = messages()
    lat: list[int] = []
    rec = lat.append
    bad = 0
    for i in range(total):
        msg = msgs[i & 1]
        t = clock_ns()
        writer.write(msg)
        await writer.drain()
        data = await reader.readexactly(MSG)
        t1 = clock_ns()
        if i >= warm:
            rec(t1 - t)
        if data != msg:
            bad += 1
    writer.close()
    await writer.wait_closed()
    return lat, bad, 0
