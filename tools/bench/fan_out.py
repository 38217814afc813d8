"""fan_out: ``conns`` loopback connections, each doing ``rounds`` 64-byte round trips.

All clients run at once, in one context / loop with the echo server, which
serves every connection with its own task (or protocol instance).  The
clock starts once every connection is established and accepted, and stops
when the last client is done.  Figures: round trips/s over the whole run
(``conns * rounds / elapsed``) and the per-round-trip time (mean, p50, p99).

Checked: ``conns * rounds`` round trips timed; every echo is 64 bytes and
equal to what was sent (the payload alternates between two messages); the
server echoed ``conns * rounds * 64`` bytes.

impls:
  corosio_py        ``TCPAcceptor`` task spawning one echo task per accepted
                    ``TCPSocket``; one client task per connection
                    (``write_some`` / ``read_some``), run with ``gather``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_streams / uvloop_streams  start_server + one task per client
                    (``write; await drain; await readexactly``).
  asyncio_protocol / uvloop_protocol  Protocol callbacks on both sides.
  trio              one task per server connection and per client.
  floor_epoll       one thread, one ``select.epoll`` for all 2 x conns
                    sockets, ``recv_into`` one preallocated buffer.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Sequence
from typing import Any

from tools.bench._net import (
    HOST,
    MSG,
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
    latency_stats,
    messages,
    stream_impls,
    trio_stream_echo,
    trio_stream_ping,
)
from tools.bench._runners import corosio_context, now, run_asyncio
from tools.bench._spec import Figure, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

#: (elapsed s, per-round-trip ns, bad echoes, bytes the server echoed)
Result = tuple[float, list[int], int, int]


def _merged(elapsed: float, pings: Sequence[PingResult], echoed: int) -> Result:
    """One result from every client's ping-pong result."""
    lat = [t for result in pings for t in result[0]]
    return elapsed, lat, sum(result[1] for result in pings), echoed


def _corosio(args: RunArgs, conns: int, rounds: int) -> Result:
    import corosio_py

    echoed = [0]
    with corosio_context(args) as ctx:
        acceptor = corosio_py.TCPAcceptor(ctx, (HOST, 0))
        acceptor.listen(max(conns, 128))
        endpoint = acceptor.local_endpoint()

        async def accept_all() -> None:
            for _ in range(conns):
                sock = await acceptor.accept()
                sock.no_delay = True
                corosio_py.spawn(ctx, corosio_stream_echo(sock, echoed))
            acceptor.close()

        async def main() -> tuple[float, list[PingResult]]:
            accepting = corosio_py.spawn(ctx, accept_all())
            socks = []
            for _ in range(conns):
                sock = corosio_py.TCPSocket(ctx)
                await sock.connect(endpoint)
                sock.no_delay = True
                socks.append(sock)
            await accepting
            t0 = now()
            pings = await corosio_py.gather(*(corosio_stream_ping(s, rounds, 0) for s in socks))
            return now() - t0, pings

        task = corosio_py.spawn(ctx, main())
        ctx.run()
        elapsed, pings = task.result()
    return _merged(elapsed, pings, echoed[0])


def _asyncio_streams(args: RunArgs, conns: int, rounds: int) -> Result:
    echoed = [0]

    async def main() -> tuple[float, list[PingResult]]:
        server = await asyncio.start_server(
            asyncio_echo_handler(echoed), HOST, 0, backlog=max(conns, 128)
        )
        port = server.sockets[0].getsockname()[1]
        streams = [await asyncio.open_connection(HOST, port) for _ in range(conns)]
        await asyncio.sleep(0.01)  # let the server side accept everyone
        t0 = now()
        pings = await asyncio.gather(*(asyncio_stream_ping(r, w, rounds, 0) for r, w in streams))
        elapsed = now() - t0
        server.close()
        await server.wait_closed()
        return elapsed, list(pings)

    elapsed, pings = run_asyncio(args, main)
    return _merged(elapsed, pings, echoed[0])


def _asyncio_protocol(args: RunArgs, conns: int, rounds: int) -> Result:
    lat: list[int] = []
    echoed = [0]
    bad = [0]

    async def main() -> float:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[float] = loop.create_future()
        remaining = [conns]

        def finished(client: PingProtocol) -> None:
            client.tr.close()
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set_result(now())

        server = await loop.create_server(
            lambda: EchoProtocol(echoed), HOST, 0, backlog=max(conns, 128)
        )
        port = server.sockets[0].getsockname()[1]
        clients = [
            (await loop.create_connection(
                lambda: PingProtocol(rounds, 0, lat, bad, finished), HOST, port
            ))[1]
            for _ in range(conns)
        ]
        await asyncio.sleep(0.01)  # let the server side accept everyone
        t0 = now()
        for c in clients:
            c.start()
        t1 = await done
        server.close()
        await server.wait_closed()
        return t1 - t0

    elapsed: float = run_asyncio(args, main)
    return elapsed, lat, bad[0], echoed[0]


def _trio(args: RunArgs, conns: int, rounds: int) -> Result:
    import trio

    echoed = [0]

    async def main() -> tuple[float, list[PingResult]]:
        async with trio.open_nursery() as outer:
            listeners = await trio.open_tcp_listeners(0, host=HOST, backlog=max(conns, 128))
            port = listeners[0].socket.getsockname()[1]

            async def acceptor() -> None:
                for _ in range(conns):
                    stream = await listeners[0].accept()
                    outer.start_soon(trio_stream_echo, stream, echoed)
                await listeners[0].aclose()

            outer.start_soon(acceptor)
            streams = [await trio.open_tcp_stream(HOST, port) for _ in range(conns)]
            pings: list[PingResult] = []

            async def client(stream: Any) -> None:
                pings.append(await trio_stream_ping(stream, rounds, 0))

            t0 = now()
            async with trio.open_nursery() as nursery:
                for st in streams:
                    nursery.start_soon(client, st)
            elapsed = now() - t0
        return elapsed, pings

    elapsed, pings = trio.run(main)
    return _merged(elapsed, pings, echoed[0])


def _floor_epoll(args: RunArgs, conns: int, rounds: int) -> Result:
    msgs = messages()
    pairs = connected_pairs(conns)
    ep = select.epoll()
    servers = {}
    clients: dict[int, list[Any]] = {}
    for c, s in pairs:
        c.setblocking(False)
        s.setblocking(False)
        servers[s.fileno()] = s
        clients[c.fileno()] = [c, bytearray(MSG * 2), 0, 0, 0]  # sock, buf, got, done, t
        ep.register(s.fileno(), select.EPOLLIN)
        ep.register(c.fileno(), select.EPOLLIN)
    lat: list[int] = []
    rec = lat.append
    live = conns
    buf = bytearray(RBUF)  # one preallocated receive buffer for the server side
    view = memoryview(buf)
    echoed = bad = 0
    try:
        t0 = now()
        for st in clients.values():
            st[4] = clock_ns()
            st[0].send(msgs[0])
        while live:
            for fd, _ in ep.poll():
                s = servers.get(fd)
                if s is not None:
                    k = s.recv_into(buf)
                    if k:
                        s.send(view[:k])
                        echoed += k
                    else:
                        ep.unregister(fd)
                        s.close()
                    continue
                st = clients[fd]
                cbuf = st[1]
                st[2] += st[0].recv_into(memoryview(cbuf)[st[2]:])
                if st[2] < MSG:
                    continue
                rec(clock_ns() - st[4])
                i = st[3]
                if st[2] != MSG or cbuf[:MSG] != msgs[i & 1]:
                    bad += 1
                st[2] = 0
                i += 1
                st[3] = i
                if i == rounds:
                    ep.unregister(fd)
                    st[0].close()
                    live -= 1
                    continue
                st[4] = clock_ns()
                st[0].send(msgs[i & 1])
        elapsed = now() - t0
    finally:
        for s in servers.values():
            s.close()
        for st in clients.values():
            st[0].close()
        ep.close()
    return elapsed, lat, bad, echoed


def measure(args: RunArgs, run: Runner) -> Measurement:
    conns = args.params["conns"]
    rounds = args.params["rounds"]
    elapsed, lat, bad, echoed = run(args, conns, rounds)
    n = conns * rounds
    check(bad == 0, f"{bad} echoes differed from what was sent")
    check(echoed == n * MSG, f"the server echoed {echoed} bytes, expected {n * MSG}")
    mean, p50, p99 = latency_stats(lat, n)
    return Measurement(
        figures={"round_trips_per_s": n / elapsed, "rtt_us": mean},
        latency={"rtt_us": (p50, p99)},
        extra={"elapsed_s": elapsed, "round_trips": n},
    )


WORKLOAD = Workload(
    name="fan_out",
    title="many concurrent loopback connections doing 64-byte round trips",
    figures=(
        Figure("round_trips_per_s", "round trips/s", "round trips/s"),
        Figure("rtt_us", "per-round-trip time (mean)", "µs", higher_is_better=False,
               latency=True),
    ),
    impls=stream_impls(_corosio, _asyncio_streams, _asyncio_protocol, _trio, _floor_epoll),
    sizes={
        "anchor": {"conns": 100, "rounds": 1000},
        # The suite's size: fewer rounds, so that `make bench` stays under 10 minutes.
        "full": {"conns": 100, "rounds": 100},
        "quick": {"conns": 100, "rounds": 50},
    },
    measure=measure,
    warmup_all=False,
    references=dict(STREAM_REFERENCES),
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
