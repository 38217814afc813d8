"""Unit tests for tasks: spawn, run, the Task API and the coroutine driver.

What they pin down: the docstrings of ``spawn``, ``run`` and ``Task``.  Every test runs once per
reactor backend.  Timing bounds are generous (the machine is shared): a
wait that must end "promptly" only has to end well within the test timeout.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import logging
import random
import threading
import time
from typing import Any

import pytest

import corosio_py as cp
from tests.unit.limits import JOIN
from tests.unit.task_helpers import served

pytestmark = pytest.mark.timeout(60)



def run_threads(ctx: cp.IOContext, threads: int) -> int:
    """Run ``ctx`` on ``threads`` threads (the caller's is one of them).

    Returns the total number of handlers run; re-raises the first error any
    ``run()`` raised; fails if a thread does not return.
    """
    counts: list[int] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            counts.append(ctx.run())
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=serve, daemon=True) for _ in range(threads - 1)]
    for worker in workers:
        worker.start()
    serve()
    for worker in workers:
        worker.join(JOIN)
    assert not any(w.is_alive() for w in workers), "a thread did not return from run()"
    if errors:
        raise errors[0]
    return sum(counts)




async def value_after(value: Any, delay: float = 0.0) -> Any:
    if delay:
        await cp.sleep(delay)
    return value


async def raise_after(error: BaseException, delay: float = 0.0) -> Any:
    if delay:
        await cp.sleep(delay)
    raise error


# --------------------------------------------------------------- spawn / run


def test_spawn_returns_task_and_run_completes_it(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(42, 0.005))
        assert isinstance(task, cp.Task)
        assert not task.done()
        assert not task.cancelled()
        n = ctx.run()
        assert n >= 1
        assert task.done()
        assert not task.cancelled()
        assert task.result() == 42
        assert task.exception() is None
        assert ctx.stopped()


def test_spawn_never_runs_inline(backend: str) -> None:
    ran: list[int] = []

    async def body() -> None:
        ran.append(1)

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        assert ran == []
        ctx.run()
        assert ran == [1]
        assert task.result() is None


def test_spawn_on_executor(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx.executor, value_after("x"))
        assert task.context is ctx
        ctx.run()
        assert task.result() == "x"


def test_result_while_pending_raises_runtime_error(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(1, 0.005))
        with pytest.raises(RuntimeError):
            task.result()
        with pytest.raises(RuntimeError):
            task.exception()
        ctx.run()
        assert task.result() == 1


def test_result_while_suspended_raises_runtime_error(backend: str) -> None:
    seen: list[str] = []

    async def body() -> int:
        await cp.sleep(0.02)
        return 5

    async def probe(other: cp.Task[int]) -> None:
        await cp.sleep(0.001)
        assert not other.done()
        try:
            other.result()
        except RuntimeError:
            seen.append("runtime")

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, body())
        cp.spawn(ctx, probe(target))
        ctx.run()
        assert seen == ["runtime"]
        assert target.result() == 5


def test_exception_is_kept_and_does_not_escape_run(backend: str) -> None:
    error = ValueError("boom")
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, raise_after(error, 0.002))
        other = cp.spawn(ctx, value_after(7, 0.01))
        ctx.run()  # must not raise
        assert task.done()
        assert not task.cancelled()
        assert task.exception() is error
        with pytest.raises(ValueError, match="boom"):
            task.result()
        assert other.result() == 7  # no other handler was lost


def test_exception_raised_before_first_suspension_is_kept(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, raise_after(KeyError("k")))
        ctx.run()
        assert isinstance(task.exception(), KeyError)


def test_unretrieved_exception_is_logged(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, raise_after(ValueError("never retrieved")))
        ctx.run()
    with caplog.at_level(logging.ERROR, logger="corosio_py"):
        del task
        gc.collect()
    logged = [r for r in caplog.records if r.name == "corosio_py" and r.levelno >= logging.ERROR]
    assert logged, "an exception nobody retrieved was not logged"


def test_retrieved_exception_is_not_logged(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, raise_after(ValueError("seen")))
        ctx.run()
        assert isinstance(task.exception(), ValueError)
    with caplog.at_level(logging.ERROR, logger="corosio_py"):
        del task
        gc.collect()
    assert not [r for r in caplog.records if r.name == "corosio_py"]


def test_cancel_returns_false_once_done(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(3))
        ctx.run()
        assert task.done()
        assert task.cancel() is False
        assert task.cancel() is False
        assert not task.cancelled()
        assert task.result() == 3


def test_cancel_pending_returns_true_and_task_reports_cancelled(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(3, 60.0))
        ctx.run_for(0.02)  # start it; it is now suspended in sleep
        assert not task.done()
        assert task.cancel() is True
        ctx.restart()
        ctx.run()
        assert task.done()
        assert task.cancelled()
        with pytest.raises(cp.Cancelled):
            task.result()
        with pytest.raises(cp.Cancelled):
            task.exception()
        assert task.cancel() is False


def test_failed_task_is_not_cancelled(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, raise_after(RuntimeError("x")))
        ctx.run()
        assert task.done()
        assert not task.cancelled()
        assert isinstance(task.exception(), RuntimeError)


# ------------------------------------------------------------ done callbacks


def test_add_done_callback_runs_on_finishing_thread(backend: str) -> None:
    finishers: dict[int, int] = {}
    callbacks: dict[int, tuple[int, cp.Task[Any]]] = {}
    lock = threading.Lock()

    async def body(i: int) -> int:
        for _ in range(random.randrange(1, 5)):
            await cp.yield_now()
        await cp.sleep(random.random() * 0.005)
        with lock:
            finishers[i] = threading.get_ident()
        return i

    def make_cb(i: int) -> Any:
        def cb(task: cp.Task[Any]) -> None:
            assert task.done()
            with lock:
                callbacks[i] = (threading.get_ident(), task)

        return cb

    with cp.IOContext(backend=backend) as ctx:
        tasks = []
        with served(ctx, 4):
            for i in range(100):
                task = cp.spawn(ctx, body(i))
                task.add_done_callback(make_cb(i))
                tasks.append(task)
    assert sorted(callbacks) == list(range(100))
    for i, task in enumerate(tasks):
        ident, cb_task = callbacks[i]
        assert cb_task is task
        assert ident == finishers[i], f"task {i}: callback ran on another thread"
        assert task.result() == i


def test_add_done_callback_when_already_done_runs_at_once(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(1))
        ctx.run()
        calls: list[tuple[cp.Task[Any], int]] = []
        task.add_done_callback(lambda t: calls.append((t, threading.get_ident())))
        assert calls == [(task, threading.get_ident())]


def test_add_done_callback_called_once_per_registration(backend: str) -> None:
    calls: list[str] = []
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(1, 0.002))
        task.add_done_callback(lambda t: calls.append("a"))
        task.add_done_callback(lambda t: calls.append("b"))
        ctx.run()
    assert calls == ["a", "b"]


def test_add_done_callback_non_callable_raises_type_error(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(1))
        with pytest.raises(TypeError):
            task.add_done_callback(42)  # type: ignore[arg-type]
        ctx.run()


def test_done_callback_exception_does_not_break_run(backend: str) -> None:
    calls: list[str] = []

    def bad(task: cp.Task[Any]) -> None:
        calls.append("bad")
        raise ValueError("callback failure")

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, value_after(1))
        task.add_done_callback(bad)
        task.add_done_callback(lambda t: calls.append("good"))
        later = cp.spawn(ctx, value_after(2, 0.005))
        ctx.run()
    assert calls == ["bad", "good"]
    assert task.result() == 1
    assert later.result() == 2


# ------------------------------------------------------------ await task


def test_await_task_from_another_task(backend: str) -> None:
    async def waiter(target: cp.Task[int]) -> int:
        return (await target) + 1

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, value_after(41, 0.01))
        outer = cp.spawn(ctx, waiter(target))
        ctx.run()
        assert outer.result() == 42
        assert target.result() == 41


def test_await_already_done_task(backend: str) -> None:
    async def waiter(target: cp.Task[int]) -> int:
        await cp.sleep(0.01)
        assert target.done()
        return await target

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, value_after(9))
        outer = cp.spawn(ctx, waiter(target))
        ctx.run()
        assert outer.result() == 9


def test_await_failing_task_raises_its_error(backend: str) -> None:
    error = ValueError("inner")

    async def waiter(target: cp.Task[Any]) -> str:
        try:
            await target
        except ValueError as e:
            assert e is error
            return "caught"
        return "no error"

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, raise_after(error, 0.005))
        outer = cp.spawn(ctx, waiter(target))
        ctx.run()
        assert outer.result() == "caught"


def test_await_cancelled_task_raises_cancelled(backend: str) -> None:
    async def waiter(target: cp.Task[Any]) -> str:
        try:
            await target
        except cp.Cancelled:
            return "cancelled"
        return "no error"

    async def canceller(target: cp.Task[Any]) -> None:
        await cp.sleep(0.005)
        assert target.cancel()

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, value_after(1, 60.0))
        outer = cp.spawn(ctx, waiter(target))
        cp.spawn(ctx, canceller(target))
        ctx.run()
        assert target.cancelled()
        assert outer.result() == "cancelled"


def test_many_tasks_await_one_task(backend: str) -> None:
    async def waiter(target: cp.Task[int]) -> int:
        return await target

    with cp.IOContext(backend=backend) as ctx:
        target = cp.spawn(ctx, value_after(5, 0.01))
        waiters = [cp.spawn(ctx, waiter(target)) for _ in range(50)]
        run_threads(ctx, 3)
        assert [w.result() for w in waiters] == [5] * 50


def test_task_awaiting_itself_raises(backend: str) -> None:
    async def body() -> str:
        me = cp.current_task()
        assert me is not None
        try:
            await me
        except RuntimeError:
            return "refused"
        return "awaited"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "refused"


# ---------------------------------------------- current_task / current_executor


def test_current_task_and_executor_inside_task(backend: str) -> None:
    seen: dict[str, Any] = {}

    async def body() -> None:
        seen["task"] = cp.current_task()
        seen["executor"] = cp.current_executor()
        await cp.sleep(0.001)
        seen["task_after"] = cp.current_task()

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert seen["task"] is task
        assert seen["task_after"] is task
        assert seen["executor"] == ctx.executor
        assert seen["executor"].context is ctx


def test_current_task_outside_task_is_none(backend: str) -> None:
    assert cp.current_task() is None
    seen: list[Any] = []
    with cp.IOContext(backend=backend) as ctx:
        # A plain posted handler runs outside any task, too.
        ctx.post(lambda: seen.append(cp.current_task()))
        cp.spawn(ctx, value_after(1))
        ctx.post(lambda: seen.append(cp.current_task()))
        ctx.run()
    assert seen == [None, None]
    assert cp.current_task() is None


def test_current_executor_outside_task_raises(backend: str) -> None:
    with pytest.raises(RuntimeError):
        cp.current_executor()
    errors: list[BaseException] = []

    def handler() -> None:
        try:
            cp.current_executor()
        except RuntimeError as e:
            errors.append(e)

    with cp.IOContext(backend=backend) as ctx:
        ctx.post(handler)
        ctx.run()
    assert len(errors) == 1


# ------------------------------------------------------------ yield_now


def test_yield_now_interleaves_two_tasks(backend: str) -> None:
    order: list[str] = []

    async def worker(name: str) -> None:
        for i in range(4):
            order.append(f"{name}{i}")
            await cp.yield_now()

    with cp.IOContext(backend=backend) as ctx:
        cp.spawn(ctx, worker("a"))
        cp.spawn(ctx, worker("b"))
        ctx.run()
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]


def test_yield_now_runs_behind_posted_handlers(backend: str) -> None:
    order: list[str] = []

    async def body() -> None:
        ctx = cp.current_executor().context
        ctx.post(order.append, "posted-1")
        ctx.post(order.append, "posted-2")
        await cp.yield_now()
        order.append("resumed")

    with cp.IOContext(backend=backend) as ctx:
        cp.spawn(ctx, body())
        ctx.run()
    assert order == ["posted-1", "posted-2", "resumed"]


def test_yield_now_returns_none(backend: str) -> None:
    async def body() -> Any:
        return await cp.yield_now()

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() is None


# ------------------------------------------------------------ cp.run()


def test_run_returns_result_with_four_threads(backend: str) -> None:
    async def main() -> int:
        children = [cp.spawn(cp.current_executor(), value_after(i, 0.001)) for i in range(20)]
        total = 0
        for child in children:
            total += await child
        return total

    assert cp.run(main(), threads=4, backend=backend) == sum(range(20))


def test_run_raises_the_error_with_four_threads(backend: str) -> None:
    async def main() -> None:
        await cp.sleep(0.002)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        cp.run(main(), threads=4, backend=backend)


def test_run_single_thread_default(backend: str) -> None:
    assert cp.run(value_after("done", 0.001), backend=backend) == "done"


def test_run_cancels_leftover_tasks(backend: str) -> None:
    cleaned: list[str] = []
    leftovers: list[cp.Task[Any]] = []

    async def forever() -> None:
        try:
            await cp.sleep(60)
        finally:
            cleaned.append("finally")

    async def main() -> str:
        leftovers.append(cp.spawn(cp.current_executor(), forever()))
        await cp.sleep(0.01)
        return "main done"

    t0 = time.monotonic()
    assert cp.run(main(), threads=2, backend=backend) == "main done"
    assert time.monotonic() - t0 < 20
    assert cleaned == ["finally"]
    assert leftovers[0].cancelled()


def test_run_rejects_bad_arguments(backend: str) -> None:
    with pytest.raises(TypeError):
        cp.run(lambda: 1, backend=backend)  # type: ignore[arg-type]
    coro = value_after(1)
    with pytest.raises((TypeError, ValueError)):
        cp.run(coro, threads=0, backend=backend)
    coro.close()


# ------------------------------------------------------------ spawn misuse


def test_spawn_non_coroutine_raises_type_error(backend: str) -> None:
    def gen() -> Any:
        yield 1

    with cp.IOContext(backend=backend) as ctx:
        with pytest.raises(TypeError):
            cp.spawn(ctx, lambda: None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            cp.spawn(ctx, value_after)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            cp.spawn(ctx, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            cp.spawn(ctx, gen())
        # Nothing was queued: run() has no work.
        assert ctx.run() == 0


def test_spawn_on_non_context_raises_type_error(backend: str) -> None:
    coro = value_after(1)
    with pytest.raises(TypeError):
        cp.spawn("not a context", coro)  # type: ignore[arg-type]
    coro.close()


def test_spawn_on_closed_context_raises_runtime_error(backend: str) -> None:
    ctx = cp.IOContext(backend=backend)
    ctx.close()
    coro = value_after(1)
    with pytest.raises(RuntimeError):
        cp.spawn(ctx, coro)
    coro.close()
    assert ctx.run() == 0


def test_spawn_on_closed_context_closes_the_coroutine(backend: str) -> None:
    """spawn() closes the coroutine when it cannot queue it (as it does when
    post fails), so no "coroutine was never awaited" warning is left behind."""
    ctx = cp.IOContext(backend=backend)
    ctx.close()
    coro = value_after(1)
    with pytest.raises(RuntimeError):
        cp.spawn(ctx, coro)
    state = inspect.getcoroutinestate(coro)
    coro.close()
    assert state == inspect.CORO_CLOSED, "spawn() on a closed context left the coroutine unclosed"


# ------------------------------------------------------------ close()


def test_close_runs_finally_blocks_and_tasks_report_cancelled(backend: str) -> None:
    events: list[str] = []

    async def sleeper(i: int) -> None:
        try:
            await cp.sleep(60)
        finally:
            events.append(f"finally-{i}")

    async def joiner(target: cp.Task[Any]) -> None:
        try:
            await target
        finally:
            events.append("finally-joiner")

    ctx = cp.IOContext(backend=backend)
    sleepers = [cp.spawn(ctx, sleeper(i)) for i in range(3)]
    join = cp.spawn(ctx, joiner(sleepers[0]))
    ctx.run_for(0.05)  # every task is now suspended
    assert not any(t.done() for t in [*sleepers, join])
    assert events == []
    ctx.close()
    assert sorted(events) == ["finally-0", "finally-1", "finally-2", "finally-joiner"]
    for task in [*sleepers, join]:
        assert task.done()
        assert task.cancelled()
        with pytest.raises(cp.Cancelled):
            task.result()
        assert task.cancel() is False
    ctx.close()  # idempotent
    assert ctx.run() == 0


def test_close_cancels_never_started_tasks(backend: str) -> None:
    ctx = cp.IOContext(backend=backend)
    task = cp.spawn(ctx, value_after(1))
    ctx.close()
    assert task.done()
    assert task.cancelled()


def test_close_calls_done_callbacks_of_abandoned_tasks(backend: str) -> None:
    """A task that became done (cancelled) by close() must still notify its
    done callbacks; otherwise anything waiting on it (a thread, another
    context) waits forever."""
    calls: list[cp.Task[Any]] = []
    ctx = cp.IOContext(backend=backend)
    task = cp.spawn(ctx, value_after(1, 60.0))
    task.add_done_callback(calls.append)
    ctx.run_for(0.02)
    ctx.close()
    assert task.cancelled()
    assert calls == [task]


def test_post_and_spawn_after_close_raise(backend: str) -> None:
    ctx = cp.IOContext(backend=backend)
    ctx.close()
    with pytest.raises(RuntimeError):
        ctx.post(lambda: None)
    coro = value_after(1)
    with pytest.raises(RuntimeError):
        cp.spawn(ctx.executor, coro)
    coro.close()
    assert ctx.run() == 0


# ------------------------------------------------------- driver invariants


def test_task_never_resumed_by_two_threads_at_once(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under the GIL the scheduler keeps one thread busy and the others
    # asleep; schedule as a free-threaded build does so they really share.
    monkeypatch.setenv("COROSIO_ASSUME_GIL", "0")
    n_tasks = 200
    n_yields = 200
    running = [False] * n_tasks
    idents: list[set[int]] = [set() for _ in range(n_tasks)]
    violations: list[str] = []

    async def body(i: int) -> int:
        ids = idents[i]
        for k in range(n_yields):
            if running[i]:
                violations.append(f"task {i} step {k}")
            running[i] = True
            ids.add(threading.get_ident())
            # A little work while "inside" so overlaps would be visible.
            x = 0
            for j in range(5):
                x += j
            running[i] = False
            await cp.yield_now()
            if running[i]:
                violations.append(f"task {i} after yield {k}")
        return i

    with cp.IOContext(backend=backend) as ctx:
        with served(ctx, 4):
            tasks = [cp.spawn(ctx, body(i)) for i in range(n_tasks)]
        assert violations == []
        assert [t.result() for t in tasks] == list(range(n_tasks))
    # Sanity: the threads really shared the work.
    assert len(set().union(*idents)) >= 2


def test_deep_chain_of_immediate_sleeps_does_not_overflow(backend: str) -> None:
    async def body() -> int:
        n = 0
        for _ in range(100_000):
            await cp.sleep(0)
            n += 1
        return n

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == 100_000


def test_deep_chain_of_done_task_awaits_does_not_overflow(backend: str) -> None:
    async def body(done_task: cp.Task[int]) -> int:
        total = 0
        for _ in range(100_000):
            total += await done_task
        return total

    async def starter() -> int:
        done_task = cp.spawn(cp.current_executor(), value_after(1))
        await cp.sleep(0.001)
        assert done_task.done()
        return await body(done_task)

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, starter())
        ctx.run()
        assert task.result() == 100_000


def test_deep_chain_of_immediate_coroutine_awaits(backend: str) -> None:
    async def leaf(i: int) -> int:
        return i

    async def body() -> int:
        total = 0
        for _ in range(100_000):
            total += await leaf(1)
        return total

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == 100_000


def test_long_chain_of_tasks_awaiting_each_other(backend: str) -> None:
    """Task k awaits task k+1; finishing the last one must unwind the chain
    through the queue, not through nested callbacks (no recursion)."""
    n = 20_000

    async def last() -> int:
        await cp.sleep(0.01)
        return 0

    async def link(nxt: cp.Task[int]) -> int:
        return (await nxt) + 1

    with cp.IOContext(backend=backend) as ctx:
        task: cp.Task[int] = cp.spawn(ctx, last())
        for _ in range(n):
            task = cp.spawn(ctx, link(task))
        ctx.run()
        assert task.result() == n


def test_ten_thousand_sleepers_wake_in_deadline_order(backend: str) -> None:
    n = 10_000
    rng = random.Random(1234)
    offsets = [rng.random() * 0.5 for _ in range(n)]
    wakes: list[tuple[int, float]] = []  # (task index, wake time), in wake order
    late: list[int] = []
    counts = [0] * n

    async def sleeper(i: int, deadline: float) -> None:
        timer = cp.Timer(cp.current_executor().context)
        timer.expires_at(deadline)
        if time.monotonic() >= deadline:
            late.append(i)  # registered too late to be ordered by the heap
        await timer.wait()
        wakes.append((i, time.monotonic()))
        counts[i] += 1

    with cp.IOContext(backend=backend) as ctx:
        # Spawning only queues; all waits register long before the base.
        base = time.monotonic() + 2.0
        deadlines = [base + off for off in offsets]
        tasks = [cp.spawn(ctx, sleeper(i, deadlines[i])) for i in range(n)]
        ctx.run()
        assert all(t.done() for t in tasks)
        for t in tasks:
            t.result()
    assert counts == [1] * n, "a sleeper woke more or fewer than once"
    # On a loaded 2-core machine a few first steps may come after their
    # deadline; they are left out of the order check, so only many matter.
    assert len(late) < n // 10, f"{len(late)} sleepers registered after their deadline"
    late_set = set(late)
    for i, woke in wakes:
        assert woke >= deadlines[i], f"sleeper {i} woke {deadlines[i] - woke:.6f} s early"
    ordered = [deadlines[i] for i, _ in wakes if i not in late_set]
    inversions = [(a, b) for a, b in itertools.pairwise(ordered) if b < a]
    assert inversions == [], f"{len(inversions)} wake-ups out of deadline order"


def test_equal_deadlines_all_wake_once(backend: str) -> None:
    n = 500
    woke = [0] * n

    async def sleeper(i: int, timer: cp.Timer) -> None:
        await timer.wait()
        woke[i] += 1

    with cp.IOContext(backend=backend) as ctx:
        deadline = time.monotonic() + 0.1
        timers = []
        for _ in range(n):
            timer = cp.Timer(ctx)
            timer.expires_at(deadline)
            timers.append(timer)
        for i in range(n):
            cp.spawn(ctx, sleeper(i, timers[i]))
        run_threads(ctx, 2)
    assert woke == [1] * n


def test_awaiting_a_foreign_awaitable_raises_type_error(backend: str) -> None:
    class Foreign:
        def __await__(self) -> Any:
            yield "not an operation"

    async def body() -> str:
        try:
            await Foreign()
        except TypeError:
            return "type error"
        return "accepted"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "type error"
