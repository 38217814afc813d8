"""Socket churn: 20,000 connect/accept/exchange/close cycles on a context
run by 4 threads, with random early closes, resets (linger 0) and closes
from a foreign thread; no descriptor and no thread is left behind.

32 client tasks share the cycles; each cycle connects to one acceptor,
sends a length-prefixed message and reads the echo, unless the seeded plan
makes the client close early, reset (``linger = (True, 0)``) or stop
reading, or the server handler does the same, or a "chaos" thread closes the
client socket while an operation is pending (it then completes with
``Cancelled`` or ``EBADF``).  Expected errors of the peer's early close are
counted (``EOFError``, ``ConnectionResetError``, ``BrokenPipeError``); any
other exception fails the test.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections import Counter

import pytest

import corosio_py
from corosio_py import Cancelled, TCPAcceptor, TCPSocket
from tests.stress._util import (
    SWITCH_INTERVALS,
    Stress,
    Threads,
    close_context,
    fd_count,
    make_context,
    scaled,
    switch_interval,
    timeout_for,
    wait_for,
)

pytestmark = pytest.mark.stress

CYCLES = 20_000
CLIENTS = 32
CLIENT_PLANS = (
    "normal",
    "normal",
    "normal",
    "normal",
    "reset_end",
    "close_after_connect",
    "reset_after_connect",
    "reset_mid_request",
    "no_read",
    "chaos",
)
SERVER_PLANS = (
    "echo",
    "echo",
    "echo",
    "echo",
    "echo",
    "echo",
    "close_early",
    "reset_early",
    "reset_after_reply",
)
PEER_GONE = (EOFError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@pytest.mark.timeout(timeout_for(240))
def test_socket_churn_leaves_nothing_behind(backend: str, stress: Stress) -> None:
    st = stress
    total = scaled(CYCLES)
    st.begin(total, 240, runners=4, clients=CLIENTS)
    fds_before = fd_count()
    threads_before = threading.active_count()
    client_outcomes: Counter[str] = Counter()
    server_outcomes: Counter[str] = Counter()
    plans: Counter[str] = Counter()
    done = 0
    for debug, n in st.phases(total):
        with switch_interval(st.rng.choice(SWITCH_INTERVALS)):
            _churn_phase(st, backend, debug, n, done, client_outcomes, server_outcomes, plans)
        done += n
    fds_after = fd_count()
    threads_after = threading.active_count()
    st.check(
        fds_after == fds_before,
        f"{fds_after - fds_before:+d} file descriptors after the churn "
        f"({fds_before} before, {fds_after} after)",
    )
    st.check(
        threads_after == threads_before,
        f"{threads_after - threads_before:+d} threads after the churn ({threading.enumerate()})",
    )
    st.summary(
        backend=backend,
        cycles=total,
        exchanged=client_outcomes["ok"],
        client=dict(client_outcomes),
        server=dict(server_outcomes),
        plans=dict(plans),
        fds=f"{fds_before}->{fds_after}",
        threads=f"{threads_before}->{threads_after}",
    )


def _churn_phase(
    st: Stress,
    backend: str,
    debug: bool,
    n: int,
    done_before: int,
    client_outcomes: Counter[str],
    server_outcomes: Counter[str],
    plans: Counter[str],
) -> None:
    rng = st.rng
    client_plan = [rng.choice(CLIENT_PLANS) for _ in range(n)]
    sizes = [rng.choice((1, 100, 1000, 20000, 70000)) for _ in range(n)]
    plans.update(client_plan)
    server_rng = random.Random(rng.randrange(1 << 32))
    chaos_rng = random.Random(rng.randrange(1 << 32))
    lock = threading.Lock()
    next_cycle = [0]
    victims: list[TCPSocket] = []
    chaos_stop = threading.Event()
    handlers: list[corosio_py.Task[None]] = []
    ctx = make_context(backend, debug=debug)
    runners = Threads(st, "runner")
    chaos = Threads(st, "chaos")
    acc: TCPAcceptor | None = None
    try:
        acc = TCPAcceptor(ctx)
        acc.bind(("127.0.0.1", 0))
        acc.listen(1024)
        ep = acc.local_endpoint()

        def count(outcomes: Counter[str], what: str) -> None:
            with lock:
                outcomes[what] += 1

        async def serve(conn: TCPSocket) -> None:
            with lock:
                plan = server_rng.choice(SERVER_PLANS)
            try:
                if plan == "close_early":
                    conn.close()
                    count(server_outcomes, "closed_early")
                    return
                if plan == "reset_early":
                    conn.linger = (True, 0)
                    conn.close()
                    count(server_outcomes, "reset_early")
                    return
                header = await conn.read_exactly(4)
                size = int.from_bytes(header, "big")
                payload = await conn.read_exactly(size)
                await conn.write_all([header, payload])
                if plan == "reset_after_reply":
                    conn.linger = (True, 0)
                    count(server_outcomes, "reset_after_reply")
                else:
                    # Wait for the client's close (EOF) so the client ends
                    # up with the TIME_WAIT, or for its reset.
                    await conn.read_some(bytearray(1))
                    count(server_outcomes, "echoed")
            except PEER_GONE as exc:
                count(server_outcomes, f"peer_gone:{type(exc).__name__}")
            finally:
                conn.close()

        async def server() -> None:
            while True:
                try:
                    conn = await acc.accept()
                except Cancelled:
                    return  # the acceptor was closed: the churn is over
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        return
                    raise
                task = corosio_py.spawn(ctx, serve(conn))
                with lock:
                    handlers.append(task)

        async def one_cycle(i: int) -> str:
            plan = client_plan[i]
            s = TCPSocket(ctx)
            try:
                await s.connect(ep)
                if plan == "close_after_connect":
                    return "closed_after_connect"
                if plan == "reset_after_connect":
                    s.linger = (True, 0)
                    return "reset_after_connect"
                size = sizes[i]
                payload = (i % 251).to_bytes(1, "big") * size
                header = size.to_bytes(4, "big")
                if plan == "chaos":
                    with lock:
                        victims.append(s)
                if plan == "reset_mid_request":
                    await s.write_all(header)
                    s.linger = (True, 0)
                    return "reset_mid_request"
                await s.write_all(header + payload if size < 1000 else [header, payload])
                if plan == "no_read":
                    return "closed_without_reading"
                reply = await s.read_exactly(4 + size)
                if reply[:4] != header or reply[4:] != payload:
                    raise AssertionError(f"cycle {i}: the echo differs from the request")
                if plan == "reset_end":
                    s.linger = (True, 0)
                return "ok"
            except PEER_GONE as exc:
                return f"peer_gone:{type(exc).__name__}"
            except Cancelled:
                if plan != "chaos":
                    raise
                return "chaos_cancelled"
            except OSError as exc:
                if plan == "chaos" and exc.errno == errno.EBADF:
                    return "chaos_ebadf"
                raise
            finally:
                s.close()

        async def client() -> int:
            cycles = 0
            while True:
                with lock:
                    i = next_cycle[0]
                    if i >= n:
                        return cycles
                    next_cycle[0] += 1
                outcome = await one_cycle(i)
                count(client_outcomes, outcome)
                cycles += 1

        def chaos_thread() -> None:
            while not chaos_stop.is_set():
                with lock:
                    victim = victims.pop(chaos_rng.randrange(len(victims))) if victims else None
                if victim is None:
                    time.sleep(0.0005)
                    continue
                time.sleep(chaos_rng.choice((0.0, 0.0, 0.00005, 0.0003)))
                victim.close()  # from a foreign thread, maybe mid-operation

        server_task = corosio_py.spawn(ctx, server())
        clients = [corosio_py.spawn(ctx, client()) for _ in range(CLIENTS)]
        for _ in range(4):
            runners.start(ctx.run)
        chaos.start(chaos_thread)
        while not all(c.done() for c in clients):
            time.sleep(0.05)
            st.check_deadline(
                f"in the churn: {next_cycle[0]} of {n} cycles started (debug={debug}, "
                f"outstanding={ctx._sched.outstanding()})"
            )
            st.progress(done_before + next_cycle[0], debug=debug)
            st.check(not runners.errors, lambda: f"a runner raised: {runners.errors[0]}")
        chaos_stop.set()
        chaos.join_or_fail("the chaos thread")
        acc.close()  # the server's accept completes with Cancelled
        runners.join_or_fail(f"run() after the churn (debug={debug})", ctx=ctx)
        wait_for(st, server_task.done, "the server task", timeout=5)
        server_task.result()
        cycles = sum(c.result() for c in clients)  # raises a client's unexpected error
        st.check(cycles == n, f"{cycles} cycles ran, {n} were planned")
        st.check(all(h.done() for h in handlers), "a connection handler never finished")
        for h in handlers:
            h.result()
        st.check(ctx._sched.outstanding() == 0, "outstanding work after the churn")
    finally:
        chaos_stop.set()
        chaos.join(5.0)
        if acc is not None:
            acc.close()
        ctx.stop()
        runners.join(5.0)
        close_context(ctx)
