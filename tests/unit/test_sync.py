"""Lock, Event, Semaphore, Condition: FIFO, thread-safe, cancellation-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import corosio_py as cp
from corosio_py.testing import wait_all_tasks_blocked
from tests.unit.limits import PROMPT
from tests.unit.sync_helpers import outcome, settle
from tests.unit.task_helpers import served, wait_done
from tests.unit.thread_helpers import start

THREADS = 4


# ---------------------------------------------------------------- Lock


def test_lock_basics(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()

    async def body() -> list[bool]:
        seen = [lock.locked()]
        async with lock:
            seen.append(lock.locked())
        seen.append(lock.locked())
        assert await lock.acquire() is True
        seen.append(lock.locked())
        lock.release()
        return seen

    task = cp.spawn(ctx, body())
    ctx.run()
    assert task.result() == [False, True, False, True]
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_is_fifo(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()
    order: list[int] = []

    async def holder() -> None:
        async with lock:
            await cp.sleep(0.01)  # every contender queues meanwhile

    async def contender(i: int) -> None:
        async with lock:
            order.append(i)
            await cp.yield_now()

    cp.spawn(ctx, holder())
    settle(ctx)
    for i in range(8):
        cp.spawn(ctx, contender(i))
        settle(ctx)  # parked in this order
    ctx.run()
    assert order == list(range(8))
    assert not lock.locked()


def test_lock_cancelled_waiter_never_holds_it(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()

    async def waiter() -> None:
        async with lock:
            pytest.fail("a cancelled acquire took the lock")

    async def main() -> str:
        await lock.acquire()
        task = cp.spawn(ctx, waiter())
        await cp.yield_now()
        await cp.yield_now()
        task.cancel()
        await cp.yield_now()
        lock.release()
        await cp.yield_now()
        return "free" if not lock.locked() else "held"

    main_task = cp.spawn(ctx, main())
    ctx.run()
    assert main_task.result() == "free"


def test_lock_granted_then_cancelled_keeps_it(make_ctx: Callable[..., cp.IOContext]) -> None:
    """The grant wins: acquire returns holding the lock, the cancel lands next."""
    ctx = make_ctx()
    lock = cp.Lock()
    events: list[str] = []

    async def waiter() -> None:
        async with lock:
            events.append(f"acquired locked={lock.locked()}")
            await cp.sleep(1)  # the pending cancel lands here
        events.append("unreachable")

    async def main() -> None:
        await lock.acquire()
        task = cp.spawn(ctx, waiter())
        await cp.yield_now()
        await cp.yield_now()
        lock.release()  # handed to the waiter...
        task.cancel()  # ...before it resumes
        await cp.yield_now()
        await cp.yield_now()
        assert task.cancelled()
        events.append(f"after locked={lock.locked()}")

    main_task = cp.spawn(ctx, main())
    ctx.run()
    main_task.result()
    assert events == ["acquired locked=True", "after locked=False"]


def test_lock_stop_token(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()
    source = cp.StopSource()

    async def main() -> list[str]:
        seen = []
        await lock.acquire()
        stopped = cp.StopSource()
        stopped.request_stop()
        try:
            await lock.acquire(stop_token=stopped.token)
        except cp.Cancelled:
            seen.append("refused")
        lock.release()
        async with lock:
            task = cp.spawn(ctx, _acquire_with(lock, source.token))
            await cp.yield_now()
            source.request_stop()
            await cp.yield_now()
            seen.append(str(outcome(task)))
        seen.append(f"locked={lock.locked()}")
        with pytest.raises(TypeError):
            await lock.acquire(stop_token="nope")  # type: ignore[arg-type]
        return seen

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == ["refused", "cancelled", "locked=False"]


async def _acquire_with(lock: cp.Lock, token: cp.StopToken) -> bool:
    return await lock.acquire(stop_token=token)


def test_lock_timeout_while_waiting(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()

    async def main() -> str:
        await lock.acquire()
        child = cp.spawn(ctx, _acquire_within(lock, 0.01))
        result = await child
        lock.release()
        return f"{result} locked={lock.locked()}"

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == "timeout locked=False"


async def _acquire_within(lock: cp.Lock, seconds: float) -> str:
    try:
        with cp.timeout(seconds):
            await lock.acquire()
    except TimeoutError:
        return "timeout"
    return "acquired"


def test_lock_counter_on_four_threads(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()
    counter = [0]
    steps = 2000

    async def bump() -> None:
        for i in range(steps):
            async with lock:
                value = counter[0]
                if i % 32 == 0:
                    await cp.yield_now()  # hop threads while holding it
                counter[0] = value + 1

    tasks = [cp.spawn(ctx, bump()) for _ in range(THREADS)]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    for task in tasks:
        task.result()
    assert counter[0] == THREADS * steps


def test_lock_shared_between_contexts(make_ctx: Callable[..., cp.IOContext]) -> None:
    contexts = [make_ctx(), make_ctx()]
    lock = cp.Lock()
    inside = [0]
    most = [0]
    guard = threading.Lock()

    async def use() -> None:
        for _ in range(200):
            async with lock:
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                await cp.yield_now()
                with guard:
                    inside[0] -= 1

    tasks = [cp.spawn(ctx, use()) for ctx in contexts for _ in range(2)]
    runners = [start(ctx.run) for ctx in contexts for _ in range(2)]
    for runner in runners:
        runner.finish()
    for task in tasks:
        task.result()
    assert most[0] == 1


def test_lock_released_from_plain_thread_wakes_task(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    lock = cp.Lock()

    async def waiter() -> bool:
        async with lock:
            return True

    async def take() -> None:
        await lock.acquire()

    cp.spawn(ctx, take())
    settle(ctx)
    task = cp.spawn(ctx, waiter())
    with served(ctx, 2):
        wait_all_tasks_blocked(ctx)
        assert not task.done()
        lock.release()
        wait_done(task)
    assert task.result() is True and not lock.locked()


@pytest.mark.leaves_work_for_close("close() cancels a parked lock waiter")
def test_lock_waiter_of_closed_context_is_skipped(make_ctx: Callable[..., cp.IOContext]) -> None:
    live, doomed = make_ctx(), make_ctx()
    lock = cp.Lock()

    async def take() -> None:
        await lock.acquire()

    async def waiter() -> None:
        async with lock:
            pass

    cp.spawn(live, take())
    settle(live)
    lost = cp.spawn(doomed, waiter())
    settle(doomed)
    doomed.close()
    assert lost.cancelled()
    lock.release()  # nobody alive waits: the lock is free
    assert not lock.locked()
    late = cp.spawn(live, waiter())
    live.run()
    assert late.done() and late.exception() is None


# ---------------------------------------------------------------- Event


def test_event_basics(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    event = cp.Event()
    assert not event.is_set()

    async def main() -> list[object]:
        waiters = [cp.spawn(ctx, event.wait()) for _ in range(5)]
        await cp.yield_now()
        await cp.yield_now()
        assert not any(w.done() for w in waiters)
        event.set()
        results: list[object] = [await w for w in waiters]
        results.append(await event.wait())  # set: at once
        event.clear()
        results.append(event.is_set())
        return results

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == [True] * 6 + [False]


def test_event_set_from_plain_thread_outside_run(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    event = cp.Event()
    task = cp.spawn(ctx, event.wait())
    setter = threading.Timer(0.05, event.set)
    setter.start()
    ctx.run()  # returns once the woken task finishes
    setter.join()
    assert task.result() is True


def test_event_set_before_run_on_many_threads(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    event = cp.Event()
    tasks = [cp.spawn(ctx, event.wait()) for _ in range(50)]
    with served(ctx, THREADS):
        wait_all_tasks_blocked(ctx)
        event.set()
        for task in tasks:
            wait_done(task)
    assert all(t.result() is True for t in tasks)


def test_event_wait_cancel_and_stop_token(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    event = cp.Event()
    source = cp.StopSource()

    async def main() -> list[object]:
        a = cp.spawn(ctx, event.wait())
        b = cp.spawn(ctx, event.wait(stop_token=source.token))
        c = cp.spawn(ctx, event.wait())
        await cp.yield_now()
        a.cancel()
        source.request_stop()
        await cp.yield_now()
        await cp.yield_now()
        event.set()
        await c
        return [outcome(a), outcome(b), outcome(c)]

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == ["cancelled", "cancelled", True]


# ---------------------------------------------------------------- Semaphore


def test_semaphore_arguments() -> None:
    with pytest.raises(ValueError):
        cp.Semaphore(-1)
    with pytest.raises(TypeError):
        cp.Semaphore(1.5)  # type: ignore[arg-type]
    assert cp.Semaphore().value == 1
    assert cp.Semaphore(0).locked()


def test_semaphore_limits_concurrency_on_four_threads(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    sem = cp.Semaphore(3)
    guard = threading.Lock()
    inside = [0]
    most = [0]

    async def use() -> None:
        for _ in range(100):
            async with sem:
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                await cp.yield_now()
                with guard:
                    inside[0] -= 1

    tasks = [cp.spawn(ctx, use()) for _ in range(8)]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    for task in tasks:
        task.result()
    assert most[0] == 3 and sem.value == 3


def test_semaphore_fifo_and_cancel_takes_no_permit(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    sem = cp.Semaphore(0)
    order: list[int] = []

    async def acquirer(i: int) -> None:
        await sem.acquire()
        order.append(i)

    tasks = []
    for i in range(5):
        tasks.append(cp.spawn(ctx, acquirer(i)))
        settle(ctx)
    tasks[1].cancel()
    tasks[3].cancel()
    settle(ctx)
    for _ in range(4):
        sem.release()
    settle(ctx)
    assert order == [0, 2, 4]
    assert sem.value == 1  # the fourth permit: nobody left to take it
    assert [outcome(t) for t in tasks] == [None, "cancelled", None, "cancelled", None]


# ---------------------------------------------------------------- Condition


def test_condition_requires_the_lock(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    cond = cp.Condition()
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(TypeError):
        cp.Condition(threading.Lock())  # type: ignore[arg-type]

    async def main() -> str:
        try:
            await cond.wait()
        except RuntimeError:
            return "refused"
        return "waited"

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == "refused"


def test_condition_notify_one_and_all(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    cond = cp.Condition()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        async with cond:
            await cond.wait()
            assert cond.locked()
            woken.append(i)

    async def main() -> list[list[int]]:
        for i in range(4):
            cp.spawn(ctx, waiter(i))
        for _ in range(4):
            await cp.yield_now()
        snapshots = []
        async with cond:
            cond.notify()
        await cp.sleep(0.01)
        snapshots.append(list(woken))
        async with cond:
            cond.notify(2)
        await cp.sleep(0.01)
        snapshots.append(list(woken))
        async with cond:
            cond.notify_all()
        await cp.sleep(0.01)
        snapshots.append(list(woken))
        return snapshots

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == [[0], [0, 1, 2], [0, 1, 2, 3]]


def test_condition_wait_for_producer_consumer(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    cond = cp.Condition(cp.Lock())
    items: list[int] = []
    taken: list[int] = []
    n = 300

    async def consumer() -> None:
        while True:
            async with cond:
                await cond.wait_for(lambda: bool(items))
                item = items.pop(0)
            if item < 0:
                return
            taken.append(item)

    async def producer() -> None:
        for i in range(n):
            async with cond:
                items.append(i)
                cond.notify()
            if i % 10 == 0:
                await cp.yield_now()
        async with cond:
            items.extend([-1] * THREADS)
            cond.notify_all()

    tasks = [cp.spawn(ctx, consumer()) for _ in range(THREADS)] + [cp.spawn(ctx, producer())]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    for task in tasks:
        task.result()
    assert sorted(taken) == list(range(n))


def test_condition_cancelled_wait_raises_holding_the_lock(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    cond = cp.Condition()
    seen: list[str] = []

    async def waiter() -> None:
        async with cond:
            try:
                await cond.wait()
            except cp.Cancelled:
                seen.append(f"cancelled locked={cond.locked()}")
                raise

    async def main() -> None:
        task = cp.spawn(ctx, waiter())
        await cp.yield_now()
        await cp.yield_now()
        async with cond:
            task.cancel()  # it must wait for the lock before raising
            await cp.yield_now()
            await cp.yield_now()
            seen.append(f"still waiting: {not task.done()}")
        await task

    main_task = cp.spawn(ctx, main())
    ctx.run()
    assert main_task.cancelled()  # it awaited the cancelled task
    assert seen == ["still waiting: True", "cancelled locked=True"]
    assert not cond.locked()


def test_condition_notified_then_cancelled_keeps_the_notification(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    cond = cp.Condition()
    seen: list[str] = []

    async def waiter() -> None:
        async with cond:
            result = await cond.wait()
            seen.append(f"woken {result} locked={cond.locked()}")
        await cp.sleep(1)  # the cancel lands here

    async def main() -> Any:
        task = cp.spawn(ctx, waiter())
        await cp.yield_now()
        await cp.yield_now()
        async with cond:
            cond.notify()
            task.cancel()
        await cp.yield_now()
        await cp.yield_now()
        await cp.yield_now()
        return outcome(task)

    main_task = cp.spawn(ctx, main())
    ctx.run()
    assert main_task.result() == "cancelled"
    assert seen == ["woken True locked=True"]
    assert not cond.locked()


def test_primitives_wake_tasks_across_threads_promptly(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    """Waits parked on a 4-thread context are woken by plain threads."""
    ctx = make_ctx()
    event, sem, lock = cp.Event(), cp.Semaphore(0), cp.Lock()

    async def take_lock() -> None:
        await lock.acquire()

    cp.spawn(ctx, take_lock())
    settle(ctx)

    async def use_lock() -> bool:
        async with lock:
            return True

    tasks = [cp.spawn(ctx, event.wait()), cp.spawn(ctx, sem.acquire()), cp.spawn(ctx, use_lock())]
    with served(ctx, THREADS):
        wait_all_tasks_blocked(ctx)
        assert not any(t.done() for t in tasks)
        threads = [start(event.set), start(sem.release), start(lock.release)]
        for thread in threads:
            thread.finish()
        for task in tasks:
            wait_done(task, PROMPT)
    assert [t.result() for t in tasks] == [True, True, True]


def test_plain_thread_wakes_a_task_of_a_single_thread_context(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    """concurrency_hint=1: the context is one thread's, yet a plain thread's
    Event.set() / Queue.put_nowait() / Semaphore.release() still wakes its
    task (the reactor is interrupted, not left blocked)."""
    ctx = make_ctx(1)
    event, q, sem = cp.Event(), cp.Queue[str](), cp.Semaphore(0)

    async def main() -> list[object]:
        return [await event.wait(), await q.get(), await sem.acquire()]

    task = cp.spawn(ctx, main())

    def feed() -> None:
        for action in (event.set, lambda: q.put_nowait("item"), sem.release):
            time.sleep(0.02)
            action()

    feeder = start(feed)
    ctx.run()
    feeder.finish()
    assert task.result() == [True, "item", True]
