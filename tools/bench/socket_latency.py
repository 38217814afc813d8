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
  floor_coroutines  corosio_py's own ping and echo coroutines on the least
                    pure-Python coroutine loop (``_floor_coro``): what a
                    round trip costs without the library
"""

from __future__ import annotations

import asyncio
import select

from tools.bench._floor_coro import floor_pingpong
from tools.bench._net import (
    HOST,
    MSG,
    PINGPONG_FIGURES,
    PINGPONG_SIZES,
    RBUF,
    STREAM_REFERENCES,
    EchoProtocol,
    PingProtocol,
    PingResult,
    asyncio_echo_handler,
    asyncio_stream_ping,
    clock_ns,
    connected_pairs,
    corosio_stream_echo,
    corosio_stream_ping,
    messages,
    pingpong_measure,
    stream_impls,
    trio_stream_echo,
    trio_stream_ping,
)
from tools.bench._runners import corosio_context, run_asyncio
from tools.bench._spec import Impl, RunArgs, Workload
from tools.bench._worker import worker_main


def _corosio(args: RunArgs, n: int, warm: int) -> PingResult:
    import corosio_py
    from corosio_py.testing import socket_pair

    echoed = [0]
    with corosio_context(args) as ctx:
        client, server = socket_pair(ctx)
        client.no_delay = True
        server.no_delay = True
        corosio_py.spawn(ctx, corosio_stream_echo(server, echoed))
        task = corosio_py.spawn(ctx, corosio_stream_ping(client, warm + n, warm))
        ctx.run()
        lat, bad, _ = task.result()
    return lat, bad, echoed[0]


def _asyncio_streams(args: RunArgs, n: int, warm: int) -> PingResult:
    echoed = [0]

    async def main() -> PingResult:
        server = await asyncio.start_server(asyncio_echo_handler(echoed), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection(HOST, port)
        result = await asyncio_stream_ping(r, w, warm + n, warm)
        server.close()
        await server.wait_closed()
        return result

    lat, bad, _ = run_asyncio(args, main)
    return lat, bad, echoed[0]


def _asyncio_protocol(args: RunArgs, n: int, warm: int) -> PingResult:
    echoed = [0]
    lat: list[int] = []
    bad = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        server = await loop.create_server(lambda: EchoProtocol(echoed), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: PingProtocol(warm + n, warm, lat, bad, lambda _: done.set_result(None)),
            HOST, port,
        )
        client.start()
        await done
        transport.close()
        server.close()
        await server.wait_closed()

    run_asyncio(args, main)
    return lat, bad[0], echoed[0]


def _trio(args: RunArgs, n: int, warm: int) -> PingResult:
    import trio

    echoed = [0]

    async def main() -> PingResult:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host=HOST)
            port = listeners[0].socket.getsockname()[1]

            async def server() -> None:
                await trio_stream_echo(await listeners[0].accept(), echoed)
                await listeners[0].aclose()

            nursery.start_soon(server)
            stream = await trio.open_tcp_stream(HOST, port)
            result = await trio_stream_ping(stream, warm + n, warm)
        return result

    lat, bad, _ = trio.run(main)
    return lat, bad, echoed[0]


def _floor_epoll(args: RunArgs, n: int, warm: int) -> PingResult:
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


def _floor_coroutines(args: RunArgs, n: int, warm: int) -> PingResult:
    ((c, s),) = connected_pairs(1)
    return floor_pingpong(c, s, n, warm)  # type: ignore[no-any-return]


WORKLOAD = Workload(
    name="socket_latency",
    title="64-byte ping-pong on one loopback connection (client and server in one loop)",
    figures=PINGPONG_FIGURES,
    impls=(
        *stream_impls(_corosio, _asyncio_streams, _asyncio_protocol, _trio, _floor_epoll),
        Impl("floor_coroutines", "floor", _floor_coroutines, backend="epoll"),
    ),
    sizes=PINGPONG_SIZES,
    measure=pingpong_measure(MSG),
    warmup_all=False,
    references=dict(STREAM_REFERENCES),
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
