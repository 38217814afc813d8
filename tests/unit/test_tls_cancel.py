"""TLSStream cancellation and close races, on every backend.

Cancellation never loses data: a read cancelled by ``Task.cancel``, a stop
token, a timeout or ``stream.cancel()`` consumed nothing; a write whose
records were already made completes with its count and the cancel lands at
the next suspension; ``close()`` from another thread ends pending reads and
writes with ``Cancelled``.  Fds are checked for leaks.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import corosio_py
from corosio_py import Cancelled, StopSource, TLSStream
from tests.unit.tcp_helpers import until
from tests.unit.tls_helpers import (
    NO_OPENSSL,
    Certs,
    handshake_pair,
    have_openssl,
    make_certs,
    read_all,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.usefixtures("fd_leak_check"),
    pytest.mark.skipif(not have_openssl(), reason=NO_OPENSSL),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


def ctx_of_task() -> corosio_py.IOContext:
    return corosio_py.current_executor().context


def _read_parked(stream: TLSStream) -> bool:
    desc = stream.next_layer._desc
    with desc.lock:
        return desc.reads.op is not None


def _write_parked(stream: TLSStream) -> bool:
    desc = stream.next_layer._desc
    with desc.lock:
        return desc.writes.op is not None


@pytest.mark.parametrize("how", ["task", "token", "timeout", "stream"])
def test_cancelled_read_consumes_nothing(backend: str, certs: Certs, how: str) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            source = StopSource()

            async def read_one() -> int:
                if how == "timeout":
                    with corosio_py.timeout(0.05):
                        return await server.read_some(bytearray(10))
                return await server.read_some(bytearray(10), stop_token=source.token)

            task = corosio_py.spawn(ctx, read_one())
            await until(lambda: _read_parked(server), "a parked read")
            if how == "task":
                task.cancel()
            elif how == "token":
                source.request_stop()
            elif how == "stream":
                server.cancel()
            with pytest.raises(TimeoutError if how == "timeout" else Cancelled):
                await task
            await client.write_all(b"0123456789")
            assert await server.read_exactly(10) == b"0123456789"
        finally:
            client.close()
            server.close()

    corosio_py.run(main(), backend=backend)


def test_cancelled_read_keeps_a_partial_record(backend: str, certs: Certs) -> None:
    """Half a record arrives, the read is cancelled, the rest arrives: the
    whole record is read (the half stayed in the stream)."""
    import ssl

    from corosio_py.testing import socket_pair

    async def main() -> None:
        ctx = ctx_of_task()
        raw, b = socket_pair(ctx)
        server = TLSStream(b, certs.server_context(), server_side=True)
        # A hand-driven client, so the test controls where records split.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
        try:
            accepting = corosio_py.spawn(ctx, server.handshake())
            buf = bytearray(65536)
            while True:
                try:
                    client.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                if outgoing.pending:
                    await raw.write_all(outgoing.read())
                if done:
                    break
                incoming.write(buf[: await raw.read_some(buf)])
            await accepting
            payload = b"R" * 5000
            client.write(payload)
            record = outgoing.read()
            await raw.write_all(record[:2000])
            task = corosio_py.spawn(ctx, server.read_exactly(len(payload)))
            await until(lambda: _read_parked(server), "a parked read")
            await corosio_py.sleep(0.01)  # the half record reaches the stream
            task.cancel()
            with pytest.raises(Cancelled):
                await task
            await raw.write_all(record[2000:])
            assert await server.read_exactly(len(payload)) == payload
        finally:
            raw.close()
            server.close()

    corosio_py.run(main(), backend=backend)


def test_cancelled_write_delivers_its_count(backend: str, certs: Certs) -> None:
    """A write parked on a full socket holds sealed records: a cancel
    completes it with its count, the next await is cancelled, and the peer
    still gets every byte exactly once, in order."""

    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            client.next_layer.send_buffer_size = 4096
            block = bytes(range(256)) * 1024  # 256 KiB
            results: list[object] = []

            async def writer() -> None:
                sent = 0
                try:
                    while True:
                        sent += await client.write_some(memoryview(block)[sent % len(block) :])
                        results.append(sent)
                except Cancelled:
                    results.append(("cancelled", sent))

            task = corosio_py.spawn(ctx, writer())
            await until(lambda: _write_parked(client), "a parked write")
            task.cancel()
            await task
            assert results[-1][0] == "cancelled"  # type: ignore[index]
            total = results[-1][1]  # type: ignore[index]
            assert total > 0  # the parked write delivered its count
            # Everything counted reaches the peer (the rest of the sealed
            # records go out with the next operation), nothing more.
            flush = corosio_py.spawn(ctx, client.write_all(b"END"))
            data = await read_all(server, total + 3)
            await flush
            expected = (block * (total // len(block) + 2))[:total] + b"END"
            assert data == expected
        finally:
            client.close()
            server.close()

    corosio_py.run(main(), backend=backend)


@pytest.mark.parametrize("threads", [1, 4])
def test_close_from_another_thread(backend: str, certs: Certs, threads: int) -> None:
    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            client.next_layer.send_buffer_size = 4096
            reader = corosio_py.spawn(ctx, client.read_some(bytearray(100)))

            async def flood() -> None:
                while True:
                    await client.write_some(b"x" * 200_000)

            writer = corosio_py.spawn(ctx, flood())
            await until(lambda: _read_parked(client) and _write_parked(client), "both parked")
            import threading

            closer = threading.Thread(target=client.close)
            closer.start()
            closer.join(10)
            for task in (reader, writer):
                with pytest.raises(Cancelled):
                    await task
            with pytest.raises(OSError):
                await client.read_some(bytearray(1))
        finally:
            client.close()
            server.close()

    corosio_py.run(main(), threads=threads, backend=backend)


@pytest.mark.parametrize("threads", [1, 4])
def test_random_read_cancellations_lose_nothing(
    backend: str, certs: Certs, threads: int
) -> None:
    """A counting stream read through many random timeouts arrives whole."""
    rng = random.Random(1234)
    total = 400_000
    data = bytes(rng.randrange(256) for _ in range(total))

    async def main() -> None:
        ctx = ctx_of_task()
        client, server = await handshake_pair(ctx, certs.client_context(), certs.server_context())
        try:
            async def pump() -> None:
                at = 0
                while at < total:
                    step = rng.randrange(1, 20_000)
                    await client.write_all(data[at : at + step])
                    at += step
                    if rng.random() < 0.3:
                        await corosio_py.sleep(0.0005)

            writer = corosio_py.spawn(ctx, pump())
            got = bytearray()
            buf = bytearray(7000)
            cancels = 0
            while len(got) < total:
                try:
                    with corosio_py.timeout(rng.choice([0, 0.0002, 0.001, 0.01])):
                        n = await server.read_some(buf)
                except TimeoutError:
                    cancels += 1
                    continue
                assert n
                got += buf[:n]
            await writer
            assert bytes(got) == data
            assert cancels > 0
        finally:
            client.close()
            server.close()

    corosio_py.run(main(), threads=threads, backend=backend)
