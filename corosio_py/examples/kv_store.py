"""A shared, mutable in-memory key-value store served by 4 threads.

Connections are tasks on one context run by several threads, so two
clients' commands run truly at once.  The store is split into shards by key
hash; each shard is a plain ``dict`` owned by a :class:`corosio_py.Strand`.
Every command runs as a small task spawned on its key's strand, so commands
on one shard never overlap (an ``INCR`` is a read-modify-write that must not
interleave) while commands on different shards run in parallel -- no lock
anywhere, and no thread pinned to a shard.

Protocol: one command per line, one reply line each::

    SET key value   ->  OK
    GET key         ->  the value, or (nil)
    INCR key        ->  the new integer value (a missing key counts as 0)
    DEL key         ->  1 if it existed, else 0
    anything else   ->  ERR ...

Run it and talk to it with any line client::

    python -m corosio_py.examples.kv_store --port 7000 --threads 4
    printf 'INCR hits\\nGET hits\\n' | socat - TCP:127.0.0.1:7000

``--selftest N`` starts the server on a free port, lets 8 client threads
send N ``INCR`` each to a handful of shared keys, and checks the totals.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import zlib
from typing import Final

import corosio_py as cio
from corosio_py.examples.http_server import port_number, positive_int

__all__ = ("KVStore", "main", "serve")

#: Longest accepted command line; a longer one ends the connection.
MAX_LINE: Final = 64 * 1024


class Shard:
    """One key range: its dict is touched only by tasks on its strand."""

    __slots__ = ("strand", "data")

    def __init__(self, ctx: cio.IOContext) -> None:
        self.strand = cio.Strand(ctx)
        self.data: dict[bytes, bytes] = {}

    async def apply(self, verb: bytes, args: list[bytes]) -> bytes:
        """Run one command; on the strand, so never beside another of this shard."""
        data = self.data
        if verb == b"GET" and len(args) == 1:
            return data.get(args[0], b"(nil)")
        if verb == b"SET" and len(args) == 2:
            data[args[0]] = args[1]
            return b"OK"
        if verb == b"DEL" and len(args) == 1:
            return b"1" if data.pop(args[0], None) is not None else b"0"
        if verb == b"INCR" and len(args) == 1:
            try:
                value = int(data.get(args[0], b"0")) + 1
            except ValueError:
                return b"ERR value is not an integer"
            data[args[0]] = str(value).encode()
            return data[args[0]]
        return b"ERR unknown command or wrong number of arguments"


class KVStore:
    """The shards, and the connection handler that routes commands to them."""

    def __init__(self, ctx: cio.IOContext, shards: int = 16) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        self.shards = [Shard(ctx) for _ in range(shards)]

    def shard_of(self, key: bytes) -> Shard:
        """The shard owning ``key`` (a stable hash: the same on every run)."""
        return self.shards[zlib.crc32(key) % len(self.shards)]

    async def execute(self, line: bytes) -> bytes:
        """Parse one command line and run it on its key's strand."""
        words = line.split()
        if len(words) < 2:
            return b"ERR expected: VERB key [value]"
        verb, args = words[0].upper(), words[1:]
        shard = self.shard_of(args[0])
        return await cio.spawn(shard.strand, shard.apply(verb, args))

    async def handle(self, sock: cio.TCPSocket) -> None:
        """Serve one connection: read lines, answer each in order."""
        pending = bytearray()
        buf = bytearray(16 * 1024)
        while n := await sock.read_some(buf):
            pending += buf[:n]
            replies = []
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end]).rstrip(b"\r")
                del pending[: end + 1]
                replies.append(await self.execute(line) + b"\n")
            if replies:
                await sock.write_all(b"".join(replies))
            if len(pending) > MAX_LINE:
                await sock.write_all(b"ERR line too long\n")
                return


def serve(
    host: str, port: int, threads: int, backend: str | None = None
) -> tuple[cio.IOContext, cio.TCPServer, list[threading.Thread]]:
    """Start the store's server on ``threads`` threads; return what runs it."""
    ctx = cio.IOContext(backend=backend)
    store = KVStore(ctx)
    server = cio.TCPServer(ctx, (host, port), store.handle)
    server.start()
    workers = [
        threading.Thread(target=ctx.run, name=f"kv-{i}", daemon=True) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    return ctx, server, workers


def _client(port: int, keys: list[bytes], rounds: int, errors: list[str]) -> None:
    """A blocking client: INCR each key ``rounds`` times, pipelined per round."""
    try:
        with socket.create_connection(("127.0.0.1", port)) as conn, conn.makefile("rb") as replies:
            for _ in range(rounds):
                conn.sendall(b"".join(b"INCR " + key + b"\n" for key in keys))
                for _key in keys:
                    line = replies.readline()
                    if not line.strip().isdigit():
                        errors.append(f"unexpected reply {line!r}")
                        return
    except OSError as error:
        errors.append(repr(error))


def selftest(rounds: int, threads: int, backend: str | None) -> bool:
    """8 client threads INCR shared keys ``rounds`` times; check the totals."""
    ctx, server, workers = serve("127.0.0.1", 0, threads, backend)
    port = server.local_endpoint().port
    keys = [f"counter-{i}".encode() for i in range(5)]
    errors: list[str] = []
    clients = [
        threading.Thread(target=_client, args=(port, keys, rounds, errors)) for _ in range(8)
    ]
    try:
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        totals = []
        with socket.create_connection(("127.0.0.1", port)) as conn, conn.makefile("rb") as replies:
            for key in keys:
                conn.sendall(b"GET " + key + b"\n")
                totals.append(int(replies.readline()))
    finally:
        server.stop()
        ctx.stop()
        for worker in workers:
            worker.join(timeout=5)
        ctx.close()
    expected = 8 * rounds
    print(f"{threads} threads, 8 clients x {rounds} INCR on {len(keys)} keys: totals {totals}")
    ok = not errors and all(total == expected for total in totals)
    print("OK: no increment lost" if ok else f"FAILED (expected {expected} each): {errors[:3]}")
    return ok


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="corosio_py sharded key-value store demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=7000)
    parser.add_argument("--threads", type=positive_int, default=4)
    parser.add_argument("--backend", default=None, choices=cio.available_backends())
    parser.add_argument(
        "--selftest", type=positive_int, metavar="N", help="run N rounds of the self-test and exit"
    )
    args = parser.parse_args(argv)
    if args.selftest:
        sys.exit(0 if selftest(args.selftest, args.threads, args.backend) else 1)
    ctx, server, workers = serve(args.host, args.port, args.threads, args.backend)
    print(f"serving on {server.local_endpoint()} with {args.threads} threads; Ctrl-C to stop")
    try:
        for worker in workers:
            while worker.is_alive():
                worker.join(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        ctx.stop()
        ctx.close()


if __name__ == "__main__":
    main()
