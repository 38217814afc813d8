"""Posts from threads outside ``run*`` (the lock-free foreign inbox).

Such a post takes no scheduler lock; a runner about to block arms the inbox
and the next post wakes it.  These tests hunt the lost wake-up (a post that
nobody runs while the runners sleep), a post lost or run twice under
concurrent posters, the stop rule (a foreign post keeps the context running
until it ran), and posts racing ``close()``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from corosio_py import IOContext
from tests.unit.limits import PROMPT
from tests.unit.thread_helpers import join_all, start, wait_until


@pytest.mark.parametrize("runners", [1, 3])
def test_every_foreign_post_wakes_a_blocked_runner(
    make_ctx: Callable[..., IOContext], runners: int
) -> None:
    # One post at a time, each after the runners had time to block again: a
    # lost wake-up leaves the handler unrun and the wait below times out.
    ctx = make_ctx()
    guard = ctx.work_guard()
    threads = [start(ctx.run) for _ in range(runners)]
    ran = threading.Event()
    rng = random.Random(7)
    try:
        for i in range(300):
            ran.clear()
            ctx.post(ran.set)
            assert ran.wait(PROMPT), f"post {i} was not run: a lost wake-up"
            if i % 3 == 0:
                time.sleep(rng.uniform(0.0, 0.002))  # let the runners block
    finally:
        guard.reset()
        join_all(threads)


def _post_then_release(ctx: IOContext) -> None:
    guard = ctx.work_guard()
    got: list[int] = []
    runner = start(ctx.run)

    def post_then_release() -> None:
        ctx.post(got.append, 1)
        guard.reset()

    poster = start(post_then_release)
    join_all([poster, runner])
    assert got == [1]
    assert runner.result == 1


def test_post_then_guard_reset_in_one_foreign_thread_runs_the_post(
    make_ctx: Callable[..., IOContext],
) -> None:
    # The stop rule sees the inbox: a post made before the last unit of work
    # is released (in the same thread) runs before run() returns.
    for _ in range(100):
        ctx = make_ctx()
        _post_then_release(ctx)
        ctx.close()


def test_foreign_posts_count_as_outstanding_work_before_run(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx()
    got: list[int] = []

    def post_five() -> None:
        for i in range(5):
            ctx.post(got.append, i)

    poster = start(post_five)
    join_all([poster])
    assert ctx._sched.outstanding() == 5
    assert not ctx.stopped()
    assert ctx.run() == 5
    assert got == [0, 1, 2, 3, 4]  # one poster: its order is kept
    assert ctx.stopped()
    assert ctx._sched.outstanding() == 0


@pytest.mark.parametrize("runners", [1, 2, 4])
def test_concurrent_posters_each_handler_runs_exactly_once(
    make_ctx: Callable[..., IOContext], runners: int
) -> None:
    ctx = make_ctx()
    guard = ctx.work_guard()
    producers, each = 4, 3000
    counts: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    done = threading.Event()

    def record(key: tuple[int, int]) -> None:
        with lock:
            counts[key] += 1
            if len(counts) == producers * each:
                done.set()

    threads = [start(ctx.run) for _ in range(runners)]

    def produce(p: int) -> None:
        for i in range(each):
            ctx.post(record, (p, i))
            if i % 500 == 0:
                time.sleep(0.001)  # gaps: runners go back to sleep meanwhile

    posters = [start(produce, p) for p in range(producers)]
    join_all(posters)
    assert done.wait(PROMPT), f"{producers * each - len(counts)} posts never ran"
    guard.reset()
    join_all(threads)
    assert sum(counts.values()) == producers * each
    assert set(counts.values()) == {1}
    assert sum(t.result for t in threads) == producers * each


def _posts_racing_close(ctx: IOContext) -> None:
    guard = ctx.work_guard()
    runner = start(ctx.run)
    closed = threading.Event()
    after_close: list[int] = []
    refused: list[int] = []  # list.append: atomic on both builds (+= is not)

    def handler() -> None:
        if closed.is_set():
            after_close.append(1)

    def produce() -> None:
        while True:
            try:
                ctx.post(handler)
            except RuntimeError:
                refused.append(1)
                return

    posters = [start(produce) for _ in range(2)]
    time.sleep(0.01)
    guard.reset()
    ctx.close()  # stops the runner; later posts raise
    closed.set()
    join_all([*posters, runner])
    assert len(refused) == 2  # both posters ended on the error
    assert after_close == []
    with pytest.raises(RuntimeError, match="closed"):
        ctx.post(handler)


@pytest.mark.leaves_work_for_close("posts keep arriving until close() refuses them")
def test_posts_racing_close_raise_or_never_run(make_ctx: Callable[..., IOContext]) -> None:
    for _ in range(20):
        _posts_racing_close(make_ctx())


def test_a_blocked_handler_does_not_strand_foreign_posts(
    make_ctx: Callable[..., IOContext],
) -> None:
    # Two runners; one is stuck in a handler for 0.5 s.  Posts from outside
    # still run promptly on the other one.
    ctx = make_ctx()
    guard = ctx.work_guard()
    release = threading.Event()
    entered = threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(0.5)

    threads = [start(ctx.run) for _ in range(2)]
    ctx.post(stuck)
    assert entered.wait(PROMPT)
    got: list[float] = []
    t0 = time.monotonic()
    for _ in range(10):
        ctx.post(lambda: got.append(time.monotonic()))
    wait_until(lambda: len(got) == 10)
    assert got[-1] - t0 < 0.4, "the posts waited for the stuck handler"
    release.set()
    guard.reset()
    join_all(threads)
