"""TLS churn: hundreds of connect/handshake/echo/shutdown cycles on a
context run by 4 threads, with random read cancellations; no byte lost or
duplicated, no descriptor left behind.

A ``TCPServer(..., ssl=)`` echoes every connection (reading with random
timeouts, so its reads are cancelled at random points) and answers the
client's close_notify.  8 client tasks share the cycles: each connects,
handshakes (TLS 1.2 or 1.3 at random), writes a seeded random payload in
random pieces while reading the echo through random timeouts, checks the
echo byte for byte, then shuts down and closes.
"""

from __future__ import annotations

import os
import random
import ssl
import threading
from pathlib import Path

import pytest

import corosio_py
from corosio_py import TCPServer, TCPSocket, TLSStream
from tests.stress._util import Stress, fd_count, scaled, timeout_for

pytestmark = pytest.mark.stress

CYCLES = 400
CLIENTS = 8
THREADS = 4


def _certs(directory: Path) -> object:
    from tests.unit.tls_helpers import make_certs

    return make_certs(directory)


async def _read_with_cancels(
    stream: TLSStream, buf: bytearray, rng: random.Random
) -> tuple[int, int]:
    """One read_some through random timeouts: (count, cancels seen)."""
    cancels = 0
    while True:
        try:
            with corosio_py.timeout(rng.choice((0.0, 0.0001, 0.001, 0.05))):
                return await stream.read_some(buf), cancels
        except TimeoutError:
            cancels += 1


@pytest.mark.timeout(timeout_for(240))
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_tls_churn_with_read_cancellations(stress: Stress, tmp_path: Path, backend: str) -> None:
    certs = _certs(tmp_path)
    cycles = scaled(CYCLES, minimum=CLIENTS)
    stress.begin(cycles, 240, clients=CLIENTS, threads=THREADS)
    server_ctx = certs.server_context()  # type: ignore[attr-defined]
    tls12 = certs.client_context()  # type: ignore[attr-defined]
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    client_contexts = (tls12, certs.client_context())  # type: ignore[attr-defined]
    counts = {"cycles": 0, "cancels": 0, "bytes": 0}
    counts_lock = threading.Lock()  # tasks on 4 threads add to counts

    def add(**more: int) -> None:
        with counts_lock:
            for key, value in more.items():
                counts[key] += value
    before = fd_count()

    async def echo(stream: TLSStream) -> None:
        rng = random.Random(stress.rng.random())
        buf = bytearray(rng.choice((1000, 16384, 65536)))
        while True:
            n, cancels = await _read_with_cancels(stream, buf, rng)
            add(cancels=cancels)
            if not n:
                break
            await stream.write_all(memoryview(buf)[:n])
        await stream.shutdown()

    async def client(ctx: corosio_py.IOContext, port: int, share: int, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(share):
            stress.check_deadline("TLS cycles")
            sock = TCPSocket(ctx)
            await sock.connect(("127.0.0.1", port))
            stream = TLSStream(sock, rng.choice(client_contexts), server_hostname="localhost")
            try:
                await stream.handshake()
                stress.check(stream.version() is not None, "no version after the handshake")
                payload = rng.randbytes(rng.randrange(1, 200_000))

                async def pump(stream: TLSStream, payload: bytes, steps: list[int]) -> None:
                    at = 0
                    for step in steps:
                        await stream.write_all(payload[at : at + step])
                        at += step

                steps = [rng.randrange(1, 70_000) for _ in range(len(payload) // 1000 + 1)]
                writer = corosio_py.spawn(ctx, pump(stream, payload, steps))
                got = bytearray()
                buf = bytearray(rng.choice((500, 8192, 100_000)))
                while len(got) < len(payload):
                    n, cancels = await _read_with_cancels(stream, buf, rng)
                    add(cancels=cancels)
                    stress.check(n > 0, "EOF before the whole echo came back")
                    got += buf[:n]
                await writer
                stress.check(bytes(got) == payload, "the echo differs: a byte lost or doubled")
                await stream.shutdown()
                stress.check(
                    await stream.read_some(bytearray(10)) == 0, "data after close_notify"
                )
                add(cycles=1, bytes=len(payload))
            finally:
                stream.close()

    async def main() -> None:
        ctx = corosio_py.current_executor().context
        server = TCPServer(ctx, ("127.0.0.1", 0), echo, ssl=server_ctx)
        server.start()
        port = server.local_endpoint().port
        try:
            shares = [cycles // CLIENTS + (i < cycles % CLIENTS) for i in range(CLIENTS)]
            await corosio_py.gather(
                *(client(ctx, port, shares[i], stress.rng.randrange(2**32)) for i in range(CLIENTS))
            )
        finally:
            server.stop()

    corosio_py.run(main(), threads=THREADS, backend=backend)
    stress.check(counts["cycles"] == cycles, f"{counts['cycles']} of {cycles} cycles completed")
    stress.check(fd_count() <= before, f"fds: {before} before, {fd_count()} after")
    stress.summary(**counts)
