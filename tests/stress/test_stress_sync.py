"""Coordination under fire: queues, semaphores, locks and strands on 4
runner threads while another thread cancels waiting tasks at random.

Every item, permit and lock hand-over is accounted for: an item is received
exactly once or is still in the queue; a semaphore never admits more than
its value and ends with all its permits; a lock never admits two and ends
free; a strand never runs two handlers at once and keeps each poster's
order.  Each test runs once per reactor backend.  See _util.py for seed,
scale and deadlines.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import corosio_py as cio
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

RUNNERS = 4


class Churn:
    """Keeps ``want`` tasks of each kind alive on a context served by 4
    runners while a plain thread cancels random ones, until :meth:`stop`."""

    def __init__(self, st: Stress, ctx: cio.IOContext, jitter: Jitter) -> None:
        self.st = st
        self.ctx = ctx
        self.jitter = jitter
        self.lock = threading.Lock()  # guards live
        self.live: list[cio.Task[Any]] = []
        self.cancels = 0
        self.spawned = 0
        self.done = threading.Event()
        self.rng = random.Random(st.rng.randrange(1 << 30))
        self.runners = Threads(st, "runner")
        self.helpers = Threads(st, "churn")
        self.guard = ctx.work_guard()

    def start(self, kinds: list[tuple[int, Callable[[], Coroutine[Any, Any, Any]]]]) -> None:
        for _ in range(RUNNERS):
            self.runners.start(self.ctx.run)
        self.helpers.start(self._respawn, kinds)
        self.helpers.start(self._cancel)

    def _respawn(self, kinds: list[tuple[int, Callable[[], Coroutine[Any, Any, Any]]]]) -> None:
        slots: list[list[cio.Task[Any] | None]] = [[None] * want for want, _ in kinds]
        while not self.done.is_set():
            for (_, make), tasks in zip(kinds, slots, strict=True):
                for i, task in enumerate(tasks):
                    if task is None or task.done():
                        task = tasks[i] = cio.spawn(self.ctx, make())
                        self.spawned += 1
                        with self.lock:
                            self.live.append(task)
            with self.lock:
                self.live = [t for t in self.live if not t.done()]
            time.sleep(0.001)

    def _cancel(self) -> None:
        while not self.done.is_set():
            with self.lock:
                victims = list(self.live)
            if victims:
                self.jitter()
                if self.rng.choice(victims).cancel():
                    self.cancels += 1
            time.sleep(self.rng.choice((0.0, 0.0001, 0.0005)))

    def stop(self) -> None:
        """Stop churning, cancel every task left, let the runners leave."""
        self.done.set()
        self.helpers.join_or_fail("churn helpers")
        with self.lock:
            for task in self.live:
                task.cancel()
        self.guard.reset()
        self.runners.join_or_fail("runners", ctx=self.ctx)


# ---------------------------------------------------------------- Queue

QUEUE_ITEMS = 100_000


@pytest.mark.timeout(timeout_for(90))
def test_queue_items_survive_random_cancels(backend: str, stress: Stress) -> None:
    """Task producers, a plain-thread producer and task consumers share a
    bounded queue; a thread cancels producers and consumers at random."""
    st = stress
    total = scaled(QUEUE_ITEMS, 500)
    st.begin(total, 90, runners=RUNNERS)
    cancels = 0
    for debug, n in st.phases(total):
        with interleaving(st) as jitter:
            cancels += _queue_phase(st, backend, debug, n, jitter)
    st.summary(backend=backend, items=total, cancels=cancels)


def _queue_phase(st: Stress, backend: str, debug: bool, n: int, jitter: Jitter) -> int:
    ctx = make_context(backend, debug=debug)
    q: cio.Queue[int] = cio.Queue(16)
    books = threading.Lock()  # guards the counters and the item source
    received: Counter[int] = Counter()
    accepted: Counter[int] = Counter()
    source = list(range(n - 1, -1, -1))  # pop() gives 0, 1, 2, ...

    def next_item() -> int | None:
        with books:
            return source.pop() if source else None

    async def consumer() -> None:
        while True:
            item = await q.get()
            with books:
                received[item] += 1

    async def producer() -> None:
        while (item := next_item()) is not None:
            try:
                await q.put(item)
            except cio.Cancelled:
                with books:  # a cancelled put put nothing: retry it later
                    source.append(item)
                raise
            with books:
                accepted[item] += 1

    def plain_producer() -> None:
        while not churn.done.is_set():
            item = next_item()
            if item is None:
                time.sleep(0.001)
                continue
            while True:
                try:
                    q.put_nowait(item)
                    break
                except cio.QueueFull:
                    time.sleep(0.0001)
            with books:
                accepted[item] += 1

    churn = Churn(st, ctx, jitter)
    try:
        churn.start([(4, consumer), (2, producer)])
        churn.helpers.start(plain_producer)

        def all_in() -> bool:
            with books:
                return sum(received.values()) >= n

        wait_for(st, all_in, lambda: f"{sum(received.values())} of {n} items received")
    finally:
        churn.stop()
        close_context(ctx)
    while True:
        try:
            received[q.get_nowait()] += 1
        except cio.QueueEmpty:
            break
    twice = [i for i, c in received.items() if c > 1]
    st.check(not twice, lambda: f"items received twice: {twice[:10]}")
    st.check(received == accepted, lambda: f"lost: {sorted(accepted - received)[:10]}")
    st.check(sorted(received) == list(range(n)), "an item was neither received nor queued")
    return churn.cancels


# ---------------------------------------------------------------- Semaphore and Lock

ROUNDS = 100_000


@pytest.mark.timeout(timeout_for(90))
@pytest.mark.parametrize("kind", ["semaphore", "lock"])
def test_permits_survive_random_cancels(backend: str, kind: str, stress: Stress) -> None:
    """Tasks take and give back a semaphore (3 permits) or a lock, hopping
    threads inside; a thread cancels them at random.  Never more holders
    than permits; every permit is back at the end."""
    st = stress
    total = scaled(ROUNDS, 500)
    st.begin(total, 90, runners=RUNNERS, kind=kind)
    cancels = 0
    for debug, n in st.phases(total):
        with interleaving(st) as jitter:
            cancels += _permit_phase(st, backend, debug, n, jitter, kind)
    st.summary(backend=backend, kind=kind, rounds=total, cancels=cancels)


def _permit_phase(st: Stress, backend: str, debug: bool, n: int, jitter: Jitter, kind: str) -> int:
    ctx = make_context(backend, debug=debug)
    permits = 3 if kind == "semaphore" else 1
    gate: cio.Semaphore | cio.Lock = cio.Semaphore(permits) if kind == "semaphore" else cio.Lock()
    books = threading.Lock()
    inside = [0]
    most = [0]
    rounds = [0]

    async def user() -> None:
        while True:
            async with gate:
                with books:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                try:
                    await cio.yield_now()  # hop threads holding it; may be cancelled here
                finally:
                    with books:
                        inside[0] -= 1
                        rounds[0] += 1

    churn = Churn(st, ctx, jitter)
    try:
        churn.start([(6, user)])

        def enough() -> bool:
            with books:
                return rounds[0] >= n

        wait_for(st, enough, lambda: f"{rounds[0]} of {n} rounds")
    finally:
        churn.stop()
        close_context(ctx)
    st.check(most[0] <= permits, lambda: f"{most[0]} holders at once (limit {permits})")
    if isinstance(gate, cio.Semaphore):
        st.check(gate.value == permits, lambda: f"{gate.value} permits left of {permits}")
    else:
        st.check(not gate.locked(), "the lock was left held")
    return churn.cancels


# ---------------------------------------------------------------- Strand

STRAND_POSTS = 200_000


@pytest.mark.timeout(timeout_for(60))
def test_strand_keeps_order_and_exclusion(backend: str, stress: Stress) -> None:
    """4 plain threads and tasks on 4 runners post to 3 strands; every
    handler runs once, one at a time per strand, in each poster's order."""
    st = stress
    total = scaled(STRAND_POSTS, 1000)
    st.begin(total, 60, runners=RUNNERS, strands=3)
    for debug, n in st.phases(total):
        with interleaving(st) as jitter:
            _strand_phase(st, backend, debug, n, jitter)
    st.summary(backend=backend, posts=total)


def _strand_phase(st: Stress, backend: str, debug: bool, n: int, jitter: Jitter) -> None:
    ctx = make_context(backend, debug=debug)
    strands = [cio.Strand(ctx) for _ in range(3)]
    inside = [0] * 3  # touched only inside strand handlers: a data race would show
    seen: list[list[tuple[int, int]]] = [[] for _ in range(3)]
    violations: list[str] = []
    posters = 8
    per = max(1, n // posters)

    def handler(s: int, poster: int, i: int) -> None:
        inside[s] += 1
        if inside[s] != 1:
            violations.append(f"strand {s}: {inside[s]} handlers at once")
        seen[s].append((poster, i))
        inside[s] -= 1

    def post_all(poster: int) -> None:
        rng = random.Random(poster)
        for i in range(per):
            s = rng.randrange(3)
            if i % 64 == 0:
                jitter()
            strands[s].post(handler, s, poster, i)

    async def task_poster(poster: int) -> None:
        rng = random.Random(poster)
        for i in range(per):
            s = rng.randrange(3)
            strands[s].dispatch(handler, s, poster, i)
            if i % 16 == 0:
                await cio.yield_now()

    runners = Threads(st, "runner")
    guard = ctx.work_guard()
    try:
        for _ in range(RUNNERS):
            runners.start(ctx.run)
        tasks = [cio.spawn(ctx, task_poster(p)) for p in range(4, posters)]
        plain = Threads(st, "poster")
        for p in range(4):
            plain.start(post_all, p)
        plain.join_or_fail("posters")
        wait_for(st, lambda: sum(len(x) for x in seen) >= per * posters, "every handler to run")
        wait_for(st, lambda: all(t.done() for t in tasks), "the posting tasks")
    finally:
        guard.reset()
        runners.join_or_fail("runners", ctx=ctx)
        close_context(ctx)
    st.check(not violations, lambda: violations[0])
    reordered = [
        (s, poster)
        for s in range(3)
        for poster in range(posters)
        if (mine := [i for p, i in seen[s] if p == poster]) != sorted(mine)
    ]
    st.check(not reordered, lambda: f"(strand, poster) pairs run out of order: {reordered}")
    st.check(sum(len(x) for x in seen) == per * posters, "a handler ran twice")
