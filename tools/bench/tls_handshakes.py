"""tls_handshakes: new TLS 1.3 connections per second (connect, full
handshake, one 64-byte echo, close).

Client and server are in one context / loop; ``CONCURRENCY`` clients run at
once, each making ``count / CONCURRENCY`` connections one after another.
No session resumption: every connection is a full handshake (ECDHE P-256
certificate, TLS 1.3).  Timed from the first connect to the last close.
Figure: handshakes per second.

Checked: every echo came back byte for byte, and the server answered
exactly ``count`` connections.

impls:
  corosio_py        ``TCPServer(..., ssl=)`` echo handler; clients
                    ``TCPSocket.connect`` + ``TLSStream.handshake``.
  asyncio / uvloop  ``asyncio.start_server(..., ssl=)`` and
                    ``asyncio.open_connection(..., ssl=)``.
"""

from __future__ import annotations

from tools.bench import _tls
from tools.bench._net import HOST
from tools.bench._runners import now, run_asyncio, run_corosio
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

CONCURRENCY = 8
MESSAGE = bytes(range(64))

#: (elapsed s, echoes that matched, connections the server saw)
Result = tuple[float, int, int]


def _corosio(args: RunArgs, count: int, certs: _tls.Certs) -> Result:
    import corosio_py
    from corosio_py import TCPServer, TCPSocket, TLSStream

    served = [0]
    server_ctx, client_ctx = certs.server_context(), certs.client_context()

    async def echo(stream: TLSStream) -> None:
        served[0] += 1  # one context thread in the suite cell (see impls)
        stream.next_layer.no_delay = True  # as asyncio's transports do
        data = await stream.read_exactly(len(MESSAGE))
        await stream.write_all(data)

    async def main() -> Result:
        ctx = corosio_py.current_executor().context
        server = TCPServer(ctx, (HOST, 0), echo, ssl=server_ctx, backlog=512)
        server.start()
        port = server.local_endpoint().port

        async def client(n: int) -> int:
            good = 0
            for _ in range(n):
                sock = TCPSocket(ctx)
                await sock.connect((HOST, port))
                sock.no_delay = True
                stream = TLSStream(sock, client_ctx, server_hostname="localhost")
                try:
                    await stream.handshake()
                    await stream.write_all(MESSAGE)
                    good += await stream.read_exactly(len(MESSAGE)) == MESSAGE
                finally:
                    stream.close()
            return good

        t0 = now()
        goods = await corosio_py.gather(
            *(client(count // CONCURRENCY) for _ in range(CONCURRENCY))
        )
        elapsed = now() - t0
        while server.connections:
            await corosio_py.sleep(0.001)
        server.stop()
        return elapsed, sum(goods), served[0]

    result: Result = run_corosio(args, main)
    return result


def _asyncio(args: RunArgs, count: int, certs: _tls.Certs) -> Result:
    import asyncio

    served = [0]
    server_ctx, client_ctx = certs.server_context(), certs.client_context()

    async def main() -> Result:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served[0] += 1
            try:
                writer.write(await reader.readexactly(len(MESSAGE)))
                await writer.drain()
            finally:
                writer.close()

        server = await asyncio.start_server(echo, HOST, 0, ssl=server_ctx, backlog=512)
        port = server.sockets[0].getsockname()[1]

        async def client(n: int) -> int:
            good = 0
            for _ in range(n):
                reader, writer = await asyncio.open_connection(
                    HOST, port, ssl=client_ctx, server_hostname="localhost"
                )
                writer.write(MESSAGE)
                good += await reader.readexactly(len(MESSAGE)) == MESSAGE
                writer.close()
            return good

        t0 = now()
        goods = await asyncio.gather(*(client(count // CONCURRENCY) for _ in range(CONCURRENCY)))
        elapsed = now() - t0
        server.close()
        return elapsed, sum(goods), served[0]

    result: Result = run_asyncio(args, main)
    return result


def measure(args: RunArgs, run: Runner) -> Measurement:
    count = args.params["connections"] // CONCURRENCY * CONCURRENCY
    with _tls.Certs() as certs:
        elapsed, good, served = run(args, count, certs)
    check(good == count, f"{good} of {count} echoes matched")
    check(served == count, f"the server saw {served} connections, expected {count}")
    return Measurement(
        figures={"handshakes_per_s": count / elapsed},
        extra={"connections": count, "elapsed_s": elapsed},
    )


WORKLOAD = Workload(
    name="tls_handshakes",
    title=f"new TLS 1.3 connections (handshake, one echo, close), {CONCURRENCY} clients at once",
    figures=(Figure("handshakes_per_s", "handshakes", "handshakes/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("asyncio", "asyncio", _asyncio),
        Impl("uvloop", "uvloop", _asyncio),
    ),
    sizes={"anchor": {"connections": 4000}, "full": {"connections": 2000},
           "quick": {"connections": 400}},
    measure=measure,
    references={"asyncio": "asyncio", "uvloop": "uvloop"},
    unavailable=_tls.unavailable,
    warmup_all=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
