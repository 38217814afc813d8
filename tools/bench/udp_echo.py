"""udp_echo: 64-byte UDP echo round trips on loopback.

Client and echo server are two sockets in one context / loop.  ``warmup``
untimed round trips, then ``n`` timed ones, each timed from just before the
send until the echo is received.  Figures: round trips/s = 1 / mean
round-trip time, and the mean round-trip time (µs).

Checked: exactly ``warmup + n`` round trips, each echo equal to what was
sent (the payload alternates between two messages); the server echoed every
datagram.

impls:
  corosio_py        two ``UDPSocket``s; client ``send`` / ``recv`` on a
                    connected socket, server ``recv_from`` / ``send_to``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_protocol / uvloop_protocol  ``create_datagram_endpoint`` with
                    ``DatagramProtocol`` callbacks on both ends.
"""

from __future__ import annotations

import asyncio

from tools.bench._net import (
    HOST,
    MSG,
    PINGPONG_FIGURES,
    PINGPONG_SIZES,
    EchoProtocol,
    PingProtocol,
    PingResult,
    clock_ns,
    messages,
    pingpong_measure,
)
from tools.bench._runners import corosio_context, run_asyncio
from tools.bench._spec import COROSIO, Impl, RunArgs, Workload
from tools.bench._worker import worker_main


def _corosio(args: RunArgs, n: int, warm: int) -> PingResult:
    import corosio_py

    total = warm + n
    msgs = messages()
    echoed = [0]
    with corosio_context(args) as ctx:
        server = corosio_py.UDPSocket(ctx)
        server.bind((HOST, 0))
        client = corosio_py.UDPSocket(ctx)

        async def echo() -> None:
            buf = bytearray(2048)
            view = memoryview(buf)
            recv_from = server.recv_from
            send_to = server.send_to
            for _ in range(total):
                k, sender = await recv_from(buf)
                await send_to(view[:k], sender)
                echoed[0] += 1
            server.close()

        async def ping() -> PingResult:
            await client.connect(server.local_endpoint())
            buf = bytearray(2048)
            send = client.send
            recv = client.recv
            lat: list[int] = []
            rec = lat.append
            bad = 0
            for i in range(total):
                msg = msgs[i & 1]
                t = clock_ns()
                await send(msg)
                got = await recv(buf)
                t1 = clock_ns()
                if i >= warm:
                    rec(t1 - t)
                if got != MSG or buf[:MSG] != msg:
                    bad += 1
            client.close()
            return lat, bad, 0

        corosio_py.spawn(ctx, echo())
        task = corosio_py.spawn(ctx, ping())
        ctx.run()
        lat, bad, _ = task.result()
    return lat, bad, echoed[0]


def _asyncio_protocol(args: RunArgs, n: int, warm: int) -> PingResult:
    echoed = [0]
    lat: list[int] = []
    bad = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        server, _ = await loop.create_datagram_endpoint(
            lambda: EchoProtocol(echoed), local_addr=(HOST, 0)
        )
        addr = server.get_extra_info("sockname")
        client, pinger = await loop.create_datagram_endpoint(
            lambda: PingProtocol(
                warm + n, warm, lat, bad, lambda _: done.set_result(None), datagram=True
            ),
            remote_addr=addr,
        )
        pinger.start()
        await done
        client.close()
        server.close()

    run_asyncio(args, main)
    return lat, bad[0], echoed[0]


WORKLOAD = Workload(
    name="udp_echo",
    title="64-byte UDP echo round trips on loopback (client and server in one loop)",
    figures=PINGPONG_FIGURES,
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, all_backends=False, concurrency_hint=1),
        Impl("asyncio_protocol", "asyncio", _asyncio_protocol),
        Impl("uvloop_protocol", "uvloop", _asyncio_protocol),
    ),
    sizes=PINGPONG_SIZES,
    # One datagram echoed per round trip.
    measure=pingpong_measure(1),
    warmup_all=False,
    references={"asyncio": "asyncio_protocol", "uvloop": "uvloop_protocol"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
