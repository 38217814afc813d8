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

from typing import Any

from tools.bench._harness import (
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Workload,
    asyncio_backend_label,
    check,
    worker_main,
)
from tools.bench._net import HOST, MSG, clock_ns, corosio_ctx, latency_stats, messages, run_asyncio

#: (per-round-trip ns of the timed round trips, bad echoes, datagrams the server echoed)
Result = tuple[list[int], int, int]


def _corosio(args: RunArgs, n: int, warm: int) -> Result:
    import corosio_py

    total = warm + n
    msgs = messages()
    echoed = [0]
    with corosio_ctx(args) as ctx:
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

        async def ping() -> Result:
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


def _asyncio_protocol(args: RunArgs, n: int, warm: int) -> Result:
    import asyncio

    total = warm + n
    msgs = messages()
    echoed = [0]

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.tr = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.tr.sendto(data, addr)
                echoed[0] += 1

        class Client(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.tr = transport
                self.i = 0
                self.bad = 0
                self.lat: list[int] = []
                self.t = clock_ns()
                transport.sendto(msgs[0])

            def datagram_received(self, data: bytes, addr: Any) -> None:
                t1 = clock_ns()
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
                self.tr.sendto(msgs[i & 1])

        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        addr = server.get_extra_info("sockname")
        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=addr)
        result = await done
        client.close()
        server.close()
        return result

    lat, bad, _ = run_asyncio(args.impl, main)
    return lat, bad, echoed[0]


def run(args: RunArgs) -> Measurement:
    n = args.params["n"]
    warm = args.params["warmup"]
    if args.impl.startswith("corosio_py"):
        lat, bad, echoed = _corosio(args, n, warm)
    else:
        lat, bad, echoed = _asyncio_protocol(args, n, warm)
    check(bad == 0, f"{bad} echoes differed from what was sent")
    check(echoed == warm + n, f"the server echoed {echoed} datagrams, expected {warm + n}")
    mean, p50, p99 = latency_stats(lat, n)
    return Measurement(
        figures={"round_trips_per_s": 1e6 / mean, "rtt_us": mean},
        latency={"rtt_us": (p50, p99)},
        extra={"round_trips": n, "warmup": warm, "busy_s": sum(lat) / 1e9},
    )


WORKLOAD = Workload(
    name="udp_echo",
    title="64-byte UDP echo round trips on loopback (client and server in one loop)",
    figures=(
        Figure("round_trips_per_s", "round trips/s", "round trips/s"),
        Figure("rtt_us", "round-trip time (mean)", "µs", higher_is_better=False, latency=True),
    ),
    impls=(
        Impl("corosio_py", "corosio_py"),
        Impl("corosio_py_hint1", "corosio_py", all_backends=False),
        Impl("asyncio_protocol", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop_protocol", "uvloop", backend="libuv"),
    ),
    sizes={
        "anchor": {"n": 50_000, "warmup": 1_000},
        "full": {"n": 5_000, "warmup": 1_000},
        "quick": {"n": 3_000, "warmup": 500},
    },
    run=run,
    warmup_all=False,
    references={"asyncio": "asyncio_protocol", "uvloop": "uvloop_protocol"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
