"""Helpers shared by the socket workloads (loopback sockets, latency stats).

Everything binds to 127.0.0.1 and every loop has a fixed count.  Latencies
are ``time.perf_counter_ns`` differences; the figures are reported in µs.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from tools.bench._runners import percentile
from tools.bench._spec import (
    COROSIO,
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Runner,
    check,
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


def latency_stats(lat_ns: Sequence[int], expected: int) -> tuple[float, float, float]:
    """(mean, p50, p99) in µs of per-round-trip times; checks the count."""
    check(len(lat_ns) == expected, f"{len(lat_ns)} round trips timed, expected {expected}")
    ordered = sorted(lat_ns)
    mean = statistics.fmean(ordered) / 1000.0
    return mean, percentile(ordered, 0.50) / 1000.0, percentile(ordered, 0.99) / 1000.0


# ---------------------------------------------------------------- ping-pong workloads

#: (per-round-trip ns of the timed round trips, bad echoes, what the server
#: echoed: bytes or datagrams)
PingResult = tuple[list[int], int, int]

#: The figures of the one-connection ping-pong workloads.
PINGPONG_FIGURES = (
    Figure("round_trips_per_s", "round trips/s", "round trips/s"),
    Figure("rtt_us", "round-trip time (mean)", "µs", higher_is_better=False, latency=True),
)

#: Their sizes: ``anchor`` is the reference measurement; the suite's ``full``
#: is smaller, so that `make bench` stays under 10 minutes.
PINGPONG_SIZES = {
    "anchor": {"n": 50_000, "warmup": 1_000},
    "full": {"n": 5_000, "warmup": 1_000},
    "quick": {"n": 3_000, "warmup": 500},
}


def pingpong_measure(echo_unit: int) -> Callable[[RunArgs, Runner], Measurement]:
    """The ``measure`` of a one-connection ping-pong: ``run(args, n, warmup)``
    returns a :data:`PingResult`; every echo must match and the server must
    have echoed ``echo_unit`` per round trip (64 bytes, or one datagram)."""

    def measure(args: RunArgs, run: Runner) -> Measurement:
        n = args.params["n"]
        warm = args.params["warmup"]
        lat, bad, echoed = run(args, n, warm)
        expected = (warm + n) * echo_unit
        check(bad == 0, f"{bad} echoes differed from what was sent")
        check(echoed == expected, f"the server echoed {echoed}, expected {expected}")
        mean, p50, p99 = latency_stats(lat, n)
        return Measurement(
            figures={"round_trips_per_s": 1e6 / mean, "rtt_us": mean},
            latency={"rtt_us": (p50, p99)},
            extra={"round_trips": n, "warmup": warm, "busy_s": sum(lat) / 1e9},
        )

    return measure


#: The peers every stream-socket workload compares against ("x asyncio" is
#: asyncio streams, "x uvloop" uvloop streams).
STREAM_REFERENCES: dict[str, str] = {
    "asyncio": "asyncio_streams",
    "asyncio protocol": "asyncio_protocol",
    "uvloop": "uvloop_streams",
    "uvloop protocol": "uvloop_protocol",
    "epoll floor": "floor_epoll",
}


def stream_impls(
    corosio: Runner, streams: Runner, protocol: Runner, trio: Runner, floor: Runner
) -> tuple[Impl, ...]:
    """corosio_py (both hints) and the stream-socket peers, in report order;
    asyncio and uvloop share each run function (the loop is the family's)."""
    return (
        Impl("corosio_py", COROSIO, corosio),
        Impl("corosio_py_hint1", COROSIO, corosio, all_backends=False, concurrency_hint=1),
        Impl("asyncio_streams", "asyncio", streams),
        Impl("asyncio_protocol", "asyncio", protocol),
        Impl("uvloop_streams", "uvloop", streams),
        Impl("uvloop_protocol", "uvloop", protocol),
        Impl("trio", "trio", trio, quick=False),
        Impl("floor_epoll", "floor", floor, backend="epoll"),
    )


async def corosio_stream_echo(sock: Any, echoed: list[int]) -> None:
    """Echo task of the corosio_py ping-pong workloads: ``read_some`` into a
    preallocated buffer, ``write_some`` it back; counts into ``echoed[0]``;
    closes ``sock`` at EOF."""
    buf = bytearray(RBUF)
    view = memoryview(buf)
    read = sock.read_some
    write = sock.write_some
    try:
        while True:
            k = await read(buf)
            if not k:
                break
            sent = await write(view[:k])
            while sent < k:
                sent += await write(view[sent:k])
            echoed[0] += k
    finally:
        sock.close()


# The three ping clients below (corosio_py, asyncio streams, trio) share
# their skeleton but are written out: the exchange is the timed hot loop, and
# passing it in as a callback would add a call per round trip to what is
# measured.


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

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while True:
                data = await reader.readexactly(MSG)
                echoed[0] += len(data)
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
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


class EchoProtocol(asyncio.Protocol, asyncio.DatagramProtocol):
    """The protocol-callback echo server (stream or datagram); counts what
    it echoed (bytes, or datagrams) into ``echoed[0]``."""

    def __init__(self, echoed: list[int]) -> None:
        self.echoed = echoed

    def connection_made(self, transport: Any) -> None:
        self.tr = transport

    def data_received(self, data: bytes) -> None:
        self.tr.write(data)
        self.echoed[0] += len(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.tr.sendto(data, addr)
        self.echoed[0] += 1


class PingProtocol(asyncio.Protocol, asyncio.DatagramProtocol):
    """The protocol-callback ping-pong client (stream, or connected datagram
    with ``datagram=True``).

    :meth:`start` sends the first message; ``rounds`` round trips follow,
    each timed from its write until the whole 64-byte echo arrived (stream
    data may come in pieces); the first ``warm`` are not recorded.  Times go
    to ``lat``, mismatched echoes to ``bad[0]``; after the last round trip
    ``on_done(self)`` runs.
    """

    def __init__(
        self, rounds: int, warm: int, lat: list[int], bad: list[int],
        on_done: Callable[[PingProtocol], None], *, datagram: bool = False,
    ) -> None:
        self.datagram = datagram
        self.msgs = messages()
        self.rounds = rounds
        self.warm = warm
        self.lat = lat
        self.bad = bad
        self.on_done = on_done
        self.pending = b""
        self.i = 0
        self.t = 0

    def connection_made(self, transport: Any) -> None:
        self.tr = transport
        # A connected datagram endpoint sends with sendto(data), a stream with
        # write (uvloop's transports do not subclass asyncio's: no isinstance).
        self.send = transport.sendto if self.datagram else transport.write

    def start(self) -> None:
        self.t = clock_ns()
        self.send(self.msgs[0])

    def data_received(self, data: bytes) -> None:
        t1 = clock_ns()
        if self.pending:
            data = self.pending + data
        if len(data) < MSG:
            self.pending = data
            return
        self.pending = b""
        i = self.i
        if i >= self.warm:
            self.lat.append(t1 - self.t)
        if data != self.msgs[i & 1]:
            self.bad[0] += 1
        i += 1
        self.i = i
        if i == self.rounds:
            self.on_done(self)
            return
        self.t = clock_ns()
        self.send(self.msgs[i & 1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.data_received(data)


async def trio_stream_echo(stream: Any, echoed: list[int]) -> None:
    """The trio echo task: ``receive_some`` / ``send_all`` until EOF."""
    import trio

    async with stream:
        try:
            while True:
                data = await stream.receive_some(RBUF)
                if not data:
                    break
                await stream.send_all(data)
                echoed[0] += len(data)
        except trio.BrokenResourceError:
            pass


async def trio_stream_ping(stream: Any, total: int, warm: int) -> PingResult:
    """The trio client: ``send_all`` then ``receive_some`` until the whole
    64-byte echo is in; closes ``stream``."""
    msgs = messages()
    lat: list[int] = []
    rec = lat.append
    bad = 0
    for i in range(total):
        msg = msgs[i & 1]
        t = clock_ns()
        await stream.send_all(msg)
        data = await stream.receive_some(MSG)
        while len(data) < MSG:
            more = await stream.receive_some(MSG - len(data))
            if not more:
                raise EOFError("the echo server closed early")
            data += more
        t1 = clock_ns()
        if i >= warm:
            rec(t1 - t)
        if data != msg:
            bad += 1
    await stream.aclose()
    return lat, bad, 0
