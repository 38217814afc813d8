"""Strand: handlers never overlap, run in post order, on any free thread.

The intent of upstream's strand tests (construct, context, work tracking,
equality, post/dispatch/defer, many posts from many threads, FIFO order on
a pool) and Asio's strand guarantees, plus the task-on-a-strand rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import corosio_py as cp
from tests.unit.limits import PROMPT
from tests.unit.task_helpers import served, wait_done
from tests.unit.thread_helpers import start

THREADS = 4


class OverlapProbe:
    """Counts handlers inside at once; records the most seen and the order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.log: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, i: int) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.threads.add(threading.get_ident())
        time.sleep(0.0002)  # widen the window an overlap would need
        with self._lock:
            self.log.append(i)
            self.inside -= 1


def test_construct_from_context_or_executor(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    a = cp.Strand(ctx)
    b = cp.Strand(ctx.executor)
    assert a.context is ctx and b.context is ctx
    assert isinstance(a, cp.Executor)
    assert a == a and a != b and a != ctx.executor and ctx.executor != a
    assert len({a, b, a}) == 2


def test_bad_arguments(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    with pytest.raises(TypeError):
        cp.Strand(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cp.Strand(cp.Strand(ctx))
    strand = cp.Strand(ctx)
    with pytest.raises(TypeError):
        strand.post(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        strand.dispatch("nope")  # type: ignore[arg-type]
    assert ctx.run() == 0  # nothing was queued by the refused calls


def test_post_dispatch_defer_run_once_each(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    seen: list[str] = []
    strand.post(seen.append, "post")
    strand.defer(seen.append, "defer")
    strand.dispatch(seen.append, "dispatch")  # not on a run thread: posted
    assert seen == []
    assert ctx.run() >= 1
    assert seen == ["post", "defer", "dispatch"]


def test_work_tracking_keeps_run_going(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    strand.on_work_started()
    strand.on_work_started()
    strand.on_work_finished()
    assert ctx.run_for(0.02) == 0 and not ctx.stopped()  # one unit still held
    strand.on_work_finished()
    assert ctx.run() == 0 and ctx.stopped()


def test_fifo_and_no_overlap_on_a_pool(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    probe = OverlapProbe()
    n = 400
    for i in range(n):
        strand.post(probe, i)
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    assert probe.most == 1
    assert probe.log == list(range(n))


def test_concurrent_posts_from_plain_threads(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    probe = OverlapProbe()
    per_thread = 100

    def post_all(base: int) -> None:
        for j in range(per_thread):
            strand.post(probe, base + j)

    with served(ctx, THREADS):
        posters = [start(post_all, k * 1000) for k in range(THREADS)]
        for poster in posters:
            poster.finish()
        deadline = time.monotonic() + PROMPT
        while len(probe.log) < THREADS * per_thread:
            assert time.monotonic() < deadline, "strand handlers did not all run"
            time.sleep(0.001)
    assert probe.most == 1
    for k in range(THREADS):  # each poster's handlers in its own order
        mine = [i for i in probe.log if i // 1000 == k]
        assert mine == [k * 1000 + j for j in range(per_thread)]


def test_a_strand_does_not_pin_a_thread(make_ctx: Callable[..., cp.IOContext]) -> None:
    """Two strands, each blocked in a handler, run on two threads at once."""
    ctx = make_ctx()
    both = threading.Barrier(2, timeout=PROMPT)
    strands = [cp.Strand(ctx), cp.Strand(ctx)]
    for strand in strands:
        strand.post(both.wait)
    runners = [start(ctx.run) for _ in range(2)]
    for runner in runners:
        runner.finish()  # a BrokenBarrierError would surface here


def test_blocked_handler_holds_only_its_strand(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    blocked, other = cp.Strand(ctx), cp.Strand(ctx)
    release = threading.Event()
    after_block: list[str] = []
    blocked.post(release.wait, PROMPT)
    blocked.post(after_block.append, "behind the blocked one")
    done = threading.Event()
    other.post(done.set)
    with served(ctx, 2):
        assert done.wait(PROMPT), "another strand was held up by a blocked handler"
        assert after_block == []
        release.set()
        deadline = time.monotonic() + PROMPT
        while not after_block:
            assert time.monotonic() < deadline
            time.sleep(0.001)


def test_running_in_this_thread(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    seen: list[tuple[bool, bool]] = []
    assert not strand.running_in_this_thread()
    ex = ctx.executor
    strand.post(lambda: seen.append((strand.running_in_this_thread(), ex.running_in_this_thread())))
    ctx.post(lambda: seen.append((strand.running_in_this_thread(), True)))
    ctx.run()
    assert seen == [(True, True), (False, True)]


def test_dispatch_runs_inline_inside_the_strand(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    order: list[str] = []

    def outer() -> None:
        strand.dispatch(order.append, "inline")
        strand.post(order.append, "posted")
        order.append("outer end")

    strand.post(outer)
    ctx.run()
    assert order == ["inline", "outer end", "posted"]


def test_dispatch_from_a_run_thread_takes_an_idle_strand(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    order: list[str] = []

    def handler() -> None:
        strand.dispatch(lambda: order.append(f"inline {strand.running_in_this_thread()}"))
        order.append("after")

    ctx.post(handler)
    ctx.run()
    assert order == ["inline True", "after"]


def test_dispatch_behind_queued_work_keeps_order(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    order: list[str] = []
    strand.post(order.append, "first")
    ctx.post(lambda: strand.dispatch(order.append, "second"))
    ctx.run()
    assert order == ["first", "second"]


def test_handler_error_propagates_and_strand_goes_on(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    seen: list[int] = []

    def boom() -> None:
        raise ValueError("boom")

    strand.post(seen.append, 1)
    strand.post(boom)
    strand.post(seen.append, 2)
    with pytest.raises(ValueError, match="boom"):
        ctx.run()
    assert seen == [1]
    ctx.run()
    assert seen == [1, 2]


def test_long_queue_yields_to_other_work(make_ctx: Callable[..., cp.IOContext]) -> None:
    """A strand with many handlers lets other ready work run in between."""
    ctx = make_ctx(1)
    strand = cp.Strand(ctx)
    order: list[str] = []
    for _ in range(1000):
        strand.post(order.append, "s")
    ctx.post(order.append, "other")
    ctx.run()
    assert order.index("other") < 500


def test_closed_context_refuses(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    strand.post(lambda: None)
    assert ctx.run() == 1
    ctx.close()
    with pytest.raises(RuntimeError):
        strand.post(lambda: None)


def test_tasks_on_a_strand_never_overlap(make_ctx: Callable[..., cp.IOContext]) -> None:
    """The read-modify-write race of the issue, made safe by a strand."""
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    counter = [0]
    steps = 3000

    async def bump() -> None:
        for i in range(steps):
            value = counter[0]
            for _ in range(20):  # a window another thread would hit
                pass
            counter[0] = value + 1
            if i % 64 == 0:
                await cp.yield_now()

    tasks = [cp.spawn(strand, bump()) for _ in range(THREADS)]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    assert all(t.done() and t.exception() is None for t in tasks)
    assert counter[0] == THREADS * steps


def test_task_on_strand_resumes_through_it_after_io_and_timers(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    probe = OverlapProbe()

    async def worker(k: int) -> list[bool]:
        seen = []
        for i in range(20):
            await cp.sleep(0.0005)
            seen.append(strand.running_in_this_thread())
            probe(k * 100 + i)
        return seen

    tasks = [cp.spawn(strand, worker(k)) for k in range(THREADS)]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    assert all(all(t.result()) for t in tasks)
    assert probe.most == 1


def test_current_executor_is_the_strand(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)

    async def child() -> bool:
        return strand.running_in_this_thread()

    async def parent() -> tuple[bool, bool]:
        ex = cp.current_executor()
        assert ex is strand
        inner = await cp.spawn(ex, child())
        return inner, cp.current_executor() == ctx.executor

    task = cp.spawn(strand, parent())
    plain = cp.spawn(ctx, _current_is(ctx.executor))
    ctx.run()
    assert task.result() == (True, False)
    assert plain.result() is True


async def _current_is(ex: cp.Executor) -> bool:
    return cp.current_executor() == ex


@pytest.mark.leaves_work_for_close("close() cancels a strand task waiting on a timer")
def test_strand_task_cancel_and_close(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    closed: list[str] = []

    async def sleeper() -> None:
        try:
            await cp.sleep(3600)
        finally:
            closed.append("finally")

    a = cp.spawn(strand, sleeper())
    b = cp.spawn(strand, sleeper())
    ctx.run_for(0.02)
    assert a.cancel()
    ctx.run_for(0.02)
    assert a.cancelled() and not b.done()
    ctx.close()
    assert b.cancelled()
    assert closed == ["finally", "finally"]


def test_strand_tasks_and_plain_tasks_run_in_parallel(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    """A strand task blocked on a barrier does not keep a plain task out."""
    ctx = make_ctx()
    strand = cp.Strand(ctx)
    barrier = threading.Barrier(2, timeout=PROMPT)

    async def meet() -> None:
        barrier.wait()

    tasks = [cp.spawn(strand, meet()), cp.spawn(ctx, meet())]
    with served(ctx, 2):
        for task in tasks:
            wait_done(task)
    for task in tasks:
        task.result()
