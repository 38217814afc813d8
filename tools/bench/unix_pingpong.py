"""unix_pingpong: 64-byte ping-pong over one Unix-domain stream connection.

Client and echo server are two tasks in one context / loop.  ``warmup``
untimed round trips, then ``n`` timed ones, each timed from just before the
write until the whole echo is read.  Figures: round trips/s = 1 / mean
round-trip time, and the mean round-trip time (µs).

Checked: exactly ``warmup + n`` round trips, each echo equal to what was
sent (the payload alternates between two messages); the server echoed every
byte.

impls:
  corosio_py        ``LocalStreamAcceptor`` + ``LocalStreamSocket.connect``;
                    client ``write_some`` then ``read_some`` into a
                    preallocated buffer; the echo task ``read_some`` /
                    ``write_some``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_streams / uvloop_streams  ``start_unix_server`` /
                    ``open_unix_connection``; client ``write(); await
                    drain(); await readexactly(64)``, server the reverse.
"""

from __future__ import annotations

import os
import tempfile

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
from tools.bench._net import (
    MSG,
    asyncio_echo_handler,
    asyncio_stream_ping,
    corosio_ctx,
    corosio_stream_echo,
    corosio_stream_ping,
    latency_stats,
    run_asyncio,
)

#: (per-round-trip ns of the timed round trips, bad echoes, bytes the server echoed)
Result = tuple[list[int], int, int]


def _corosio(args: RunArgs, n: int, warm: int, path: str) -> Result:
    import corosio_py

    echoed = [0]
    with corosio_ctx(args) as ctx:
        acceptor = corosio_py.LocalStreamAcceptor(ctx, path)
        client = corosio_py.LocalStreamSocket(ctx)

        async def echo() -> None:
            server = await acceptor.accept()
            acceptor.close()
            await corosio_stream_echo(server, echoed)

        async def ping() -> Result:
            await client.connect(path)
            return await corosio_stream_ping(client, warm + n, warm)

        corosio_py.spawn(ctx, echo())
        task = corosio_py.spawn(ctx, ping())
        ctx.run()
        lat, bad, _ = task.result()
    return lat, bad, echoed[0]


def _asyncio_streams(args: RunArgs, n: int, warm: int, path: str) -> Result:
    import asyncio

    echoed = [0]

    async def main() -> Result:
        server = await asyncio.start_unix_server(asyncio_echo_handler(echoed), path)
        r, w = await asyncio.open_unix_connection(path)
        result = await asyncio_stream_ping(r, w, warm + n, warm)
        server.close()
        await server.wait_closed()
        return result

    lat, bad, _ = run_asyncio(args.impl, main)
    return lat, bad, echoed[0]


def run(args: RunArgs) -> Measurement:
    n = args.params["n"]
    warm = args.params["warmup"]
    with tempfile.TemporaryDirectory(prefix="corosio-bench-") as tmp:
        path = os.path.join(tmp, "pingpong.sock")
        if args.impl.startswith("corosio_py"):
            lat, bad, echoed = _corosio(args, n, warm, path)
        else:
            lat, bad, echoed = _asyncio_streams(args, n, warm, path)
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
    name="unix_pingpong",
    title="64-byte ping-pong on one Unix-domain stream connection (one loop)",
    figures=(
        Figure("round_trips_per_s", "round trips/s", "round trips/s"),
        Figure("rtt_us", "round-trip time (mean)", "µs", higher_is_better=False, latency=True),
    ),
    impls=(
        Impl("corosio_py", "corosio_py"),
        Impl("corosio_py_hint1", "corosio_py", all_backends=False),
        Impl("asyncio_streams", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop_streams", "uvloop", backend="libuv"),
    ),
    sizes={
        "anchor": {"n": 50_000, "warmup": 1_000},
        "full": {"n": 5_000, "warmup": 1_000},
        "quick": {"n": 3_000, "warmup": 500},
    },
    run=run,
    warmup_all=False,
    references={"asyncio": "asyncio_streams", "uvloop": "uvloop_streams"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
