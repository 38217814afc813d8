"""Cancellation races: an operation racing its cancellation from another
thread while 4 threads run the context.

Operations: timer wait (``sleep`` and ``Timer.wait``), socket read, socket
write, accept, connect.  Cancellers: ``cancel()`` (socket, acceptor,
``Timer.cancel``/``cancel_one``), ``close()`` (socket, acceptor; for a timer
``expires_after``, which cancels its waiters), ``Task.cancel()`` and a
``StopToken``.  Each operation also has a completion source racing the
canceller (data written by the peer, the peer draining a full pipe, a client
connecting, the clock, the kernel finishing the handshake).

The iterations are batched: every round starts a few hundred operations at
once; each task hands its two racing actions (complete, cancel) to two
"racer" threads right before it awaits, so the cancel lands before, during
or after the initiation.  Some cancels are issued by the controller right
after ``spawn``, before the task ran at all.

Checked per operation: it completes exactly once, with its result, with
``Cancelled`` (only after a cancel was issued: never spuriously) or with
``EBADF`` after a ``close()`` that beat the initiation; its task is done at
the end of the round.  Checked per phase: every run() returns and the final
outstanding count is exactly zero (a double completion releases a unit
twice: the count goes wrong and the context stops early, which the runner
threads returning under a work guard reveal at once; in the COROSIO_DEBUG=1
phase it raises InvariantError at the second completion).
"""

from __future__ import annotations

import errno
import os
import queue
import random
import socket
import struct
import threading
import time
from collections import Counter
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext, StopSource, TCPAcceptor, TCPSocket, Timer
from corosio_py.testing import socket_pair
from tests.stress._util import (
    Jitter,
    Stress,
    Threads,
    close_context,
    interleaving,
    make_context,
    scaled,
    timeout_for,
    wait_for,
)

pytestmark = pytest.mark.stress

#: Iterations per backend at scale 1, split over three tests (one per group
#: of operations) so that each stays well under a minute.
GROUPS = {
    "timers": (30_000, ("timer", "sleep"), (0.55, 0.45)),
    "streams": (40_000, ("read", "write"), (0.6, 0.4)),
    "connections": (30_000, ("accept", "connect"), (0.5, 0.5)),
}
ITERATIONS = sum(g[0] for g in GROUPS.values())
assert ITERATIONS >= 100_000
#: Operations in flight per round (fds stay well below select's FD_SETSIZE).
ROUND = 240
#: A round normally takes milliseconds; a stuck one fails after this long.
ROUND_TIMEOUT = 20.0
HOWS = {
    "timer": ("cancel", "cancel_one", "close", "task", "token"),
    "sleep": ("task", "token"),
    "read": ("cancel", "close", "task", "token"),
    "write": ("cancel", "close", "task", "token"),
    "accept": ("cancel", "close", "task", "token"),
    "connect": ("cancel", "close", "task", "token"),
}
#: Timer and sleep durations: from "already expired" (a yield point) to
#: longer than a racer usually takes to get to the cancel.
TIMER_DELAYS = (0.0, 0.0001, 0.001, 0.004, 0.01)
#: Share of cancels issued by the controller right after spawn.
PRECANCEL = 0.1
#: How often a racer pauses before its action (a :class:`Jitter` level).
RACER_JITTER = 0.7
FILL = memoryview(bytes(1 << 20))
LINGER_0 = struct.pack("ii", 1, 0)


class Slot:
    """One operation racing one cancel (and one completion)."""

    __slots__ = (
        "kind",
        "how",
        "delay",
        "token_source",
        "task",
        "timer",
        "a",
        "b",
        "acc",
        "endpoint",
        "sock",
        "client",
        "cancel_issued",
        "armed",
        "outcomes",
        "detail",
        "run",
    )

    def __init__(self, kind: str, how: str, run: Round) -> None:
        self.kind = kind
        self.how = how
        self.run = run
        self.delay = 0.0
        self.token_source = StopSource() if how == "token" else None
        self.task: corosio_py.Task[None] | None = None
        self.timer: Timer | None = None
        self.a: TCPSocket | None = None  # the peer (never closed during a round)
        self.b: TCPSocket | None = None  # the socket the operation runs on
        self.acc: TCPAcceptor | None = None
        self.endpoint: tuple[str, int] | None = None
        self.sock: TCPSocket | None = None
        self.client: socket.socket | None = None
        self.cancel_issued = False  # set just before the cancel call
        self.armed = False
        self.outcomes: list[str] = []
        self.detail = ""

    @property
    def token(self) -> corosio_py.StopToken | None:
        return None if self.token_source is None else self.token_source.token

    def arm(self) -> None:
        """Called by the task right before the racing await: hand the
        completion and (unless already issued) the cancel to the racers."""
        self.armed = True
        actions = ["complete"]
        if not self.cancel_issued:
            actions.append("cancel")
        self.run.rng_shuffle(actions)
        for what in actions:
            self.run.enqueue(self, what)
        # The racers may now act: pausing here lets them land before the
        # initiation as well as during or after it, on both builds.
        self.run.jitter()

    def record(self, outcome: str, detail: str = "") -> None:
        self.outcomes.append(outcome)
        if detail:
            self.detail = detail


class Round:
    """The shared state of one phase's rounds: queue, racers, counters."""

    def __init__(self, st: Stress, ctx: IOContext, jitter: Jitter) -> None:
        self.st = st
        self.ctx = ctx
        #: The phase's pauses at the task's and the controller's race points.
        self.jitter = jitter
        self.q: queue.SimpleQueue[tuple[Slot, str] | None] = queue.SimpleQueue()
        self.pending = 0
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self._shuffle_rng = random.Random(st.rng.randrange(1 << 32))

    def rng_shuffle(self, items: list[str]) -> None:
        with self.lock:
            self._shuffle_rng.shuffle(items)

    def enqueue(self, slot: Slot, what: str) -> None:
        with self.lock:
            self.pending += 1
        self.q.put((slot, what))

    def racer(self, seed: int) -> None:
        jitter = Jitter(seed, RACER_JITTER)
        while True:
            item = self.q.get()
            if item is None:
                return
            slot, what = item
            try:
                jitter()
                if what == "cancel":
                    do_cancel(slot)
                else:
                    do_complete(slot)
            except BaseException as exc:
                with self.lock:
                    self.errors.append(f"{what} of {slot.kind}/{slot.how} raised {exc!r}")
            finally:
                with self.lock:
                    self.pending -= 1


def task_of(slot: Slot) -> corosio_py.Task[None]:
    """The slot's task, once the controller has stored it: a runner thread
    can start the task (and a racer act on it) before ``spawn()`` returned."""
    while slot.task is None:
        time.sleep(0)
    return slot.task


def do_cancel(slot: Slot) -> None:
    task = task_of(slot)
    slot.cancel_issued = True
    how = slot.how
    if how == "task":
        task.cancel()
    elif how == "token":
        assert slot.token_source is not None
        slot.token_source.request_stop()
    elif slot.kind == "timer":
        assert slot.timer is not None
        if how == "cancel":
            slot.timer.cancel()
        elif how == "cancel_one":
            slot.timer.cancel_one()
        else:
            slot.timer.expires_after(slot.delay)
    else:
        target: Any = {"read": slot.b, "write": slot.b, "accept": slot.acc, "connect": slot.sock}[
            slot.kind
        ]
        if how == "cancel":
            target.cancel()
        else:
            target.close()


def do_complete(slot: Slot) -> None:
    """The completion source (socket kinds; timers complete by the clock)."""
    kind = slot.kind
    if kind == "read":
        assert slot.a is not None
        try:
            os.write(slot.a.fileno(), b"x")
        except OSError as exc:  # b was closed: the peer may see a reset
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
    elif kind == "write":
        # The peer reads until the writing task is done: both writes (the
        # one filling the pipe and the racing one) complete unless cancelled.
        assert slot.a is not None
        fd = slot.a.fileno()
        task = task_of(slot)
        while not task.done():
            drain(fd)
            time.sleep(0.0001)
    elif kind == "accept":
        assert slot.endpoint is not None
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        slot.client = client
        client.settimeout(5.0)
        try:
            client.connect(slot.endpoint)
        except (ConnectionRefusedError, ConnectionResetError):
            pass  # the acceptor was closed first


def drain(fd: int) -> int:
    """Read everything readable now from ``fd`` (non-blocking)."""
    total = 0
    while True:
        try:
            data = os.read(fd, 1 << 18)
        except BlockingIOError:
            return total
        except ConnectionResetError:
            return total
        if not data:
            return total
        total += len(data)


# ---------------------------------------------------------------- the racing tasks


async def race(slot: Slot) -> None:
    kind = slot.kind
    try:
        if kind in ("timer", "sleep"):
            slot.arm()
            if slot.timer is not None:
                await slot.timer.wait(stop_token=slot.token)
            else:
                await corosio_py.sleep(slot.delay, stop_token=slot.token)
            slot.record("completed")
        elif kind == "read":
            assert slot.b is not None
            buf = bytearray(8)
            slot.arm()
            n = await slot.b.read_some(buf, stop_token=slot.token)
            slot.record("completed" if n >= 1 else "bad", f"read_some returned {n}")
        elif kind == "write":
            assert slot.b is not None
            slot.arm()
            # The first write fills the (small) pipe, the second one parks
            # until the peer drains it -- unless the cancel wins.
            await slot.b.write_some(FILL, stop_token=slot.token)
            n = await slot.b.write_some(FILL, stop_token=slot.token)
            slot.record("completed" if n > 0 else "bad", f"write_some returned {n}")
        elif kind == "accept":
            assert slot.acc is not None
            slot.arm()
            conn = await slot.acc.accept(stop_token=slot.token)
            if conn.is_open:
                conn.linger = (True, 0)  # reset: no TIME_WAIT left behind
                conn.close()
                slot.record("completed")
            else:
                slot.record("bad", "the accepted socket is not open")
        else:
            assert slot.sock is not None and slot.endpoint is not None
            slot.arm()
            await slot.sock.connect(slot.endpoint, stop_token=slot.token)
            slot.record("completed")
    except Cancelled:
        if slot.cancel_issued:
            slot.record("cancelled")
        else:
            slot.record("spurious", "Cancelled before any cancel was issued")
    except OSError as exc:
        if exc.errno == errno.EBADF and slot.how == "close" and slot.cancel_issued:
            slot.record("ebadf")  # close() beat the initiation (documented)
        else:
            slot.record("bad", f"{exc!r}")
    except BaseException as exc:
        slot.record("bad", f"{exc!r}")
        raise


# ---------------------------------------------------------------- the test


@pytest.mark.timeout(timeout_for(150))
@pytest.mark.parametrize("group", list(GROUPS))
def test_operations_race_cancellation(backend: str, group: str, stress: Stress) -> None:
    """100,000 operations per backend (timer waits, reads, writes, accepts,
    connects: three groups, one test each) each racing cancel()/close()/
    Task.cancel()/a StopToken from another thread."""
    st = stress
    base, kinds, weights = GROUPS[group]
    total = scaled(base)
    st.begin(total, 150, runners=4, racers=2, per_round=ROUND, kinds="+".join(kinds))
    outcomes: Counter[str] = Counter()
    per_kind: dict[str, Counter[str]] = {k: Counter() for k in kinds}
    per_how: Counter[str] = Counter()
    done = 0
    rounds = 0
    for debug, n in st.phases(total):
        with interleaving(st) as jitter:
            rounds += _race_phase(
                st, backend, debug, n, done, (kinds, weights), outcomes, per_kind, per_how, jitter
            )
        done += n
    won = {k: f"{c['completed']}/{c['cancelled']}/{c['ebadf']}" for k, c in per_kind.items()}
    st.summary(
        backend=backend,
        rounds=rounds,
        completed=outcomes["completed"],
        cancelled=outcomes["cancelled"],
        ebadf_after_close=outcomes["ebadf"],
        by_kind_completed_cancelled_ebadf=won,
        cancellers=dict(per_how),
    )


def _race_phase(
    st: Stress,
    backend: str,
    debug: bool,
    n: int,
    done_before: int,
    mix: tuple[tuple[str, ...], tuple[float, ...]],
    outcomes: Counter[str],
    per_kind: dict[str, Counter[str]],
    per_how: Counter[str],
    jitter: Jitter,
) -> int:
    rng = st.rng
    ctx = make_context(backend, debug=debug)
    rd = Round(st, ctx, jitter)
    runners = Threads(st, "runner")
    racers = Threads(st, "racer")
    read_pool: list[tuple[TCPSocket, TCPSocket]] = []
    write_pool: list[tuple[TCPSocket, TCPSocket]] = []
    rounds = 0
    try:
        guard = ctx.work_guard()
        for _ in range(4):
            runners.start(ctx.run)
        for _ in range(2):
            racers.start(rd.racer, rng.randrange(1 << 32))
        left = n
        while left > 0:
            k = min(ROUND, left)
            _one_round(
                st,
                ctx,
                rd,
                runners,
                k,
                mix,
                read_pool,
                write_pool,
                outcomes,
                per_kind,
                per_how,
                debug,
            )
            left -= k
            rounds += 1
            st.progress(done_before + n - left, debug=debug, **dict(outcomes))
            st.check_deadline(f"after {n - left} of {n} races (debug={debug})")
            st.check(
                not runners.errors and len(runners.alive()) == 4,
                lambda: f"a runner left run() during the races: {runners.errors[:1]}",
            )
        for a, b in read_pool + write_pool:
            a.close()
            b.close()
        read_pool.clear()
        write_pool.clear()
        guard.reset()
        runners.join_or_fail(f"run() after the races (debug={debug})", ctx=ctx)
        st.check(ctx.stopped(), "the context did not stop after the races")
        outstanding = ctx._sched.outstanding()
        st.check(
            outstanding == 0,
            f"outstanding work is {outstanding} after every race finished (debug={debug}); "
            "negative means an operation was completed twice",
        )
        return rounds
    finally:
        for _ in range(2):
            rd.q.put(None)
        racers.join(5.0)
        ctx.stop()
        runners.join(5.0)
        for a, b in read_pool + write_pool:
            a.close()
            b.close()
        close_context(ctx)


def _pair(
    ctx: IOContext, pool: list[tuple[TCPSocket, TCPSocket]], small: bool
) -> tuple[TCPSocket, TCPSocket]:
    if pool:
        return pool.pop()
    a, b = socket_pair(ctx)
    if small:
        # Small buffers so that a write parks soon; the receive window must
        # stay well above what SWS avoidance needs, or the sender waits for
        # the persist timer (hundreds of ms) after every drain.
        b.send_buffer_size = 8192
        a.receive_buffer_size = 32768
    return a, b


def _one_round(
    st: Stress,
    ctx: IOContext,
    rd: Round,
    runners: Threads,
    k: int,
    mix: tuple[tuple[str, ...], tuple[float, ...]],
    read_pool: list[tuple[TCPSocket, TCPSocket]],
    write_pool: list[tuple[TCPSocket, TCPSocket]],
    outcomes: Counter[str],
    per_kind: dict[str, Counter[str]],
    per_how: Counter[str],
    debug: bool,
) -> None:
    rng = st.rng
    slots: list[Slot] = []
    listener: socket.socket | None = None
    listen_ep: tuple[str, int] | None = None
    for _ in range(k):
        kind = rng.choices(mix[0], mix[1])[0]
        how = rng.choice(HOWS[kind])
        slot = Slot(kind, how, rd)
        if kind == "timer":
            slot.timer = Timer(ctx)
            slot.delay = rng.choice(TIMER_DELAYS)
            slot.timer.expires_after(slot.delay)
        elif kind == "sleep":
            slot.delay = rng.choice(TIMER_DELAYS)
        elif kind == "read":
            slot.a, slot.b = _pair(ctx, read_pool, small=False)
        elif kind == "write":
            slot.a, slot.b = _pair(ctx, write_pool, small=True)
        elif kind == "accept":
            slot.acc = TCPAcceptor(ctx, ("127.0.0.1", 0))
            ep = slot.acc.local_endpoint()
            slot.endpoint = (str(ep.address), ep.port)
        else:
            if listener is None:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                listener.listen(4096)
                listen_ep = listener.getsockname()
            slot.sock = TCPSocket(ctx)
            slot.endpoint = listen_ep
        slots.append(slot)
        per_how[how] += 1
    for slot in slots:
        slot.task = corosio_py.spawn(ctx, race(slot))
        if rng.random() < PRECANCEL:
            rd.jitter()  # before, as the task first runs, or after it started
            do_cancel(slot)  # from the controller, maybe before the task ran
    wait_for(
        st,
        lambda: all(s.task is not None and s.task.done() for s in slots),
        _stuck_report(slots, ctx, debug),
        timeout=ROUND_TIMEOUT,
        abort=runners.gone,
    )
    wait_for(
        st,
        lambda: rd.pending == 0,
        "the racer threads to finish their actions",
        timeout=ROUND_TIMEOUT,
    )
    if rd.errors:
        st.fail(f"{len(rd.errors)} racing actions raised (debug={debug}); first: {rd.errors[0]}")
    for s in slots:
        assert s.task is not None
        if not s.outcomes and s.task.cancelled() and s.how == "task" and s.cancel_issued:
            # Task.cancel() before the task first ran: Cancelled is thrown
            # into the coroutine at its start (as asyncio does).
            s.record("cancelled")
    bad = [s for s in slots if len(s.outcomes) != 1 or s.outcomes[0] in ("bad", "spurious")]
    if bad:
        s = bad[0]
        st.fail(
            f"{len(bad)} of {k} operations completed wrongly (debug={debug}); first: "
            f"{s.kind} cancelled by {s.how}: outcomes {s.outcomes} {s.detail} "
            f"(task: {s.task!r})"
        )
    for s in slots:
        assert s.task is not None
        if not s.task.cancelled():
            s.task.result()  # the coroutine itself never raises
        outcomes[s.outcomes[0]] += 1
        per_kind[s.kind][s.outcomes[0]] += 1
    # Clean up: pairs whose socket is still open go back to their pool.
    for s in slots:
        if s.kind in ("read", "write"):
            assert s.a is not None and s.b is not None
            if s.b.is_open:
                if s.kind == "read":
                    drain(s.b.fileno())
                    read_pool.append((s.a, s.b))
                else:
                    drain(s.a.fileno())
                    write_pool.append((s.a, s.b))
            else:
                s.a.close()
        elif s.kind == "accept":
            assert s.acc is not None
            s.acc.close()
            if s.client is not None:
                s.client.close()
        elif s.kind == "connect":
            assert s.sock is not None
            if s.sock.is_open:
                try:
                    s.sock.linger = (True, 0)  # no TIME_WAIT left behind
                except OSError:
                    pass
            s.sock.close()
    if listener is not None:
        listener.close()


def _stuck_report(slots: list[Slot], ctx: IOContext, debug: bool) -> Any:
    class What:
        def __str__(self) -> str:
            stuck = [s for s in slots if s.task is None or not s.task.done()]
            first = stuck[0] if stuck else None
            desc = (
                f"{first.kind}/{first.how} armed={first.armed} "
                f"cancel_issued={first.cancel_issued} task={first.task!r}"
                if first
                else "-"
            )
            return (
                f"every task of the round to finish: {len(stuck)} still suspended "
                f"(debug={debug}, outstanding={ctx._sched.outstanding()}); first: {desc}"
            )

    return What()
