"""Unit tests for cancellation: Task.cancel, stop tokens, timeout, gather,
TaskGroup, and a property test of cancel-versus-complete races.

What they pin down: the docstrings of ``Task.cancel``, ``StopSource``,
``timeout``, ``gather`` and ``TaskGroup``, and docs/architecture.md
("Exactly once", "Cancellation never loses data").  Every test runs once per
reactor backend; timing bounds are generous.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corosio_py as cp
from tests.unit.limits import JOIN, PROMPT
from tests.unit.task_helpers import served, wait_done

pytestmark = pytest.mark.timeout(60)



# ------------------------------------------------------------------ helpers




def run_ctx(ctx: cp.IOContext) -> float:
    """ctx.run(); return how long it took."""
    t0 = time.monotonic()
    ctx.run()
    return time.monotonic() - t0


async def value_after(value: Any, delay: float) -> Any:
    await cp.sleep(delay)
    return value


async def raise_after(error: BaseException, delay: float) -> Any:
    await cp.sleep(delay)
    raise error


async def cancel_after(task: cp.Task[Any], delay: float, results: list[bool] | None = None) -> None:
    await cp.sleep(delay)
    ok = task.cancel()
    if results is not None:
        results.append(ok)


async def catching(aw: Any) -> tuple[str, float]:
    """Await ``aw`` and report where it ended and how long it took."""
    t0 = time.monotonic()
    try:
        await aw
    except cp.Cancelled:
        return "cancelled", time.monotonic() - t0
    return "ok", time.monotonic() - t0


# -------------------------------------------------------- Task.cancel: suspended


def test_cancel_task_suspended_in_sleep(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, catching(cp.sleep(60)))
        results: list[bool] = []
        cp.spawn(ctx, cancel_after(target, 0.01, results))
        assert run_ctx(ctx) < PROMPT
        where, elapsed = target.result()
        assert where == "cancelled"
        assert elapsed < PROMPT
        assert results == [True]


def test_cancel_task_suspended_in_sleep_uncaught(backend: str) -> None:
    cleanup: list[str] = []

    async def body() -> None:
        try:
            await cp.sleep(60)
        finally:
            cleanup.append("finally")

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(target, 0.01))
        assert run_ctx(ctx) < PROMPT
        assert target.cancelled()
        assert cleanup == ["finally"]
        with pytest.raises(cp.Cancelled):
            target.result()


def test_cancel_task_suspended_in_timer_wait(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        target = cp.spawn(ctx, catching(timer.wait()))
        cp.spawn(ctx, cancel_after(target, 0.01))
        assert run_ctx(ctx) < PROMPT
        assert target.result()[0] == "cancelled"
        assert timer.cancel() == 0  # the waiter left the timer


def test_cancel_one_of_several_timer_waiters(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.1)
        victim = cp.spawn(ctx, catching(timer.wait()))
        others = [cp.spawn(ctx, catching(timer.wait())) for _ in range(2)]
        cp.spawn(ctx, cancel_after(victim, 0.01))
        ctx.run()
        assert victim.result()[0] == "cancelled"
        assert [t.result()[0] for t in others] == ["ok", "ok"]


def test_cancel_task_awaiting_another_task(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        awaited = cp.spawn(ctx, value_after("inner", 0.1))
        target = cp.spawn(ctx, catching(awaited))
        cp.spawn(ctx, cancel_after(target, 0.01))
        ctx.run()
        where, elapsed = target.result()
        assert where == "cancelled"
        assert elapsed < 0.1
        # Only the waiter was cancelled; the awaited task ran to completion.
        assert not awaited.cancelled()
        assert awaited.result() == "inner"


def test_cancel_task_suspended_in_yield_now(backend: str) -> None:
    log: list[Any] = []

    async def target_body() -> None:
        log.append("before")
        try:
            await cp.yield_now()
        except cp.Cancelled:
            log.append("cancelled at yield_now")
            raise
        log.append("after")  # pragma: no cover - must not run

    async def canceller(target: cp.Task[Any]) -> None:
        # Runs while target's resumption is queued behind us.
        log.append(("cancel", target.cancel()))

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, target_body())
        cp.spawn(ctx, canceller(target))
        ctx.run()
        assert target.cancelled()
    assert log == ["before", ("cancel", True), "cancelled at yield_now"]


def test_cancel_task_suspended_in_yield_now_from_posted_handler(backend: str) -> None:
    async def body() -> str:
        me = cp.current_task()
        assert me is not None
        cp.current_executor().post(me.cancel)
        try:
            await cp.yield_now()
        except cp.Cancelled:
            return "cancelled"
        return "resumed"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "cancelled"


def test_cancel_before_first_step(backend: str) -> None:
    log: list[str] = []

    async def body() -> None:
        log.append("started")
        await cp.sleep(60)
        log.append("slept")  # pragma: no cover

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert task.cancel() is True
        assert run_ctx(ctx) < PROMPT
        assert task.cancelled()
        assert "slept" not in log


# ---------------------------------------------------------- Task.cancel: running


def test_cancel_running_task_at_next_suspension(backend: str) -> None:
    log: list[Any] = []

    async def body() -> None:
        me = cp.current_task()
        assert me is not None
        log.append(("cancel", me.cancel()))
        log.append("still running")  # no exception until the next await
        total = sum(range(1000))
        log.append(total)
        try:
            await cp.sleep(0)
        except cp.Cancelled:
            log.append("cancelled at sleep(0)")
            raise

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.cancelled()
    assert log == [("cancel", True), "still running", sum(range(1000)), "cancelled at sleep(0)"]


def test_cancel_running_task_from_foreign_thread(backend: str) -> None:
    started = threading.Event()
    cancel_called = threading.Event()
    log: list[str] = []

    async def body() -> None:
        started.set()
        # Busy on a context thread while the foreign thread cancels.
        assert cancel_called.wait(PROMPT)
        log.append("still running")
        try:
            await cp.sleep(60)
        except cp.Cancelled:
            log.append("cancelled at next suspension")
            raise

    with cp.IOContext(backend=backend) as ctx, served(ctx, 2):
        task = cp.spawn(ctx, body())
        assert started.wait(PROMPT)
        assert task.cancel() is True
        cancel_called.set()
        wait_done(task)
    assert task.cancelled()
    assert log == ["still running", "cancelled at next suspension"]


def test_cancel_running_task_that_never_suspends_again(backend: str) -> None:
    async def body() -> int:
        me = cp.current_task()
        assert me is not None
        me.cancel()
        return 5

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.done()
        # Either outcome is acceptable; it must not hang or leak work.
        assert task.cancelled() or task.result() == 5
        assert ctx._sched.outstanding() == 0


def test_catch_cancelled_and_continue(backend: str) -> None:
    log: list[str] = []

    async def body() -> str:
        try:
            await cp.sleep(60)
        except cp.Cancelled:
            log.append("caught")
        await cp.sleep(0.005)  # not cancelled again
        log.append("slept")
        await cp.yield_now()
        timer = cp.Timer(cp.current_executor().context)
        timer.expires_after(0.002)
        await timer.wait()
        log.append("waited")
        return "finished"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(task, 0.01))
        assert run_ctx(ctx) < PROMPT
        assert not task.cancelled()
        assert task.result() == "finished"
    assert log == ["caught", "slept", "waited"]


def test_cancelled_is_not_an_exception(backend: str) -> None:
    assert issubclass(cp.Cancelled, BaseException)
    assert not issubclass(cp.Cancelled, Exception)

    async def body() -> str:
        try:
            await cp.sleep(60)
        except Exception:  # must not swallow Cancelled
            return "swallowed"
        return "slept"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(task, 0.01))
        ctx.run()
        assert task.cancelled()


def test_double_cancel_delivers_one_cancelled(backend: str) -> None:
    """Two cancel() calls while the task is suspended on one operation cancel
    that operation once: a coroutine that catches Cancelled and carries on
    must not get a second, spurious Cancelled at its next await."""
    log: list[Any] = []

    async def body() -> str:
        try:
            await cp.sleep(60)
        except cp.Cancelled:
            log.append("first")
        try:
            await cp.sleep(0.005)
        except cp.Cancelled:
            log.append("spurious second")
            return "cancelled twice"
        return "continued"

    async def canceller(target: cp.Task[Any]) -> None:
        await cp.sleep(0.01)
        log.append((target.cancel(), target.cancel()))

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, canceller(task))
        ctx.run()
        assert task.result() == "continued", log


def test_cancel_from_foreign_thread_many_iterations(backend: str) -> None:
    """4 threads run the context; the test thread cancels tasks suspended on
    every kind of operation at random moments.  Each task ends cancelled,
    exactly once, and nothing hangs."""
    rng = random.Random(99)
    n = 200
    started = [0] * n
    finished = [0] * n
    lock = threading.Lock()

    async def looper(i: int, timer: cp.Timer) -> None:
        # A task cancelled before its first step may never start (as in
        # asyncio); one that started must run its finally block once.
        started[i] += 1
        try:
            while True:  # only a cancellation ends this
                k = i % 5
                if k == 0:
                    await cp.sleep(0.0005)
                elif k == 1:
                    await cp.yield_now()
                elif k == 2:
                    timer.expires_after(0.0003)
                    await timer.wait()
                elif k == 3:
                    await cp.sleep(60)
                else:
                    await cp.sleep(0)
        finally:
            with lock:
                finished[i] += 1

    with cp.IOContext(backend=backend) as ctx, served(ctx, 4):
        tasks = []
        for i in range(n):
            task = cp.spawn(ctx, looper(i, cp.Timer(ctx)))
            tasks.append(task)
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.001)
            assert task.cancel() is True
            if i % 10 == 9:
                for t in tasks[-10:]:
                    wait_done(t)
        for t in tasks:
            wait_done(t)
    assert all(t.cancelled() for t in tasks)
    assert finished == started
    assert set(started) <= {0, 1}
    assert ctx._sched.outstanding() == 0


# ------------------------------------------------------------ StopSource


def test_stop_source_basics(backend: str) -> None:
    source = cp.StopSource()
    token = source.token
    assert isinstance(token, cp.StopToken)
    assert source.token is token
    assert source.stop_requested is False
    assert token.stop_requested is False
    assert source.request_stop() is True
    assert source.stop_requested is True
    assert token.stop_requested is True
    assert source.request_stop() is False
    assert source.request_stop() is False
    assert source.stop_requested is True


def test_stop_source_request_stop_once_across_threads(backend: str) -> None:
    source = cp.StopSource()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def stopper() -> None:
        barrier.wait()
        results.append(source.request_stop())

    threads = [threading.Thread(target=stopper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert sorted(results) == [False] * 7 + [True]


def test_stop_token_shared_by_several_operations(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        source = cp.StopSource()
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        tasks = [
            cp.spawn(ctx, catching(cp.sleep(60, stop_token=source.token))),
            cp.spawn(ctx, catching(cp.sleep(60, stop_token=source.token))),
            cp.spawn(ctx, catching(timer.wait(stop_token=source.token))),
        ]
        bystander = cp.spawn(ctx, catching(cp.sleep(0.05)))

        async def stopper() -> None:
            await cp.sleep(0.01)
            source.request_stop()

        cp.spawn(ctx, stopper())
        assert run_ctx(ctx) < PROMPT
        assert [t.result()[0] for t in tasks] == ["cancelled"] * 3
        assert bystander.result()[0] == "ok"


def test_stop_token_stopped_between_completion_and_resumption(backend: str) -> None:
    """A token stopped after the wait completed but before the task resumed
    does not undo the completion (cancellation never loses a result); the
    token stays stopped, so the next operation under it never starts."""

    async def body(source: cp.StopSource) -> list[str]:
        ctx = cp.current_executor().context
        timer = cp.Timer(ctx)
        timer.expires_after(0)
        # The expired wait posts our resumption; the handler posted first
        # runs before it and stops the token.
        ctx.post(source.request_stop)
        out = []
        for _ in range(2):
            try:
                await timer.wait(stop_token=source.token)
                out.append("ok")
            except cp.Cancelled:
                out.append("cancelled")
        return out

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body(cp.StopSource()))
        ctx.run()
        assert task.result() == ["ok", "cancelled"]


# ------------------------------------------------------------ timeout


def test_timeout_fires(backend: str) -> None:
    async def body() -> tuple[str, float, bool]:
        t0 = time.monotonic()
        scope = cp.timeout(0.01)
        try:
            with scope:
                await cp.sleep(60)
        except TimeoutError:
            return "timeout", time.monotonic() - t0, scope.expired
        return "no timeout", time.monotonic() - t0, scope.expired

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        result, elapsed, expired = task.result()
        assert result == "timeout"
        assert 0.01 <= elapsed < PROMPT
        assert expired is True


def test_timeout_cancels_timer_wait_and_task_join(backend: str) -> None:
    async def body(awaited: cp.Task[Any]) -> list[str]:
        out = []
        timer = cp.Timer(cp.current_executor().context)
        timer.expires_after(60)
        try:
            with cp.timeout(0.01):
                await timer.wait()
        except TimeoutError:
            out.append("timer timeout")
        assert timer.cancel() == 0
        try:
            with cp.timeout(0.01):
                await awaited
        except TimeoutError:
            out.append("join timeout")
        return out

    with cp.IOContext(backend=backend) as ctx:
        awaited = cp.spawn(ctx, value_after("late", 0.2))
        task = cp.spawn(ctx, body(awaited))
        ctx.run()
        assert task.result() == ["timer timeout", "join timeout"]
        assert awaited.result() == "late"  # not cancelled by the timeout


def test_timeout_inner_completes_first(backend: str) -> None:
    async def body() -> str:
        scope = cp.timeout(0.2)
        with scope:
            await cp.sleep(0.01)
        assert not scope.expired
        # Well past the old deadline: nothing from the block leaks out.
        await cp.sleep(0.4)
        return "ok"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "ok"


def test_timeout_completed_block_does_not_keep_run_alive(backend: str) -> None:
    async def body() -> None:
        with cp.timeout(60):
            await cp.sleep(0.001)

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        task.result()
        assert ctx._sched.outstanding() == 0


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -1e300])
def test_timeout_already_expired_cancels_first_suspension(backend: str, seconds: float) -> None:
    log: list[str] = []

    async def body() -> str:
        try:
            with cp.timeout(seconds):
                log.append("body runs")
                x = sum(range(10))  # no suspension yet: runs normally
                log.append(f"computed {x}")
                await cp.sleep(60)
                log.append("slept")  # pragma: no cover
        except TimeoutError:
            return "timeout"
        return "no timeout"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == "timeout"
    assert log == ["body runs", "computed 45"]


def test_timeout_zero_block_without_suspension_leaks_nothing(backend: str) -> None:
    async def body() -> list[str]:
        out = []
        with cp.timeout(0):
            out.append("no await in here")
        await cp.sleep(0.001)  # must not be cancelled
        out.append("after")
        await cp.yield_now()
        out.append("after yield")
        return out

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == ["no await in here", "after", "after yield"]


def test_timeout_firing_while_running_leaks_nothing(backend: str) -> None:
    """With 2 threads the deadline can pass (and be processed by the other
    thread) while the task is busy inside the block; a block that then ends
    without suspending must not leave a cancellation behind."""

    async def body() -> str:
        for _ in range(5):
            with cp.timeout(0.001):
                end = time.monotonic() + 0.02
                while time.monotonic() < end:
                    time.sleep(0.001)  # busy, no suspension; lets the GIL go
            await cp.sleep(0.001)
            await cp.yield_now()
        return "ok"

    # A work guard keeps the context alive, so this test checks only the
    # leak (the work accounting is checked by the next test).
    with cp.IOContext(backend=backend) as ctx:
        with served(ctx, 2):
            task = cp.spawn(ctx, body())
            wait_done(task, 20.0)
        assert task.result() == "ok"


def test_timeout_armed_on_run_thread_counts_as_outstanding_work(backend: str) -> None:
    """Counted before visible: the deadline of a timeout entered on
    a run thread is visible to the other thread's reactor at once, so its
    unit of work must be in the global count at once.  Otherwise the other
    thread expires it, runs the (empty) firing, drops the count to zero and
    the context stops while the task is still running."""

    async def body() -> str:
        with cp.timeout(0.001):
            end = time.monotonic() + 0.02
            while time.monotonic() < end:
                time.sleep(0.001)
        await cp.sleep(0.001)
        return "ok"

    for _ in range(3):
        assert cp.run(body(), threads=2, backend=backend) == "ok"


def test_nested_timeouts_inner_fires(backend: str) -> None:
    async def body() -> list[str]:
        out = []
        with cp.timeout(60):
            try:
                with cp.timeout(0.01):
                    await cp.sleep(60)
            except TimeoutError:
                out.append("inner timeout")
            await cp.sleep(0.005)  # outer still fine
            out.append("outer continues")
        return out

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == ["inner timeout", "outer continues"]


def test_nested_timeouts_outer_fires(backend: str) -> None:
    log: list[str] = []

    async def body() -> str:
        try:
            with cp.timeout(0.01):
                with cp.timeout(60):
                    await cp.sleep(60)
                log.append("after inner")  # pragma: no cover
        except TimeoutError:
            return "outer timeout"
        return "no timeout"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == "outer timeout"
    assert log == []


def test_timeout_reuse_pattern(backend: str) -> None:
    """6.8 testTimerReuse: the same pattern three times: success, timeout,
    success."""

    async def guarded(inner: float) -> str:
        try:
            with cp.timeout(0.05):
                await cp.sleep(inner)
        except TimeoutError:
            return "timeout"
        return "ok"

    async def body() -> list[str]:
        return [await guarded(0.001), await guarded(60), await guarded(0.001)]

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == ["ok", "timeout", "ok"]


def test_timeout_with_parent_cancel_raises_cancelled(backend: str) -> None:
    """6.8 testParentCancellation: a Task.cancel inside a timeout block is a
    cancellation, not a timeout."""

    async def body() -> str:
        try:
            with cp.timeout(60):
                await cp.sleep(60)
        except TimeoutError:
            return "timeout"
        return "no error"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(task, 0.01))
        assert run_ctx(ctx) < PROMPT
        assert task.cancelled()


def test_timeout_with_stop_token_inside(backend: str) -> None:
    async def body(source: cp.StopSource) -> str:
        try:
            with cp.timeout(60):
                await cp.sleep(60, stop_token=source.token)
        except TimeoutError:
            return "timeout"
        except cp.Cancelled:
            return "cancelled"
        return "no error"

    async def stopper(source: cp.StopSource) -> None:
        await cp.sleep(0.01)
        source.request_stop()

    with cp.IOContext(backend=backend) as ctx:
        source = cp.StopSource()
        task = cp.spawn(ctx, body(source))
        cp.spawn(ctx, stopper(source))
        ctx.run()
        assert task.result() == "cancelled"


def test_timeout_does_not_swallow_other_errors(backend: str) -> None:
    async def body() -> str:
        try:
            with cp.timeout(60):
                await cp.sleep(0.001)
                raise KeyError("mine")
        except KeyError:
            return "key error"
        return "nothing"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "key error"


def test_timeout_outside_task_and_bad_values(backend: str) -> None:
    with pytest.raises(RuntimeError), cp.timeout(1):
        pass  # pragma: no cover
    with pytest.raises(ValueError):
        cp.timeout(float("nan"))
    with pytest.raises(TypeError):
        cp.timeout("1")  # type: ignore[arg-type]


def test_timeout_many_sequential_blocks_leave_no_work(backend: str) -> None:
    async def body() -> int:
        n = 0
        for i in range(200):
            with cp.timeout(30 if i % 2 else 0.5):
                await cp.sleep(0)
                n += 1
        return n

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == 200
        assert len(ctx._sched.timers) == 0


# ------------------------------------------------------------ gather


def test_gather_results_in_argument_order(backend: str) -> None:
    async def body() -> list[Any]:
        return await cp.gather(
            value_after(1, 0.03), value_after(2, 0.01), value_after(3, 0.02), value_after(4, 0)
        )

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == [1, 2, 3, 4]


def test_gather_empty(backend: str) -> None:
    async def body() -> list[Any]:
        return await cp.gather()

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == []


def test_gather_accepts_tasks_and_coroutines(backend: str) -> None:
    async def body(done_task: cp.Task[Any]) -> list[Any]:
        ex = cp.current_executor()
        pending_task = cp.spawn(ex, value_after("task", 0.01))
        return await cp.gather(value_after("coro", 0.005), pending_task, done_task)

    with cp.IOContext(backend=backend) as ctx:
        done_task = cp.spawn(ctx, value_after("done", 0))
        ctx.run()
        ctx.restart()
        task = cp.spawn(ctx, body(done_task))
        ctx.run()
        assert task.result() == ["coro", "task", "done"]


def test_gather_first_error_cancels_rest_and_waits(backend: str) -> None:
    cleanup: list[str] = []
    error = ValueError("first")

    async def long(i: int) -> None:
        try:
            await cp.sleep(60)
        finally:
            await cp.sleep(0.005)  # cleanup that itself suspends
            cleanup.append(f"long-{i}")

    async def body(t_long: cp.Task[Any]) -> tuple[str, list[str], bool]:
        try:
            await cp.gather(long(0), t_long, raise_after(error, 0.01))
        except ValueError as e:
            assert e is error
            # The others are finished before the error is raised.
            return "raised", sorted(cleanup), t_long.done()
        return "no error", [], False

    with cp.IOContext(backend=backend) as ctx:
        t_long = cp.spawn(ctx, long(1))
        task = cp.spawn(ctx, body(t_long))
        assert run_ctx(ctx) < PROMPT
        assert task.result() == ("raised", ["long-0", "long-1"], True)
        assert t_long.cancelled()


def test_gather_raises_earliest_error(backend: str) -> None:
    async def body() -> str:
        try:
            await cp.gather(
                raise_after(KeyError("late"), 0.05),
                raise_after(ValueError("early"), 0.005),
                value_after(1, 60),
            )
        except ValueError:
            return "early"
        except KeyError:
            return "late"
        return "none"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == "early"


def test_gather_cancelled_cancels_children(backend: str) -> None:
    cleanup: list[str] = []
    state: dict[str, Any] = {}

    async def child(i: int) -> None:
        try:
            await cp.sleep(60)
        finally:
            cleanup.append(f"child-{i}")

    async def gatherer(children: list[cp.Task[Any]]) -> None:
        try:
            await cp.gather(child(0), *children)
        except cp.Cancelled:
            state["children_done_at_raise"] = all(c.done() for c in children)
            state["cleanup_at_raise"] = sorted(cleanup)
            raise

    with cp.IOContext(backend=backend) as ctx:
        children = [cp.spawn(ctx, child(i)) for i in (1, 2)]
        g = cp.spawn(ctx, gatherer(children))
        cp.spawn(ctx, cancel_after(g, 0.01))
        assert run_ctx(ctx) < PROMPT
        assert g.cancelled()
        assert all(c.cancelled() for c in children)
    assert sorted(cleanup) == ["child-0", "child-1", "child-2"]
    assert state == {
        "children_done_at_raise": True,
        "cleanup_at_raise": ["child-0", "child-1", "child-2"],
    }


@pytest.mark.parametrize("bad", [5, None, "str", lambda: None])
def test_gather_type_error_for_other_objects(backend: str, bad: Any) -> None:
    async def body() -> str:
        try:
            await cp.gather(value_after(1, 60), bad)
        except TypeError:
            return "type error"
        return "accepted"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT  # the already-started child was cancelled
        assert task.result() == "type error"


def test_gather_child_catching_cancelled_still_raises_error(backend: str) -> None:
    async def stubborn() -> str:
        try:
            await cp.sleep(60)
        except cp.Cancelled:
            return "ignored the cancel"
        return "slept"

    async def body() -> str:
        try:
            await cp.gather(stubborn(), raise_after(ValueError("x"), 0.01))
        except ValueError:
            return "raised"
        return "no error"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        assert task.result() == "raised"


# ------------------------------------------------------------ TaskGroup


def test_task_group_waits_for_all(backend: str) -> None:
    async def body() -> list[Any]:
        async with cp.TaskGroup() as tg:
            tasks = [tg.spawn(value_after(i, 0.005 * (3 - i))) for i in range(3)]
            assert not any(t.done() for t in tasks)
        assert all(t.done() for t in tasks)
        return [t.result() for t in tasks]

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == [0, 1, 2]


def test_task_group_empty(backend: str) -> None:
    async def body() -> str:
        async with cp.TaskGroup():
            pass
        return "ok"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "ok"


def test_task_group_child_error_cancels_siblings(backend: str) -> None:
    error = ValueError("child failed")
    cleanup: list[str] = []
    state: dict[str, Any] = {}

    async def sibling() -> None:
        try:
            await cp.sleep(60)
        finally:
            cleanup.append("sibling")

    async def body() -> None:
        try:
            async with cp.TaskGroup() as tg:
                state["sibling"] = tg.spawn(sibling())
                state["failer"] = tg.spawn(raise_after(error, 0.01))
                try:
                    await cp.sleep(60)  # the body is cancelled too
                finally:
                    cleanup.append("body")
        except ExceptionGroup as eg:
            state["eg"] = eg

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        task.result()
    eg = state["eg"]
    assert list(eg.exceptions) == [error]
    assert state["sibling"].cancelled()
    assert sorted(cleanup) == ["body", "sibling"]


def test_task_group_body_error_included(backend: str) -> None:
    cleanup: list[str] = []
    state: dict[str, Any] = {}

    async def child(i: int) -> None:
        try:
            await cp.sleep(60)
        finally:
            cleanup.append(f"child-{i}")

    async def body() -> None:
        try:
            async with cp.TaskGroup() as tg:
                state["children"] = [tg.spawn(child(i)) for i in range(2)]
                await cp.sleep(0.005)
                raise KeyError("body failed")
        except ExceptionGroup as eg:
            state["eg"] = eg

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        task.result()
    exceptions = state["eg"].exceptions
    assert len(exceptions) == 1
    assert isinstance(exceptions[0], KeyError)
    assert all(c.cancelled() for c in state["children"])
    assert sorted(cleanup) == ["child-0", "child-1"]


def test_task_group_body_and_child_errors(backend: str) -> None:
    state: dict[str, Any] = {}

    async def body() -> None:
        try:
            async with cp.TaskGroup() as tg:
                tg.spawn(raise_after(ValueError("child"), 0))
                await cp.sleep(0.01)  # cancelled by the child's failure
        except ExceptionGroup as eg:
            state["eg"] = eg

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert run_ctx(ctx) < PROMPT
        task.result()
    types = sorted(type(e).__name__ for e in state["eg"].exceptions)
    assert types == ["ValueError"]


def test_task_group_two_child_errors(backend: str) -> None:
    state: dict[str, Any] = {}

    async def body() -> None:
        try:
            async with cp.TaskGroup() as tg:
                tg.spawn(raise_after(ValueError("a"), 0.005))
                tg.spawn(raise_after(KeyError("b"), 0.005))
        except ExceptionGroup as eg:
            state["eg"] = eg

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        task.result()
    types = {type(e).__name__ for e in state["eg"].exceptions}
    # Both fail at the same deadline; the second may be cancelled first.
    assert "ValueError" in types or "KeyError" in types
    assert types <= {"ValueError", "KeyError"}


def test_task_group_spawn_after_exit_raises(backend: str) -> None:
    async def body() -> str:
        async with cp.TaskGroup() as tg:
            tg.spawn(value_after(1, 0.001))
        coro = value_after(2, 0)
        try:
            tg.spawn(coro)
        except RuntimeError:
            coro.close()
            return "refused"
        return "spawned"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "refused"


def test_task_group_spawn_before_enter_raises(backend: str) -> None:
    tg = cp.TaskGroup()
    coro = value_after(1, 0)
    with pytest.raises(RuntimeError):
        tg.spawn(coro)
    coro.close()


def test_task_group_child_may_spawn_into_group(backend: str) -> None:
    results: list[str] = []

    async def spawner(tg: cp.TaskGroup) -> None:
        await cp.sleep(0.005)
        tg.spawn(grandchild())

    async def grandchild() -> None:
        await cp.sleep(0.01)
        results.append("grandchild")

    async def body() -> str:
        async with cp.TaskGroup() as tg:
            tg.spawn(spawner(tg))
        # The group waited for the late child as well.
        return ",".join(results)

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "grandchild"


def test_task_group_parent_cancelled_while_waiting_at_exit(backend: str) -> None:
    """Cancelling the task that waits at the end of ``async with`` cancels
    the children (as asyncio's TaskGroup does) instead of waiting them out."""
    state: dict[str, Any] = {}

    async def body() -> None:
        async with cp.TaskGroup() as tg:
            state["children"] = [tg.spawn(value_after(i, 3.0)) for i in range(2)]

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(task, 0.01))
        elapsed = run_ctx(ctx)
        assert [c.cancelled() for c in state["children"]] == [True, True]
        assert task.cancelled()
        assert elapsed < 2.5


def test_task_group_parent_cancelled_in_body(backend: str) -> None:
    state: dict[str, Any] = {}

    async def body() -> None:
        async with cp.TaskGroup() as tg:
            state["children"] = [tg.spawn(value_after(i, 3.0)) for i in range(2)]
            await cp.sleep(3.0)

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        cp.spawn(ctx, cancel_after(task, 0.01))
        elapsed = run_ctx(ctx)
        assert [c.cancelled() for c in state["children"]] == [True, True]
        assert task.cancelled()
        assert elapsed < 2.5


# ------------------------------------------- property: cancel vs complete races


@dataclass(frozen=True)
class Op:
    kind: str  # "sleep" or "timer"
    duration_ms: int
    cancel: str  # "none", "task", "token", "timer"
    delay_ms: int
    from_thread: bool
    with_token: bool


op_strategy = st.builds(
    Op,
    kind=st.sampled_from(["sleep", "timer"]),
    duration_ms=st.integers(0, 3),
    cancel=st.sampled_from(["none", "task", "token", "timer"]),
    delay_ms=st.integers(0, 3),
    from_thread=st.booleans(),
    with_token=st.booleans(),
)


def _run_schedule(backend: str, ops: list[Op], threads: int) -> None:
    ctx = cp.IOContext(backend=backend)
    try:
        n = len(ops)
        outcomes: list[list[str]] = [[] for _ in range(n)]
        actions: list[list[Any]] = [[] for _ in range(n)]
        timers = [cp.Timer(ctx) for _ in range(n)]
        sources = [
            cp.StopSource() if (op.with_token or op.cancel == "token") else None for op in ops
        ]

        async def target(i: int) -> str:
            op = ops[i]
            source = sources[i]
            token = source.token if source is not None else None
            try:
                if op.kind == "sleep":
                    await cp.sleep(op.duration_ms / 1000, stop_token=token)
                else:
                    await timers[i].wait(stop_token=token)
            except cp.Cancelled:
                outcomes[i].append("cancelled")
                return "cancelled"
            outcomes[i].append("ok")
            return "ok"

        for i, op in enumerate(ops):
            timers[i].expires_after(op.duration_ms / 1000)
        tasks = [cp.spawn(ctx, target(i)) for i in range(n)]

        def act(i: int) -> None:
            op = ops[i]
            how = op.cancel
            if how == "timer" and op.kind != "timer":
                how = "task"
            if how == "task":
                actions[i].append(("task", tasks[i].cancel()))
            elif how == "token":
                source = sources[i]
                assert source is not None
                actions[i].append(("token", source.request_stop()))
            elif how == "timer":
                actions[i].append(("timer", timers[i].cancel()))

        async def canceller_task(i: int) -> None:
            await cp.sleep(ops[i].delay_ms / 1000)
            act(i)

        def canceller_thread(i: int) -> None:
            time.sleep(ops[i].delay_ms / 1000)
            act(i)

        foreign: list[threading.Thread] = []
        for i, op in enumerate(ops):
            if op.cancel == "none":
                continue
            if op.from_thread and op.delay_ms == 0:
                act(i)  # before any runner starts: before the task's first step
            elif op.from_thread:
                foreign.append(threading.Thread(target=canceller_thread, args=(i,), daemon=True))
            else:
                cp.spawn(ctx, canceller_task(i))

        errors: list[BaseException] = []

        def serve() -> None:
            try:
                ctx.run()
            except BaseException as error:
                errors.append(error)

        runners = [threading.Thread(target=serve, daemon=True) for _ in range(threads)]
        for t in runners + foreign:
            t.start()
        for t in runners + foreign:
            t.join(10.0)
        hung = [t for t in runners + foreign if t.is_alive()]
        if hung:
            ctx.stop()
            for t in runners:
                t.join(5.0)
        assert not hung, "run() or a canceller did not return"
        assert not errors, errors

        for i, op in enumerate(ops):
            task = tasks[i]
            assert task.done(), f"op {i} {op} left pending"
            if not outcomes[i]:
                # A Task.cancel() that landed before the task's first step
                # (a canceller thread can beat it): the body never ran.
                assert actions[i] == [("task", True)], (op, actions[i])
                assert task.cancelled()
                continue
            assert len(outcomes[i]) == 1, f"op {i} {op} completed {outcomes[i]}"
            result = outcomes[i][0]
            assert task.result() == result
            act_log = actions[i]
            if op.cancel == "none":
                assert result == "ok", f"op {i} {op}: spurious cancellation"
                continue
            assert len(act_log) == 1
            how, value = act_log[0]
            if how == "timer":
                # Timer.cancel claimed the waiter iff it reports 1.
                assert value in (0, 1)
                assert result == ("cancelled" if value == 1 else "ok"), (op, act_log, result)
            elif how == "task" and value is False:
                assert result == "ok", (op, act_log, result)  # it was already done
            elif how == "token":
                assert value is True
        assert ctx._sched.outstanding() == 0
        assert ctx.stopped()
    finally:
        ctx.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_strategy, min_size=1, max_size=6), threads=st.integers(1, 3))
def test_property_cancel_versus_complete(backend: str, ops: list[Op], threads: int) -> None:
    _run_schedule(backend, ops, threads)
