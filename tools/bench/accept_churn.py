"""accept_churn: ``n`` strictly sequential loopback connection cycles.

One cycle: the client connects; the server accepts and closes its end; the
client reads EOF and closes.  Only then does the next cycle start.  Client
and server are in one context / loop.  Figure: connections/s = n / elapsed.

Checked: the server accepted exactly ``n`` connections and the client saw
EOF (a 0-byte read) on every one of them.

impls:
  corosio_py        an accept task (``TCPAcceptor.accept``; ``close``); the
                    client task ``TCPSocket.connect``, ``read_some`` -> 0, ``close``.
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  asyncio_sock / uvloop_sock  low-level ``loop.sock_accept`` /
                    ``sock_connect`` / ``sock_recv`` on raw non-blocking sockets.
  asyncio_streams / uvloop_streams  start_server handler closes the writer;
                    client ``open_connection``; ``await read()`` -> b"";
                    ``close``; ``await wait_closed``.
  trio              ``listener.accept()`` task; ``open_tcp_stream``;
                    ``receive_some()`` -> b""; ``aclose``.
  floor_epoll       one thread, ``select.epoll``, non-blocking ``connect_ex`` /
                    ``accept``.
"""

from __future__ import annotations

import errno
import select
import socket

from tools.bench._net import HOST, listen_socket
from tools.bench._runners import corosio_context, now, run_asyncio
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

#: (elapsed s, connections accepted, EOFs the client saw)
Result = tuple[float, int, int]


def _corosio(args: RunArgs, n: int) -> Result:
    import corosio_py

    with corosio_context(args) as ctx:
        acceptor = corosio_py.TCPAcceptor(ctx, (HOST, 0))
        acceptor.listen(512)
        endpoint = acceptor.local_endpoint()

        async def accept_loop() -> int:
            accepted = 0
            for _ in range(n):
                sock = await acceptor.accept()
                sock.close()
                accepted += 1
            acceptor.close()
            return accepted

        async def main() -> tuple[float, int]:
            buf = bytearray(64)
            eofs = 0
            t0 = now()
            for _ in range(n):
                sock = corosio_py.TCPSocket(ctx)
                await sock.connect(endpoint)
                if await sock.read_some(buf) == 0:
                    eofs += 1
                sock.close()
            return now() - t0, eofs

        server = corosio_py.spawn(ctx, accept_loop())
        client = corosio_py.spawn(ctx, main())
        ctx.run()
        elapsed, eofs = client.result()
        accepted = server.result()
    return elapsed, accepted, eofs


def _asyncio_sock(args: RunArgs, n: int) -> Result:
    import asyncio

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        ls = listen_socket()
        ls.setblocking(False)
        addr = ls.getsockname()

        async def accept_loop() -> int:
            accepted = 0
            for _ in range(n):
                s, _ = await loop.sock_accept(ls)
                s.close()
                accepted += 1
            return accepted

        server = asyncio.ensure_future(accept_loop())
        eofs = 0
        t0 = now()
        for _ in range(n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            await loop.sock_connect(c, addr)
            if await loop.sock_recv(c, 64) == b"":
                eofs += 1
            c.close()
        elapsed = now() - t0
        accepted = await server
        ls.close()
        return elapsed, accepted, eofs

    result: Result = run_asyncio(args, main)
    return result


def _asyncio_streams(args: RunArgs, n: int) -> Result:
    import asyncio

    async def main() -> Result:
        accepted = [0]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted[0] += 1
            writer.close()

        server = await asyncio.start_server(handle, HOST, 0, backlog=512)
        port = server.sockets[0].getsockname()[1]
        eofs = 0
        t0 = now()
        for _ in range(n):
            r, w = await asyncio.open_connection(HOST, port)
            if await r.read() == b"":
                eofs += 1
            w.close()
            await w.wait_closed()
        elapsed = now() - t0
        server.close()
        await server.wait_closed()
        return elapsed, accepted[0], eofs

    result: Result = run_asyncio(args, main)
    return result


def _trio(args: RunArgs, n: int) -> Result:
    import trio

    async def main() -> Result:
        accepted = [0]
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host=HOST, backlog=512)
            port = listeners[0].socket.getsockname()[1]

            async def accept_loop() -> None:
                for _ in range(n):
                    stream = await listeners[0].accept()
                    await stream.aclose()
                    accepted[0] += 1
                await listeners[0].aclose()

            nursery.start_soon(accept_loop)
            eofs = 0
            t0 = now()
            for _ in range(n):
                stream = await trio.open_tcp_stream(HOST, port)
                if await stream.receive_some() == b"":
                    eofs += 1
                await stream.aclose()
            elapsed = now() - t0
        return elapsed, accepted[0], eofs

    result: Result = trio.run(main)
    return result


def _floor_epoll(args: RunArgs, n: int) -> Result:
    ls = listen_socket()
    ls.setblocking(False)
    addr = ls.getsockname()
    ep = select.epoll()
    lfd = ls.fileno()
    ep.register(lfd, select.EPOLLIN)

    def start_client() -> socket.socket:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        rc = c.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, "connect failed")
        ep.register(c.fileno(), select.EPOLLIN)
        return c

    done = accepted = eofs = 0
    try:
        t0 = now()
        c = start_client()
        cfd = c.fileno()
        while done < n:
            for fd, _ in ep.poll():
                if fd == lfd:
                    try:
                        while True:
                            s, _ = ls.accept()
                            s.close()
                            accepted += 1
                    except BlockingIOError:
                        pass
                elif fd == cfd:
                    if c.recv(64) == b"":
                        eofs += 1
                    ep.unregister(cfd)
                    c.close()
                    done += 1
                    if done < n:
                        c = start_client()
                        cfd = c.fileno()
                    else:
                        cfd = -1
        elapsed = now() - t0
    finally:
        ep.close()
        ls.close()
    return elapsed, accepted, eofs


def measure(args: RunArgs, run: Runner) -> Measurement:
    n = args.params["n"]
    elapsed, accepted, eofs = run(args, n)
    check(accepted == n, f"the server accepted {accepted} connections, expected {n}")
    check(eofs == n, f"the client saw EOF on {eofs} connections, expected {n}")
    return Measurement(
        figures={"connections_per_s": n / elapsed},
        extra={"elapsed_s": elapsed, "connections": n},
    )


WORKLOAD = Workload(
    name="accept_churn",
    title="sequential connect / accept / close cycles on loopback",
    figures=(Figure("connections_per_s", "connections/s", "connections/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("corosio_py_hint1", COROSIO, _corosio, all_backends=False, concurrency_hint=1),
        Impl("asyncio_sock", "asyncio", _asyncio_sock),
        Impl("asyncio_streams", "asyncio", _asyncio_streams),
        Impl("uvloop_sock", "uvloop", _asyncio_sock),
        Impl("uvloop_streams", "uvloop", _asyncio_streams),
        Impl("trio", "trio", _trio, quick=False),
        Impl("floor_epoll", "floor", _floor_epoll, backend="epoll"),
    ),
    sizes={
        "anchor": {"n": 5_000},
        # The suite's size: smaller, so that `make bench` stays under 10 minutes.
        "full": {"n": 1_000},
        "quick": {"n": 500},
    },
    measure=measure,
    warmup_all=False,
    references={
        "asyncio": "asyncio_streams",
        "asyncio sock": "asyncio_sock",
        "uvloop": "uvloop_streams",
        "uvloop sock": "uvloop_sock",
        "epoll floor": "floor_epoll",
    },
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
