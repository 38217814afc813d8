"""Cancel versus complete for datagrams and local sockets, on 4 threads.

Per backend and kind (UDP, local datagram pair, local stream pair): several
receiver tasks on a context run by 4 threads each loop ``recv`` with a fresh
stop token; a sender thread per receiver sends numbered messages while a
racer thread fires the tokens at jittered moments.  A receive either
delivers its message (a cancel that lost the race lands at the next
suspension, which is the next receive with the same token) or raises
``Cancelled`` and leaves the message queued.  At the end every message is
accounted for exactly once, in order per receiver, and no fd leaked.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, StopSource, UDPSocket, local_socket_pair
from tests.stress._util import (
    Stress,
    close_context,
    fd_count,
    interleaving,
    make_context,
    scaled,
    timeout_for,
)

pytestmark = pytest.mark.stress

RECEIVERS = 3
RUNNERS = 4
#: Messages a sender may have in flight: the kernel drops UDP datagrams that
#: overflow the receive buffer, which would be no fault of the library.
WINDOW = 16


def _endpoints(ctx: corosio_py.IOContext, kind: str) -> tuple[Any, Any]:
    """(receiver socket, function sending one 4-byte message to it)."""
    if kind == "udp":
        sock = UDPSocket(ctx)
        sock.bind(("127.0.0.1", 0))
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = (str(sock.local_endpoint().address), sock.local_endpoint().port)

        def send_udp(data: bytes) -> None:
            peer.sendto(data, target)

        return sock, (send_udp, peer)
    kind_type = socket.SOCK_DGRAM if kind == "local_dgram" else socket.SOCK_STREAM
    a, b = local_socket_pair(ctx, kind_type)
    fd = a.fileno()

    def send_local(data: bytes) -> None:
        os.write(fd, data)  # a plain blocking-style write from the sender thread

    return b, (send_local, a)


async def _receive(
    sock: Any,
    count: int,
    tokens: list[StopSource],
    lock: threading.Lock,
    stream: bool,
    credit: threading.Semaphore,
) -> tuple[list[int], int]:
    got: list[int] = []
    cancelled = 0
    buf = bytearray(4)
    view = memoryview(buf)
    while len(got) < count:
        src = StopSource()
        with lock:
            tokens.append(src)
        try:
            if stream:
                n = 0
                while n < 4:  # a cancelled partial read consumed nothing
                    k = await sock.read_some(view[n:], stop_token=src.token if n == 0 else None)
                    assert k, "EOF"
                    n += k
            elif hasattr(sock, "recv_from"):
                n, _ = await sock.recv_from(buf, stop_token=src.token)
            else:
                n = await sock.recv(buf, stop_token=src.token)
            assert n == 4
            got.append(int.from_bytes(buf, "big"))
            credit.release()
        except Cancelled:
            cancelled += 1
    return got, cancelled


@pytest.mark.parametrize("kind", ["udp", "local_dgram", "local_stream"])
@pytest.mark.timeout(timeout_for(120))
def test_receive_races_cancellation(backend: str, kind: str, stress: Stress) -> None:
    st = stress
    per_receiver = scaled(2000, minimum=50)
    st.begin(per_receiver * RECEIVERS, 120, runners=RUNNERS, receivers=RECEIVERS, kind=kind)
    fds_before = fd_count()
    totals = {"received": 0, "cancelled": 0}
    for debug, n in st.phases(per_receiver):
        if n == 0:
            continue
        with interleaving(st) as jitter:
            ctx = make_context(backend, debug=debug)
            try:
                pairs = [_endpoints(ctx, kind) for _ in range(RECEIVERS)]
                socks = [sock for sock, _ in pairs]
                senders = [send for _, send in pairs]
                lock = threading.Lock()
                tokens: list[StopSource] = []
                credits = [threading.Semaphore(WINDOW) for _ in socks]
                stream = kind == "local_stream"
                tasks = [
                    corosio_py.spawn(ctx, _receive(s, n, tokens, lock, stream, c))
                    for s, c in zip(socks, credits, strict=True)
                ]
                stop_racing = threading.Event()

                def sender(send: Any, credit: threading.Semaphore, count: int = n) -> None:
                    for i in range(count):
                        jitter()
                        credit.acquire(timeout=10)
                        send(i.to_bytes(4, "big"))

                def racer(
                    lock: threading.Lock = lock,
                    tokens: list[StopSource] = tokens,
                    stop_racing: threading.Event = stop_racing,
                ) -> None:
                    while not stop_racing.is_set():
                        jitter()
                        with lock:
                            pending = tokens[-RECEIVERS:]
                        for src in pending:
                            src.request_stop()

                threads = [
                    threading.Thread(target=sender, args=(s[0], c))
                    for s, c in zip(senders, credits, strict=True)
                ]
                threads.append(threading.Thread(target=racer))
                runners = [threading.Thread(target=ctx.run) for _ in range(RUNNERS)]
                for t in threads + runners:
                    t.start()
                for t in runners:
                    t.join(st.remaining())
                    st.check(not t.is_alive(), "a runner did not return (a message was lost?)")
                stop_racing.set()
                for t in threads:
                    t.join(10)
                for task in tasks:
                    got, cancelled = task.result()
                    st.check(got == list(range(n)), f"lost or reordered: {got[:20]}")
                    totals["received"] += len(got)
                    totals["cancelled"] += cancelled
                for s in socks:
                    s.close()
                for _, owner in senders:
                    owner.close()
            finally:
                close_context(ctx)
    st.check(fd_count() <= fds_before, f"fds leaked: {fd_count() - fds_before}")
    st.summary(backend=backend, kind=kind, **totals)
