"""Unit tests for Timer and sleep: the upstream timer catalogue.

the upstream timer catalogue (Boost.Corosio ``test/unit/timer.cpp``)
translated to this package's ``Timer`` and ``sleep``.  Every test runs once per
reactor backend.  Lower timing bounds are exact (a timer never fires before
its deadline); upper bounds are generous because the machine is shared.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

import corosio_py as cp
from corosio_py.testing import wait_all_tasks_blocked
from tests.unit.limits import PROMPT
from tests.unit.task_helpers import served, wait_done

pytestmark = pytest.mark.timeout(60)

YEAR = 365 * 24 * 3600.0


async def outcome(aw: Any) -> str:
    """Await ``aw``; "ok" on success, "cancelled" on ``Cancelled``."""
    try:
        result = await aw
    except cp.Cancelled:
        return "cancelled"
    assert result is None
    return "ok"


async def timed_outcome(aw: Any) -> tuple[str, float]:
    t0 = time.monotonic()
    result = await outcome(aw)
    return result, time.monotonic() - t0




# ------------------------------------------------------------ construction / expiry


def test_construction(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        assert timer.context is ctx
        assert ctx.run() == 0  # an idle timer is not outstanding work


def test_construction_requires_io_context(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        with pytest.raises(TypeError):
            cp.Timer(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            cp.Timer(None)  # type: ignore[arg-type]
        assert ctx.run() == 0


def test_new_timer_expiry_is_creation_time(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        before = time.monotonic()
        timer = cp.Timer(ctx)
        after = time.monotonic()
        assert before <= timer.expiry() <= after


def test_expires_after_sets_expiry(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        before = time.monotonic()
        assert timer.expires_after(0.1) == 0
        after = time.monotonic()
        assert before + 0.1 <= timer.expiry() <= after + 0.1


def test_expires_after_different_durations(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        for d in (1.0, 0.5):
            now = time.monotonic()
            timer.expires_after(d)
            assert timer.expiry() >= now + d
        timer.expires_after(0)
        assert timer.expiry() <= time.monotonic() + 0.01
        timer.expires_after(-1)
        assert timer.expiry() <= time.monotonic()


def test_expires_at_sets_expiry(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        future = time.monotonic() + 10.0
        assert timer.expires_at(future) == 0
        assert timer.expiry() == future
        past = time.monotonic() - 1.0
        timer.expires_at(past)
        assert timer.expiry() == past
        # Replace 10 s by 5 s.
        t10 = time.monotonic() + 10.0
        t5 = time.monotonic() + 5.0
        timer.expires_at(t10)
        timer.expires_at(t5)
        assert timer.expiry() == t5


def test_expires_at_accepts_int(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_at(0)
        assert timer.expiry() == 0


# ------------------------------------------------------------ wait


def test_wait_basic(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.01)
        task = cp.spawn(ctx, outcome(timer.wait()))
        ctx.run()
        assert task.result() == "ok"


def test_wait_timing_accuracy(backend: str) -> None:
    async def body(timer: cp.Timer) -> float:
        t0 = time.monotonic()
        timer.expires_after(0.05)
        await timer.wait()
        return time.monotonic() - t0

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body(cp.Timer(ctx)))
        ctx.run()
        elapsed = task.result()
        assert elapsed >= 0.05
        assert elapsed < 2.0


def test_wait_never_completes_before_expiry(backend: str) -> None:
    async def body(timer: cp.Timer, d: float) -> None:
        timer.expires_after(d)
        await timer.wait()
        assert time.monotonic() >= timer.expiry()

    with cp.IOContext(backend=backend) as ctx:
        for d in (0.001, 0.003, 0.007, 0.013, 0.021):
            cp.spawn(ctx, body(cp.Timer(ctx), d))
        ctx.run()


def test_wait_expired_timer(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_at(time.monotonic() - 1.0)
        task = cp.spawn(ctx, timed_outcome(timer.wait()))
        ctx.run()
        result, elapsed = task.result()
        assert result == "ok"
        assert elapsed < PROMPT


def test_wait_on_new_timer_completes(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)  # expiry == creation time: already expired
        task = cp.spawn(ctx, timed_outcome(timer.wait()))
        ctx.run()
        assert task.result()[0] == "ok"


@pytest.mark.parametrize("duration", [0, 0.0, -0.1, -1, -YEAR, -1e300])
def test_wait_zero_and_negative_durations(backend: str, duration: float) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(duration)
        task = cp.spawn(ctx, timed_outcome(timer.wait()))
        ctx.run()
        result, elapsed = task.result()
        assert result == "ok"
        assert elapsed < PROMPT


def test_zero_wait_is_a_yield_point(backend: str) -> None:
    order: list[str] = []

    async def waiter(timer: cp.Timer) -> None:
        cp.current_executor().post(order.append, "posted")
        await timer.wait()
        order.append("resumed")

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0)
        cp.spawn(ctx, waiter(timer))
        ctx.run()
    assert order == ["posted", "resumed"]


def test_multiple_timers_different_expiry_complete_in_order(backend: str) -> None:
    order: list[int] = []

    async def waiter(timer: cp.Timer, tag: int) -> None:
        await timer.wait()
        order.append(tag)

    with cp.IOContext(backend=backend) as ctx:
        for ms in (30, 10, 20):
            timer = cp.Timer(ctx)
            timer.expires_after(ms / 1000)
            cp.spawn(ctx, waiter(timer, ms))
        ctx.run()
    assert order == [10, 20, 30]


def test_multiple_timers_same_expiry_both_complete(backend: str) -> None:
    done: list[int] = []

    async def waiter(timer: cp.Timer, tag: int) -> None:
        await timer.wait()
        done.append(tag)

    with cp.IOContext(backend=backend) as ctx:
        deadline = time.monotonic() + 0.01
        for tag in (1, 2):
            timer = cp.Timer(ctx)
            timer.expires_at(deadline)
            cp.spawn(ctx, waiter(timer, tag))
        ctx.run()
    assert sorted(done) == [1, 2]


def test_sequential_waits(backend: str) -> None:
    async def body(timer: cp.Timer) -> int:
        count = 0
        for _ in range(3):
            timer.expires_after(0.005)
            await timer.wait()
            count += 1
        return count

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body(cp.Timer(ctx)))
        ctx.run()
        assert task.result() == 3


def test_multiple_waiters_all_complete(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.01)
        tasks = [cp.spawn(ctx, outcome(timer.wait())) for _ in range(3)]
        ctx.run()
        assert [t.result() for t in tasks] == ["ok"] * 3


def test_timer_of_another_context_raises_value_error(backend: str) -> None:
    async def body(timer: cp.Timer) -> str:
        try:
            await timer.wait()
        except ValueError:
            return "value error"
        return "waited"

    with cp.IOContext(backend=backend) as ctx, cp.IOContext(backend=backend) as other:
        timer = cp.Timer(other)
        timer.expires_after(0.01)
        task = cp.spawn(ctx, body(timer))
        ctx.run()
        assert task.result() == "value error"


def test_free_list_reuse_across_contexts(backend: str) -> None:
    async def body(timers: list[cp.Timer]) -> int:
        n = 0
        for ms, timer in zip((1, 2, 3), timers, strict=True):
            timer.expires_after(ms / 1000)
            await timer.wait()
            n += 1
        return n

    for _ in range(3):
        with cp.IOContext(backend=backend) as ctx:
            task = cp.spawn(ctx, body([cp.Timer(ctx) for _ in range(3)]))
            ctx.run()
            assert task.result() == 3


# ------------------------------------------------------------ cancel


def test_cancel_waiting_task(backend: str) -> None:
    counts: list[int] = []

    async def canceller(timer: cp.Timer) -> None:
        await cp.sleep(0.01)
        counts.append(timer.cancel())

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        waiter = cp.spawn(ctx, timed_outcome(timer.wait()))
        cp.spawn(ctx, canceller(timer))
        t0 = time.monotonic()
        ctx.run()  # returns: nothing left to wait for
        assert time.monotonic() - t0 < PROMPT
        result, elapsed = waiter.result()
        assert result == "cancelled"
        assert elapsed < PROMPT
        assert counts == [1]


def test_cancel_uncaught_ends_task_cancelled(backend: str) -> None:
    async def body(timer: cp.Timer) -> None:
        await timer.wait()

    async def canceller(timer: cp.Timer) -> None:
        await cp.sleep(0.01)
        timer.cancel()

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        task = cp.spawn(ctx, body(timer))
        cp.spawn(ctx, canceller(timer))
        ctx.run()
        assert task.cancelled()


def test_cancel_no_waiters_returns_zero(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        assert timer.cancel() == 0
        timer.expires_after(60)
        assert timer.cancel() == 0
        assert timer.cancel() == 0
        assert timer.cancel() == 0
        assert timer.cancel_one() == 0
        assert ctx.run() == 0


def test_cancel_returns_count_of_registered_waiters(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        tasks = [cp.spawn(ctx, outcome(timer.wait())) for _ in range(3)]
        ctx.poll()  # registers the three waits
        assert not any(t.done() for t in tasks)
        assert timer.cancel() == 3
        assert timer.cancel() == 0  # repeated cancels are harmless
        ctx.restart()
        ctx.run()
        assert [t.result() for t in tasks] == ["cancelled"] * 3


def test_cancel_one_waiter_returns_one(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        task = cp.spawn(ctx, outcome(timer.wait()))
        ctx.poll()
        assert timer.cancel() == 1
        ctx.restart()
        ctx.run()
        assert task.result() == "cancelled"


def test_multiple_waiters_cancel_all(backend: str) -> None:
    counts: list[int] = []

    async def canceller(timer: cp.Timer) -> None:
        await cp.sleep(0.01)
        counts.append(timer.cancel())

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        tasks = [cp.spawn(ctx, outcome(timer.wait())) for _ in range(3)]
        cp.spawn(ctx, canceller(timer))
        ctx.run()
        assert [t.result() for t in tasks] == ["cancelled"] * 3
        assert counts == [3]


def test_cancelled_timer_can_be_waited_again(backend: str) -> None:
    async def body(timer: cp.Timer) -> list[str]:
        results = []
        timer.expires_after(60)
        cp.current_executor().post(timer.cancel)
        results.append(await outcome(timer.wait()))
        timer.expires_after(0.005)
        results.append(await outcome(timer.wait()))
        return results

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body(cp.Timer(ctx)))
        ctx.run()
        assert task.result() == ["cancelled", "ok"]


def test_cancel_one_first_cancelled_second_succeeds(backend: str) -> None:
    counts: list[int] = []

    async def canceller(timer: cp.Timer) -> None:
        await cp.sleep(0.01)
        counts.append(timer.cancel_one())

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.5)
        first = cp.spawn(ctx, timed_outcome(timer.wait()))
        second = cp.spawn(ctx, timed_outcome(timer.wait()))
        cp.spawn(ctx, canceller(timer))
        ctx.run()
        assert counts == [1]
        r1, e1 = first.result()
        r2, _ = second.result()
        assert r1 == "cancelled"
        assert e1 < 0.5
        assert r2 == "ok"
        assert time.monotonic() >= timer.expiry()


def test_cancel_one_fifo_then_empty(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        tasks = [cp.spawn(ctx, outcome(timer.wait())) for _ in range(3)]
        ctx.poll()
        assert timer.cancel_one() == 1
        ctx.restart()
        ctx.poll()
        assert tasks[0].done()
        assert not tasks[1].done()
        assert not tasks[2].done()
        assert timer.cancel_one() == 1
        assert timer.cancel_one() == 1
        assert timer.cancel_one() == 0
        ctx.restart()
        ctx.run()
        assert [t.result() for t in tasks] == ["cancelled"] * 3


def test_cancel_one_no_waiters_returns_zero(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        assert timer.cancel_one() == 0


def test_cancel_from_foreign_thread_wakes_blocked_reactor(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        with served(ctx, 1):
            task = cp.spawn(ctx, timed_outcome(timer.wait()))
            wait_all_tasks_blocked(ctx)  # the wait is registered
            assert timer.cancel() == 1
            wait_done(task)
        result, elapsed = task.result()
        assert result == "cancelled"
        assert elapsed < PROMPT


def test_earlier_timer_from_another_thread_interrupts_reactor(backend: str) -> None:
    """One thread blocks in the reactor on a 60 s deadline; a task on another
    thread registers a 10 ms wait: the reactor must recompute its timeout."""
    with cp.IOContext(backend=backend) as ctx:
        far = cp.Timer(ctx)
        far.expires_after(60)
        with served(ctx, 2):
            blocker = cp.spawn(ctx, outcome(far.wait()))
            wait_all_tasks_blocked(ctx)
            short = cp.spawn(ctx, timed_outcome(cp.sleep(0.01)))
            wait_done(short)
            far.cancel()
            wait_done(blocker)
        result, elapsed = short.result()
        assert result == "ok"
        assert elapsed < PROMPT


# ------------------------------------------------------------ re-arming


def test_expires_at_cancels_waiter(backend: str) -> None:
    counts: list[int] = []

    async def rearm(timer: cp.Timer) -> None:
        await cp.sleep(0.05)
        counts.append(timer.expires_after(30))

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        waiter = cp.spawn(ctx, outcome(timer.wait()))
        cp.spawn(ctx, rearm(timer))
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        assert waiter.result() == "cancelled"
        assert counts == [1]


@pytest.mark.parametrize("how", ["expires_at", "expires_after"])
def test_rearm_returns_count(backend: str, how: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        tasks = [cp.spawn(ctx, outcome(timer.wait())) for _ in range(2)]
        ctx.poll()
        if how == "expires_at":
            assert timer.expires_at(time.monotonic() + 30) == 2
        else:
            assert timer.expires_after(30) == 2
        ctx.restart()
        ctx.poll()
        assert [t.result() for t in tasks] == ["cancelled"] * 2
        assert timer.expires_after(30) == 0


def test_reheapify_on_expires_at_update(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timers = [cp.Timer(ctx) for _ in range(4)]
        for timer, d in zip(timers, (5.0, 0.02, 0.03, 0.04), strict=True):
            timer.expires_after(d)
        tasks = [cp.spawn(ctx, outcome(t.wait())) for t in timers]
        ctx.poll()
        ctx.restart()
        assert timers[0].expires_after(60) == 1
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        assert [t.result() for t in tasks] == ["cancelled", "ok", "ok", "ok"]


def test_rearm_idle_timer_then_wait_uses_new_expiry(backend: str) -> None:
    async def body(timer: cp.Timer) -> float:
        timer.expires_after(60)
        timer.expires_after(0.02)
        t0 = time.monotonic()
        await timer.wait()
        return time.monotonic() - t0

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body(cp.Timer(ctx)))
        ctx.run()
        assert task.result() < PROMPT


# ------------------------------------------------------------ stop tokens


def test_stop_token_cancels_wait(backend: str) -> None:
    async def stopper(source: cp.StopSource) -> None:
        await cp.sleep(0.01)
        assert source.request_stop() is True

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        source = cp.StopSource()
        waiter = cp.spawn(ctx, timed_outcome(timer.wait(stop_token=source.token)))
        cp.spawn(ctx, stopper(source))
        t0 = time.monotonic()
        ctx.run()  # no failsafe cancel needed
        assert time.monotonic() - t0 < PROMPT
        result, elapsed = waiter.result()
        assert result == "cancelled"
        assert elapsed < PROMPT
        assert timer.cancel() == 0  # the stopped waiter left the timer


def test_stop_token_cancels_only_its_waiter(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.5)
        source = cp.StopSource()
        first = cp.spawn(ctx, timed_outcome(timer.wait(stop_token=source.token)))
        second = cp.spawn(ctx, timed_outcome(timer.wait()))

        async def stopper() -> None:
            await cp.sleep(0.01)
            source.request_stop()

        cp.spawn(ctx, stopper())
        ctx.run()
        r1, e1 = first.result()
        r2, _ = second.result()
        assert r1 == "cancelled"
        assert e1 < 0.5
        assert r2 == "ok"
        assert time.monotonic() >= timer.expiry()


def test_stop_token_posted_stop_cancels_one(backend: str) -> None:
    """The upstream variant: the stop is requested from a posted handler."""
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.5)
        source = cp.StopSource()
        first = cp.spawn(ctx, outcome(timer.wait(stop_token=source.token)))
        second = cp.spawn(ctx, outcome(timer.wait()))
        ctx.post(source.request_stop)
        ctx.run()
        assert first.result() == "cancelled"
        assert second.result() == "ok"


def test_stop_token_already_stopped_never_registers(backend: str) -> None:
    seen: dict[str, Any] = {}

    async def body(timer: cp.Timer, token: cp.StopToken) -> None:
        sched = cp.current_executor().context._sched
        outstanding = sched.outstanding()
        try:
            await timer.wait(stop_token=token)
        except cp.Cancelled:
            seen["result"] = "cancelled"
        seen["timers"] = len(sched.timers)
        seen["cancel"] = timer.cancel()
        seen["cancel_one"] = timer.cancel_one()
        seen["outstanding_delta"] = sched.outstanding() - outstanding

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        source = cp.StopSource()
        source.request_stop()
        task = cp.spawn(ctx, body(timer, source.token))
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        task.result()
    assert seen == {
        "result": "cancelled",
        "timers": 0,
        "cancel": 0,
        "cancel_one": 0,
        "outstanding_delta": 0,
    }


def test_stop_token_after_completion_is_harmless(backend: str) -> None:
    async def body(timer: cp.Timer, source: cp.StopSource) -> list[str]:
        results = [await outcome(timer.wait(stop_token=source.token))]
        source.request_stop()  # after the wait completed: affects nothing
        timer.expires_after(0.002)
        results.append(await outcome(timer.wait()))
        return results

    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(0.002)
        task = cp.spawn(ctx, body(timer, cp.StopSource()))
        ctx.run()
        assert task.result() == ["ok", "ok"]


def test_stop_token_from_foreign_thread(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(60)
        source = cp.StopSource()
        with served(ctx, 2):
            task = cp.spawn(ctx, timed_outcome(timer.wait(stop_token=source.token)))
            wait_all_tasks_blocked(ctx)
            assert source.request_stop() is True
            wait_done(task)
        assert task.result()[0] == "cancelled"


def test_wait_rejects_non_token(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        with pytest.raises(TypeError):
            timer.wait(stop_token="token")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            timer.wait(stop_token=cp.StopSource())  # type: ignore[arg-type]


# ------------------------------------------------------------ long durations / values


def test_long_duration(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(YEAR)
        assert timer.expiry() > time.monotonic() + YEAR - 10
        waiter = cp.spawn(ctx, outcome(timer.wait()))

        async def canceller() -> None:
            await cp.sleep(0.01)
            assert timer.cancel() == 1

        cp.spawn(ctx, canceller())
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        assert waiter.result() == "cancelled"


@pytest.mark.parametrize("seconds", [1e300, math.inf])
def test_huge_durations_do_not_overflow(backend: str, seconds: float) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_after(seconds)
        assert timer.expiry() > time.monotonic() + YEAR
        waiter = cp.spawn(ctx, outcome(timer.wait()))
        sleeper = cp.spawn(ctx, outcome(cp.sleep(seconds)))

        async def canceller() -> None:
            await cp.sleep(0.02)
            timer.cancel()
            sleeper.cancel()

        cp.spawn(ctx, canceller())
        ctx.run()
        assert waiter.result() == "cancelled"
        assert sleeper.cancelled() or sleeper.result() == "cancelled"


def test_expires_at_infinity(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        timer.expires_at(math.inf)
        waiter = cp.spawn(ctx, outcome(timer.wait()))

        async def canceller() -> None:
            await cp.sleep(0.02)
            timer.cancel()

        cp.spawn(ctx, canceller())
        ctx.run()
        assert waiter.result() == "cancelled"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, ValueError),
        ("1", TypeError),
        (None, TypeError),
        (b"1", TypeError),
        ([1], TypeError),
    ],
)
def test_bad_values_raise(backend: str, value: Any, error: type[Exception]) -> None:
    with cp.IOContext(backend=backend) as ctx:
        timer = cp.Timer(ctx)
        expiry = timer.expiry()
        with pytest.raises(error):
            timer.expires_after(value)
        with pytest.raises(error):
            timer.expires_at(value)
        assert timer.expiry() == expiry  # unchanged

        async def body() -> str:
            try:
                await cp.sleep(value)
            except error:
                return "raised"
            return "slept"

        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "raised"
    with pytest.raises(error):
        cp.sleep(value)


# ------------------------------------------------------------ shutdown


def test_close_destroys_timer_waiters(backend: str) -> None:
    guard: list[str] = []

    async def body(timer: cp.Timer) -> None:
        try:
            await timer.wait()
        finally:
            guard.append("ran")

    ctx = cp.IOContext(backend=backend)
    timer = cp.Timer(ctx)
    timer.expires_after(3600)
    task = cp.spawn(ctx, body(timer))
    ctx.poll()
    assert guard == []
    ctx.close()
    assert guard == ["ran"]
    assert task.cancelled()
    assert timer.cancel() == 0  # the timer outlives the context harmlessly


def test_abrupt_stop_with_pending_timer_ops(backend: str) -> None:
    guards: list[int] = []

    async def owner(i: int) -> None:
        timer = cp.Timer(cp.current_executor().context)
        timer.expires_after(3600)
        try:
            await timer.wait()
        finally:
            guards.append(i)

    async def stopper() -> None:
        await cp.sleep(0.01)
        cp.current_executor().context.stop()

    ctx = cp.IOContext(backend=backend)
    tasks = [cp.spawn(ctx, owner(i)) for i in range(3)]
    cp.spawn(ctx, stopper())
    t0 = time.monotonic()
    ctx.run()
    assert time.monotonic() - t0 < PROMPT
    assert ctx.stopped()
    assert guards == []
    ctx.close()
    assert sorted(guards) == [0, 1, 2]
    assert all(t.cancelled() for t in tasks)


# ------------------------------------------------------------ sleep


def test_sleep_basic(backend: str) -> None:
    async def body() -> tuple[Any, float]:
        t0 = time.monotonic()
        result = await cp.sleep(0.02)
        return result, time.monotonic() - t0

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        result, elapsed = task.result()
        assert result is None
        assert 0.02 <= elapsed < 2.0


@pytest.mark.parametrize("seconds", [0, -1, -0.001, -1e300])
def test_sleep_zero_and_negative_complete(backend: str, seconds: float) -> None:
    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, timed_outcome(cp.sleep(seconds)))
        ctx.run()
        result, elapsed = task.result()
        assert result == "ok"
        assert elapsed < PROMPT


def test_sleep_zero_lets_other_work_run(backend: str) -> None:
    order: list[str] = []

    async def worker(name: str) -> None:
        for i in range(3):
            order.append(f"{name}{i}")
            await cp.sleep(0)

    with cp.IOContext(backend=backend) as ctx:
        cp.spawn(ctx, worker("a"))
        cp.spawn(ctx, worker("b"))
        ctx.run()
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_sleep_stop_token(backend: str) -> None:
    async def stopper(source: cp.StopSource) -> None:
        await cp.sleep(0.01)
        source.request_stop()

    with cp.IOContext(backend=backend) as ctx:
        source = cp.StopSource()
        waiter = cp.spawn(ctx, timed_outcome(cp.sleep(60, stop_token=source.token)))
        other = cp.spawn(ctx, timed_outcome(cp.sleep(0.05)))
        cp.spawn(ctx, stopper(source))
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        assert waiter.result()[0] == "cancelled"
        assert other.result()[0] == "ok"


def test_sleep_already_stopped_token(backend: str) -> None:
    async def body(token: cp.StopToken) -> str:
        ran_after = False
        try:
            await cp.sleep(60, stop_token=token)
            ran_after = True
        except cp.Cancelled:
            return "cancelled"
        assert not ran_after
        return "slept"

    with cp.IOContext(backend=backend) as ctx:
        source = cp.StopSource()
        source.request_stop()
        task = cp.spawn(ctx, body(source.token))
        t0 = time.monotonic()
        ctx.run()
        assert time.monotonic() - t0 < PROMPT
        assert task.result() == "cancelled"
        assert ctx._sched.outstanding() == 0


def test_sleep_zero_with_already_stopped_token_is_cancelled(backend: str) -> None:
    with cp.IOContext(backend=backend) as ctx:
        source = cp.StopSource()
        source.request_stop()
        task = cp.spawn(ctx, outcome(cp.sleep(0, stop_token=source.token)))
        ctx.run()
        assert task.result() == "cancelled"


def test_sleep_rejects_non_token(backend: str) -> None:
    """Misuse gives TypeError (at the call or at the await), inside the task;
    it must never escape run() or leave the task hanging."""

    async def body() -> str:
        try:
            await cp.sleep(0.01, stop_token="token")  # type: ignore[arg-type]
        except TypeError:
            return "type error"
        return "slept"

    with cp.IOContext(backend=backend) as ctx:
        task = cp.spawn(ctx, body())
        ctx.run()
        assert task.result() == "type error"
