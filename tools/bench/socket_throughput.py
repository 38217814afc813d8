"""socket_throughput: ``total`` bytes in 64 KiB writes over one loopback connection.

Sender and receiver are in one context / loop.  Timed from just before the
first write until the receiver has counted ``total`` bytes.  Figure: MB/s
(10^6 bytes per second).

The stream carries a known pattern: the byte at stream offset ``o`` is
``o % 251``.  Every write is a 64 KiB window of a preallocated pattern
buffer starting at the right phase (251 is prime, so consecutive windows
differ).  Checked: the receiver got exactly ``total`` bytes and the first,
middle and last byte of every read match the pattern (which catches reads
that report bytes without filling the buffer); the sender wrote ``total``.

impls:
  corosio_py        ``testing.socket_pair``; sender ``write_some`` (a partial
                    write continues at the next offset), receiver
                    ``read_some`` into a preallocated 256 KiB buffer.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_streams / uvloop_streams  ``write(chunk); await drain()`` /
                    ``await reader.read(65536)``.
  asyncio_protocol / uvloop_protocol  Protocol callbacks; the sender honours
                    ``pause_writing`` / ``resume_writing``.
  trio              ``send_all(chunk)`` / ``receive_some()`` (64 KiB).
  floor_epoll       one thread, non-blocking, ``select.epoll``; ``send`` with
                    partial-write tracking, ``recv_into`` a 256 KiB buffer.
(asyncio's and uvloop's transports read up to 256 KiB per recv, hence the
256 KiB receive buffers.)
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from typing import Any

from tools.bench._net import HOST, STREAM_REFERENCES, connected_pairs, stream_impls
from tools.bench._runners import corosio_context, now, run_asyncio
from tools.bench._spec import Figure, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

CHUNK = 64 * 1024
RBUF = 256 * 1024
PERIOD = 251

#: (elapsed s, bytes received, bytes sent, reads whose contents were wrong)
Result = tuple[float, int, int, int]


def pattern() -> memoryview:
    """CHUNK + PERIOD bytes of the stream pattern; window ``[o % 251:][:CHUNK]``."""
    return memoryview(bytes(i % PERIOD for i in range(CHUNK + PERIOD)))


def window(pat: memoryview, offset: int, total: int) -> memoryview:
    """The next write: up to 64 KiB of the stream starting at ``offset``."""
    phase = offset % PERIOD
    return pat[phase:phase + min(CHUNK, total - offset)]


def bad_read(data: Any, k: int, offset: int) -> bool:
    """Whether ``data[:k]`` (read at stream ``offset``) breaks the pattern."""
    mid = k >> 1
    return (
        data[0] != offset % PERIOD
        or data[mid] != (offset + mid) % PERIOD
        or data[k - 1] != (offset + k - 1) % PERIOD
    )


def corosio_transfer(
    args: RunArgs, total: int, wrap: Callable[[Any, Any], tuple[Any, Any]] | None = None
) -> Result:
    """corosio_py over ``testing.socket_pair``; ``wrap(a, b)`` returns the
    (client, server) streams to use instead (TLS), which handshake first."""
    import corosio_py
    from corosio_py.testing import socket_pair

    pat = pattern()
    with corosio_context(args) as ctx:
        a, b = socket_pair(ctx)
        a.no_delay = b.no_delay = True  # as asyncio's transports do
        client: Any
        server: Any
        client, server = wrap(a, b) if wrap else (a, b)

        async def sink() -> tuple[float, int, int]:
            if wrap:
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
            if wrap:
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


def asyncio_transfer(args: RunArgs, total: int, **tls: Any) -> Result:
    """asyncio / uvloop streams: ``write(chunk); await drain()`` against a
    ``read(65536)`` handler; ``tls``: ``server_ssl``, ``client_ssl`` and
    ``server_hostname`` (the loop's SSL transport)."""
    pat = pattern()
    server_ssl = tls.pop("server_ssl", None)
    client_ssl = tls.pop("client_ssl", None)

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

        server = await asyncio.start_server(handle, HOST, 0, ssl=server_ssl)
        port = server.sockets[0].getsockname()[1]
        _, w = await asyncio.open_connection(HOST, port, ssl=client_ssl, **tls)
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
        await server.wait_closed()
        return t1 - t0, got, sent, bad

    result: Result = run_asyncio(args, main)
    return result


def _asyncio_protocol(args: RunArgs, total: int) -> Result:
    pat = pattern()

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[float, int, int]] = loop.create_future()

        class Sink(asyncio.Protocol):
            got = 0
            bad = 0

            def data_received(self, data: bytes) -> None:
                k = len(data)
                if bad_read(data, k, self.got):
                    self.bad += 1
                self.got += k
                if self.got >= total and not done.done():
                    done.set_result((now(), self.got, self.bad))

        class Source(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.tr = transport
                self.sent = 0
                self.paused = False

            def pause_writing(self) -> None:
                self.paused = True

            def resume_writing(self) -> None:
                self.paused = False
                self.pump()

            def pump(self) -> None:
                write = self.tr.write
                while self.sent < total and not self.paused:
                    chunk = window(pat, self.sent, total)
                    self.sent += len(chunk)
                    write(chunk)

        server = await loop.create_server(Sink, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, src = await loop.create_connection(Source, HOST, port)
        t0 = now()
        src.pump()
        t1, got, bad = await done
        transport.close()
        server.close()
        await server.wait_closed()
        return t1 - t0, got, src.sent, bad

    result: Result = run_asyncio(args, main)
    return result


def _trio(args: RunArgs, total: int) -> Result:
    import trio

    pat = pattern()

    async def main() -> Result:
        res: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host=HOST)
            port = listeners[0].socket.getsockname()[1]

            async def sink() -> None:
                stream = await listeners[0].accept()
                got = 0
                bad = 0
                recv = stream.receive_some
                while got < total:
                    data = await recv()
                    if not data:
                        break
                    k = len(data)
                    if bad_read(data, k, got):
                        bad += 1
                    got += k
                res["t1"], res["got"], res["bad"] = now(), got, bad
                await stream.aclose()
                await listeners[0].aclose()

            nursery.start_soon(sink)
            stream = await trio.open_tcp_stream(HOST, port)
            send = stream.send_all
            sent = 0
            t0 = now()
            while sent < total:
                chunk = window(pat, sent, total)
                await send(chunk)
                sent += len(chunk)
        await stream.aclose()
        return res["t1"] - t0, res["got"], sent, res["bad"]

    result: Result = trio.run(main)
    return result


def _floor_epoll(args: RunArgs, total: int) -> Result:
    pat = pattern()
    ((c, s),) = connected_pairs(1)
    c.setblocking(False)
    s.setblocking(False)
    ep = select.epoll()
    cfd, sfd = c.fileno(), s.fileno()
    ep.register(cfd, select.EPOLLOUT)
    ep.register(sfd, select.EPOLLIN)
    buf = bytearray(RBUF)
    sent = got = bad = 0
    try:
        t0 = now()
        while got < total:
            for fd, _ in ep.poll():
                if fd == sfd:
                    k = s.recv_into(buf)
                    if not k:
                        raise EOFError("the sender closed early")
                    if bad_read(buf, k, got):
                        bad += 1
                    got += k
                else:
                    try:
                        while sent < total:
                            sent += c.send(window(pat, sent, total))
                    except BlockingIOError:
                        pass
                    if sent >= total:
                        ep.unregister(cfd)
        t1 = now()
    finally:
        ep.close()
        c.close()
        s.close()
    return t1 - t0, got, sent, bad


def checked(total: int, result: Result) -> Measurement:
    """The figure of a transfer of ``total`` bytes, after checking it."""
    dt, got, sent, bad = result
    check(sent == total, f"sent {sent} bytes, expected {total}")
    check(got == total, f"received {got} bytes, expected {total}")
    check(bad == 0, f"{bad} reads did not match the stream pattern")
    return Measurement(
        figures={"mb_per_s": total / dt / 1e6},
        extra={"elapsed_s": dt, "bytes": total},
    )


def measure(args: RunArgs, run: Runner) -> Measurement:
    total = args.params["total_mib"] << 20
    return checked(total, run(args, total))


WORKLOAD = Workload(
    name="socket_throughput",
    title="bulk transfer in 64 KiB writes over one loopback connection",
    figures=(Figure("mb_per_s", "throughput", "MB/s"),),
    impls=stream_impls(corosio_transfer, asyncio_transfer, _asyncio_protocol, _trio, _floor_epoll),
    sizes={
        "anchor": {"total_mib": 1024},
        # The suite's size: smaller, so that `make bench` stays under 10 minutes.
        "full": {"total_mib": 128},
        "quick": {"total_mib": 64},
    },
    measure=measure,
    warmup_all=False,
    references=dict(STREAM_REFERENCES),
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
