"""The thread-pool contract: work a handler posts or spawns is visible to the
other runner threads no later than when that handler returns, and a handler
that blocks its thread never strands ready work behind it.

Every case runs 4 threads in ``run()`` on every backend, with the default
(multi-threaded) scheduler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import corosio_py as cio
from corosio_py import IOContext
from corosio_py.testing import socket_pair
from tests.unit.limits import JOIN, PATIENCE

pytestmark = pytest.mark.timeout(60)

RUNNERS = 4


@pytest.fixture(params=["gil", "nogil"])
def ctx(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IOContext]:
    """A context on the backend under test, scheduling as under the GIL
    (one licensed thread, the watcher) or as a free-threaded build would
    (work handed to idle threads at once), whatever this interpreter is."""
    monkeypatch.setenv("COROSIO_ASSUME_GIL", "1" if request.param == "gil" else "0")
    context = IOContext(backend=backend)
    yield context
    context.close()


class Pool:
    """``RUNNERS`` threads in ``ctx.run()``, kept there by a work guard."""

    def __init__(self, ctx: IOContext) -> None:
        self.ctx = ctx
        self.guard = ctx.work_guard()
        self.errors: list[BaseException] = []
        self.inside = threading.Barrier(RUNNERS + 1, timeout=PATIENCE)
        self.threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(RUNNERS)]
        for thread in self.threads:
            thread.start()

    def _serve(self) -> None:
        try:
            self.ctx.post(self._arrived)
            self.ctx.run()
        except BaseException as error:
            self.errors.append(error)

    def _arrived(self) -> None:
        pass

    def join(self) -> None:
        self.guard.reset()
        for thread in self.threads:
            thread.join(JOIN)
        assert not any(t.is_alive() for t in self.threads), "a runner did not return"
        if self.errors:
            raise self.errors[0]


def _settle(ctx: IOContext) -> None:
    """Give the runners a moment to go idle (they must be asleep, not busy,
    for the cases below to mean anything)."""
    time.sleep(0.1)


def test_spawned_children_meet_at_a_barrier(ctx: IOContext) -> None:
    """A task spawns 4 children that each block their thread until all 4
    run at once: the children must reach the other threads."""
    pool = Pool(ctx)
    _settle(ctx)
    barrier = threading.Barrier(RUNNERS, timeout=PATIENCE)
    met: list[bool] = []

    async def child() -> None:
        barrier.wait()
        met.append(True)

    async def parent() -> None:
        children = [cio.spawn(ctx, child()) for _ in range(RUNNERS)]
        for task in children:
            await task

    task = cio.spawn(ctx, parent())
    deadline = time.monotonic() + PATIENCE * 2
    while not task.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.join()
    task.result()  # a broken barrier raises here
    assert met == [True] * RUNNERS


def test_posted_handlers_meet_at_a_barrier(ctx: IOContext) -> None:
    """The same with plain posts made by one handler."""
    pool = Pool(ctx)
    _settle(ctx)
    barrier = threading.Barrier(RUNNERS, timeout=PATIENCE)
    outcomes: list[bool] = []

    def meet() -> None:
        try:
            barrier.wait()
            outcomes.append(True)
        except threading.BrokenBarrierError:
            outcomes.append(False)

    def fan_out() -> None:
        for _ in range(RUNNERS):
            ctx.post(meet)

    ctx.post(fan_out)
    deadline = time.monotonic() + PATIENCE * 2
    while len(outcomes) < RUNNERS and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.join()
    assert outcomes == [True] * RUNNERS


def test_handler_posts_many_then_blocks(ctx: IOContext) -> None:
    """A handler posts 1,000 handlers and then blocks its thread until they
    have all run: the other threads drain them."""
    pool = Pool(ctx)
    _settle(ctx)
    total = 1000
    ran: list[int] = []
    ran_lock = threading.Lock()
    all_ran = threading.Event()
    blocked_ok: list[bool] = []

    def one(i: int) -> None:
        with ran_lock:
            ran.append(i)
            if len(ran) == total:
                all_ran.set()

    def producer() -> None:
        for i in range(total):
            ctx.post(one, i)
        blocked_ok.append(all_ran.wait(PATIENCE))

    ctx.post(producer)
    deadline = time.monotonic() + PATIENCE * 2
    while not blocked_ok and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.join()
    assert blocked_ok == [True], f"only {len(ran)} of {total} ran while the producer blocked"
    assert sorted(ran) == list(range(total))


def test_blocked_handler_does_not_delay_a_sleep(ctx: IOContext) -> None:
    """A handler blocked for 0.5 s on one thread does not delay a 10 ms sleep
    served by the other threads."""
    pool = Pool(ctx)
    _settle(ctx)
    blocker_started = threading.Event()
    woke_after: list[float] = []

    def blocker() -> None:
        blocker_started.set()
        time.sleep(0.5)

    async def sleeper() -> None:
        start = time.monotonic()
        await cio.sleep(0.01)
        woke_after.append(time.monotonic() - start)

    async def main() -> None:
        ctx.post(blocker)
        await cio.sleep(0)  # let the blocker start on this or another thread
        assert blocker_started.wait(PATIENCE)
        await sleeper()

    task = cio.spawn(ctx, main())
    deadline = time.monotonic() + PATIENCE
    while not task.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    pool.join()
    task.result()
    assert woke_after and woke_after[0] < 0.4, f"the sleep took {woke_after}"


def test_blocked_handler_does_not_delay_a_read(ctx: IOContext) -> None:
    """A handler blocked for 0.5 s does not delay a socket read that the
    other threads can serve."""
    pool = Pool(ctx)
    _settle(ctx)
    a, b = socket_pair(ctx)
    read_after: list[float] = []
    parked = threading.Event()
    blocker_started = threading.Event()

    def blocker() -> None:
        blocker_started.set()
        time.sleep(0.5)

    async def reader() -> None:
        buf = bytearray(8)
        parked.set()
        n = await b.read_some(buf)
        read_after.append(time.monotonic())
        assert bytes(buf[:n]) == b"ping"

    async def main() -> None:
        task = cio.spawn(ctx, reader())
        while not parked.is_set():
            await cio.yield_now()
        await cio.sleep(0.02)  # the reader is parked in the reactor by now
        ctx.post(blocker)
        while not blocker_started.is_set():
            await cio.yield_now()
        sent_at.append(time.monotonic())
        await a.write_all(b"ping")
        await task

    sent_at: list[float] = []
    task = cio.spawn(ctx, main())
    deadline = time.monotonic() + PATIENCE
    while not task.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    pool.join()
    task.result()
    delay = read_after[0] - sent_at[0]
    assert delay < 0.4, f"the read completed {delay:.3f} s after the write"
    a.close()
    b.close()
