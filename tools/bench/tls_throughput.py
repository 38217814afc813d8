"""tls_throughput: ``total`` bytes in 64 KiB writes over one TLS 1.3
loopback connection (AES-256-GCM records).

Sender and receiver are in one context / loop.  Timed from just before the
first write until the receiver has counted ``total`` decrypted bytes.
Figure: MB/s (10^6 plaintext bytes per second).  The stream carries the
pattern of :mod:`tools.bench.socket_throughput` and the receiver checks
three bytes of every read against it.

impls:
  corosio_py        ``TLSStream`` over ``socket_pair``; sender
                    ``write_some`` of 64 KiB windows, receiver
                    ``read_some`` into a 256 KiB buffer.
  asyncio_streams / uvloop_streams  ``asyncio.start_server(ssl=)`` /
                    ``open_connection(ssl=)``, ``write(chunk); await drain()``
                    / ``await reader.read(65536)`` (asyncio's SSL transport,
                    uvloop's SSL transport).
"""

from __future__ import annotations

from tools.bench import _tls
from tools.bench._harness import (
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Workload,
    asyncio_backend_label,
    check,
    now,
    worker_main,
)
from tools.bench._net import HOST, corosio_ctx, run_asyncio
from tools.bench.socket_throughput import RBUF, bad_read, pattern, window

#: (elapsed s, bytes received, bytes sent, reads whose contents were wrong)
Result = tuple[float, int, int, int]


def _corosio(args: RunArgs, total: int, certs: _tls.Certs) -> Result:
    import corosio_py
    from corosio_py import TLSStream
    from corosio_py.testing import socket_pair

    pat = pattern()
    with corosio_ctx(args) as ctx:
        a, b = socket_pair(ctx)
        a.no_delay = b.no_delay = True  # as asyncio's transports do
        client = TLSStream(a, certs.client_context(), server_hostname="localhost")
        server = TLSStream(b, certs.server_context(), server_side=True)

        async def sink() -> tuple[float, int, int]:
            await server.handshake()
            buf = bytearray(RBUF)
            read = server.read_some
            got = bad = 0
            while got < total:
                k = await read(buf)
                if not k:
                    break
                if bad_read(buf, k, got):
                    bad += 1
                got += k
            return now(), got, bad

        async def source() -> tuple[float, int]:
            await client.handshake()
            write = client.write_some
            sent = 0
            t0 = now()
            while sent < total:
                sent += await write(window(pat, sent, total))
            return t0, sent

        receiver = corosio_py.spawn(ctx, sink())
        sender = corosio_py.spawn(ctx, source())
        ctx.run()
        t1, got, bad = receiver.result()
        t0, sent = sender.result()
        client.close()
        server.close()
    return t1 - t0, got, sent, bad


def _asyncio(args: RunArgs, total: int, certs: _tls.Certs) -> Result:
    import asyncio

    pat = pattern()

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[float, int, int]] = loop.create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got = bad = 0
            read = reader.read
            while got < total:
                data = await read(65536)
                if not data:
                    break
                k = len(data)
                if bad_read(data, k, got):
                    bad += 1
                got += k
            done.set_result((now(), got, bad))
            writer.close()

        server = await asyncio.start_server(handle, HOST, 0, ssl=certs.server_context())
        port = server.sockets[0].getsockname()[1]
        _, w = await asyncio.open_connection(
            HOST, port, ssl=certs.client_context(), server_hostname="localhost"
        )
        write, drain = w.write, w.drain
        sent = 0
        t0 = now()
        while sent < total:
            chunk = window(pat, sent, total)
            write(chunk)
            sent += len(chunk)
            await drain()
        t1, got, bad = await done
        w.close()
        server.close()
        return t1 - t0, got, sent, bad

    result: Result = run_asyncio(args.impl, main)
    return result


def run(args: RunArgs) -> Measurement:
    total = args.params["total_mib"] << 20
    certs = _tls.Certs()
    try:
        if args.impl.startswith("corosio_py"):
            dt, got, sent, bad = _corosio(args, total, certs)
        else:
            dt, got, sent, bad = _asyncio(args, total, certs)
    finally:
        certs.close()
    check(sent == total, f"sent {sent} bytes, expected {total}")
    check(got == total, f"received {got} bytes, expected {total}")
    check(bad == 0, f"{bad} reads did not match the stream pattern")
    return Measurement(figures={"mb_per_s": total / dt / 1e6}, extra={"elapsed_s": dt})


WORKLOAD = Workload(
    name="tls_throughput",
    title="bulk transfer in 64 KiB writes over one TLS 1.3 loopback connection",
    figures=(Figure("mb_per_s", "throughput", "MB/s"),),
    impls=(
        Impl("corosio_py", "corosio_py"),
        Impl("asyncio_streams", "asyncio", backend=asyncio_backend_label()),
        Impl("uvloop_streams", "uvloop", backend="libuv"),
    ),
    sizes={"anchor": {"total_mib": 512}, "full": {"total_mib": 128}, "quick": {"total_mib": 32}},
    run=run,
    references={"asyncio": "asyncio_streams", "uvloop": "uvloop_streams"},
    unavailable=_tls.unavailable,
    warmup_all=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
