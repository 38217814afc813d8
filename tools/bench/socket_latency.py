"""socket_latency: 64-byte ping-pong over one loopback TCP connection.

Client and echo server are two tasks in one context / loop (like a socket
pair inside one io_context).  ``warmup`` untimed round trips, then ``n``
timed ones; every round trip is timed with ``perf_counter_ns`` from just
before the write until the whole echo is read.  Figures: round trips/s =
1 / mean round-trip time, and the round-trip time (mean, p50, p99, µs).

Checked: exactly ``warmup + n`` round trips, each echo exactly 64 bytes and
equal to what was sent (the payload alternates between two messages, so an
echo of stale buffer contents is caught); the server echoed every byte.

impls:
  corosio_py        ``testing.socket_pair``; client ``write_some`` then
                    ``read_some`` into a preallocated 64 KiB buffer; echo task
                    ``read_some`` / ``write_some`` of what it read.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_streams / uvloop_streams  start_server/open_connection; client
                    ``write(); await drain(); await readexactly(64)``, server
                    ``readexactly(64); write(); await drain()``.
  asyncio_protocol / uvloop_protocol  plain Protocol callbacks on both ends.
  trio              open_tcp_listeners/open_tcp_stream, send_all/receive_some.
  floor_epoll       a minimal hand-written ``select.epoll`` loop on both ends
                    (level-triggered EPOLLIN, writes inline, ``recv_into`` one
                    preallocated buffer).
"""

from __future__ import annotations

import select
from typing import Any

from tools.bench._harness import (
    Figure,
    Measurement,
    RunArgs,
    Workload,
    check,
    worker_main,
)
from tools.bench._net import (
    HOST,
    MSG,
    RBUF,
    STREAM_REFERENCES,
    asyncio_echo_handler,
    asyncio_stream_ping,
    clock_ns,
    connected_pairs,
    corosio_ctx,
    corosio_stream_echo,
    corosio_stream_ping,
    latency_stats,
    messages,
    run_asyncio,
    stream_impls,
)

#: (per-round-trip ns of the timed round trips, bad echoes, bytes the server echoed)
Result = tuple[list[int], int, int]


def _corosio(args: RunArgs, n: int, warm: int) -> Result:
    import corosio_py
    from corosio_py.testing import socket_pair

    echoed = [0]
    with corosio_ctx(args) as ctx:
        client, server = socket_pair(ctx)
        client.no_delay = True
        server.no_delay = True
        corosio_py.spawn(ctx, corosio_stream_echo(server, echoed))
        task = corosio_py.spawn(ctx, corosio_stream_ping(client, warm + n, warm))
        ctx.run()
        lat, bad, _ = task.result()
    return lat, bad, echoed[0]


def _asyncio_streams(args: RunArgs, n: int, warm: int) -> Result:
    import asyncio

    echoed = [0]

    async def main() -> Result:
        server = await asyncio.start_server(asyncio_echo_handler(echoed), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection(HOST, port)
        result = await asyncio_stream_ping(r, w, warm + n, warm)
        server.close()
        await server.wait_closed()
        return result

    lat, bad, _ = run_asyncio(args.impl, main)
    return lat, bad, echoed[0]


def _asyncio_protocol(args: RunArgs, n: int, warm: int) -> Result:
    import asyncio

    total = warm + n
    msgs = messages()
    echoed = [0]

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.tr = transport

            def data_received(self, data: bytes) -> None:
                self.tr.write(data)
                echoed[0] += len(data)

        class Client(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.tr = transport
                self.pending = b""
                self.i = 0
                self.bad = 0
                self.lat: list[int] = []
                self.t = clock_ns()
                transport.write(msgs[0])

            def data_received(self, data: bytes) -> None:
                t1 = clock_ns()
                if self.pending:
                    data = self.pending + data
                if len(data) < MSG:
                    self.pending = data
                    return
                self.pending = b""
                i = self.i
                if i >= warm:
                    self.lat.append(t1 - self.t)
                if data != msgs[i & 1]:
                    self.bad += 1
                i += 1
                self.i = i
                if i == total:
                    done.set_result((self.lat, self.bad, 0))
                    return
                self.t = clock_ns()
                self.tr.write(msgs[i & 1])

        server = await loop.create_server(Echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(Client, HOST, port)
        result = await done
        transport.close()
        server.close()
        await server.wait_closed()
        return result

    lat, bad, _ = run_asyncio(args.impl, main)
    return lat, bad, echoed[0]


def _trio(args: RunArgs, n: int, warm: int) -> Result:
    import trio

    total = warm + n
    msgs = messages()
    echoed = [0]

    async def main() -> Result:
        out: list[Result] = []
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host=HOST)
            port = listeners[0].socket.getsockname()[1]

            async def server() -> None:
                stream = await listeners[0].accept()
                async with stream:
                    while True:
                        data = await stream.receive_some(RBUF)
                        if not data:
                            break
                        await stream.send_all(data)
                        echoed[0] += len(data)
                await listeners[0].aclose()

            nursery.start_soon(server)
            stream = await trio.open_tcp_stream(HOST, port)
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
            out.append((lat, bad, 0))
        return out[0]

    lat, bad, _ = trio.run(main)
    return lat, bad, echoed[0]


def _floor_epoll(args: RunArgs, n: int, warm: int) -> Result:
    total = warm + n
    msgs = messages()
    ((c, s),) = connected_pairs(1)
    c.setblocking(False)
    s.setblocking(False)
    ep = select.epoll()
    cfd, sfd = c.fileno(), s.fileno()
    ep.register(cfd, select.EPOLLIN)
    ep.register(sfd, select.EPOLLIN)
    lat: list[int] = []
    rec = lat.append
    sbuf = bytearray(RBUF)  # preallocated receive buffers
    sview = memoryview(sbuf)
    cbuf = bytearray(RBUF)
    cview = memoryview(cbuf)
    i = 0
    got = 0
    bad = 0
    echoed = 0
    poll = ep.poll
    try:
        t = clock_ns()
        c.send(msgs[0])
        while i < total:
            for fd, _ in poll():
                if fd == sfd:
                    k = s.recv_into(sbuf)
                    s.send(sview[:k])  # 64 B always fits in the socket buffer
                    echoed += k
                else:
                    got += c.recv_into(cview[got:])
                    if got >= MSG:
                        t1 = clock_ns()
                        if i >= warm:
                            rec(t1 - t)
                        if got != MSG or cbuf[:MSG] != msgs[i & 1]:
                            bad += 1
                        got = 0
                        i += 1
                        if i < total:
                            t = clock_ns()
                            c.send(msgs[i & 1])
    finally:
        ep.close()
        c.close()
        s.close()
    return lat, bad, echoed


def run(args: RunArgs) -> Measurement:
    n = args.params["n"]
    warm = args.params["warmup"]
    impl = args.impl
    if impl.startswith("corosio_py"):
        lat, bad, echoed = _corosio(args, n, warm)
    elif impl.endswith("_streams"):
        lat, bad, echoed = _asyncio_streams(args, n, warm)
    elif impl.endswith("_protocol"):
        lat, bad, echoed = _asyncio_protocol(args, n, warm)
    elif impl == "trio":
        lat, bad, echoed = _trio(args, n, warm)
    else:
        lat, bad, echoed = _floor_epoll(args, n, warm)
    check(bad == 0, f"{bad} echoes differed from what was sent")
    check(echoed == (warm + n) * MSG, f"the server echoed {echoed} bytes, "
          f"expected {(warm + n) * MSG}")
    mean, p50, p99 = latency_stats(lat, n)
    return Measurement(
        figures={"round_trips_per_s": 1e6 / mean, "rtt_us": mean},
        latency={"rtt_us": (p50, p99)},
        extra={"round_trips": n, "warmup": warm, "busy_s": sum(lat) / 1e9},
    )


WORKLOAD = Workload(
    name="socket_latency",
    title="64-byte ping-pong on one loopback connection (client and server in one loop)",
    figures=(
        Figure("round_trips_per_s", "round trips/s", "round trips/s"),
        Figure("rtt_us", "round-trip time (mean)", "µs", higher_is_better=False, latency=True),
    ),
    impls=stream_impls(),
    sizes={
        "anchor": {"n": 50_000, "warmup": 1_000},
        # The suite's size: smaller, so that `make bench` stays under 10 minutes.
        "full": {"n": 5_000, "warmup": 1_000},
        "quick": {"n": 3_000, "warmup": 500},
    },
    run=run,
    warmup_all=False,
    references=dict(STREAM_REFERENCES),
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
