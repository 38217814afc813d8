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

import asyncio
import functools
import os
import tempfile

from tools.bench._net import (
    MSG,
    PINGPONG_FIGURES,
    PINGPONG_SIZES,
    PingResult,
    asyncio_echo_handler,
    asyncio_stream_ping,
    corosio_stream_echo,
    corosio_stream_ping,
    pingpong_measure,
)
from tools.bench._runners import corosio_context, run_asyncio
from tools.bench._spec import COROSIO, Impl, Measurement, RunArgs, Runner, Workload
from tools.bench._worker import worker_main


def _corosio(args: RunArgs, n: int, warm: int, path: str) -> PingResult:
    import corosio_py

    echoed = [0]
    with corosio_context(args) as ctx:
        acceptor = corosio_py.LocalStreamAcceptor(ctx, path)
        client = corosio_py.LocalStreamSocket(ctx)

        async def echo() -> None:
            server = await acceptor.accept()
            acceptor.close()
            await corosio_stream_echo(server, echoed)

        async def ping() -> PingResult:
            await client.connect(path)
            return await corosio_stream_ping(client, warm + n, warm)

        corosio_py.spawn(ctx, echo())
        task = corosio_py.spawn(ctx, ping())
        ctx.run()
        lat, bad, _ = task.result()
    return lat, bad, echoed[0]


def _asyncio_streams(args: RunArgs, n: int, warm: int, path: str) -> PingResult:
    echoed = [0]

    async def main() -> PingResult:
        server = await asyncio.start_unix_server(asyncio_echo_handler(echoed), path)
        r, w = await asyncio.open_unix_connection(path)
        result = await asyncio_stream_ping(r, w, warm + n, warm)
        server.close()
        await server.wait_closed()
        return result

    lat, bad, _ = run_asyncio(args, main)
    return lat, bad, echoed[0]


_pingpong = pingpong_measure(MSG)


def measure(args: RunArgs, run: Runner) -> Measurement:
    """The ping-pong measure, on a socket path in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="corosio-bench-") as tmp:
        path = os.path.join(tmp, "pingpong.sock")
        return _pingpong(args, functools.partial(run, path=path))


WORKLOAD = Workload(
    name="unix_pingpong",
    title="64-byte ping-pong on one Unix-domain stream connection (one loop)",
    figures=PINGPONG_FIGURES,
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, all_backends=False, concurrency_hint=1),
        Impl("asyncio_streams", "asyncio", _asyncio_streams),
        Impl("uvloop_streams", "uvloop", _asyncio_streams),
    ),
    sizes=PINGPONG_SIZES,
    measure=measure,
    warmup_all=False,
    references={"asyncio": "asyncio_streams", "uvloop": "uvloop_streams"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
