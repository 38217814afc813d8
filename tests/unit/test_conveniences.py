"""wait_for, shield, timeout(None) / async with, gather(return_exceptions=),
TaskGroup.create_task.

What they pin down: the docstrings of these functions (README.md,
"Conveniences asyncio users reach for").  Every test runs once per reactor
backend; those parametrised over ``threads`` also run with four threads in
``ctx.run()``, so tasks resume on any of them.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import warnings
from types import TracebackType
from typing import Any

import pytest

import corosio_py as cp
from tests.unit.limits import LONG
from tests.unit.task_helpers import raise_after, served, value_after, wait_done

pytestmark = pytest.mark.timeout(60)

THREADS = pytest.mark.parametrize("threads", [1, 4], ids=["1thread", "4threads"])



def go(backend: str, coro: Any, threads: int = 1) -> Any:
    return cp.run(coro, threads=threads, backend=backend)


class NoUnawaited:
    """Fail if a coroutine was left "never awaited" inside the block."""

    def __enter__(self) -> NoUnawaited:
        self._catcher = warnings.catch_warnings(record=True)
        self.caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.collect()
        self._catcher.__exit__(exc_type, exc, tb)
        unawaited = [w for w in self.caught if "never awaited" in str(w.message)]
        assert not unawaited, unawaited


class Flag:
    """A thread-safe one-shot flag, polled by ``wait`` from a task."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        while not self.event.is_set():
            await cp.sleep(0.0005)


# ================================================================== wait_for


@THREADS
def test_wait_for_returns_the_result_in_time(backend: str, threads: int) -> None:
    async def main() -> list[Any]:
        task = cp.spawn(cp.current_executor(), value_after("task", 0.001))
        return [
            await cp.wait_for(value_after("coro", 0.001), LONG),
            await cp.wait_for(task, LONG),
            await cp.wait_for(cp.sleep(0.001), LONG),
        ]

    assert go(backend, main(), threads) == ["coro", "task", None]


@THREADS
def test_wait_for_a_coroutine_times_out_and_cancels_it(backend: str, threads: int) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await cp.sleep(LONG)
        except cp.Cancelled:
            seen.append("cancelled")
            raise

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await cp.wait_for(slow(), 0.01)
        with pytest.raises(TimeoutError):
            await cp.wait_for(cp.sleep(LONG), 0.01)

    go(backend, main(), threads)
    assert seen == ["cancelled"]


def test_wait_for_a_coroutine_that_swallows_the_cancel_returns_its_value(
    backend: str,
) -> None:
    async def stubborn() -> str:
        try:
            await cp.sleep(LONG)
        except cp.Cancelled:
            return "finished anyway"
        return "slept"  # pragma: no cover

    async def main() -> str:
        return await cp.wait_for(stubborn(), 0.01)

    assert go(backend, main()) == "finished anyway"


@THREADS
def test_wait_for_a_task_cancels_it_and_waits_for_it(backend: str, threads: int) -> None:
    cleaned: list[bool] = []

    async def slow() -> None:
        try:
            await cp.sleep(LONG)
        finally:
            await cp.sleep(0.01)  # cleanup that takes time: wait_for waits for it
            cleaned.append(True)

    async def main() -> None:
        task = cp.spawn(cp.current_executor(), slow())
        with pytest.raises(TimeoutError):
            await cp.wait_for(task, 0.01)
        assert task.done() and task.cancelled()
        assert cleaned == [True]

    go(backend, main(), threads)


@THREADS
def test_wait_for_a_task_that_finishes_anyway_gives_its_outcome(
    backend: str, threads: int
) -> None:
    async def stubborn(outcome: Any) -> Any:
        try:
            await cp.sleep(LONG)
        except cp.Cancelled:
            if isinstance(outcome, BaseException):
                raise outcome from None
            return outcome
        return None  # pragma: no cover

    async def main() -> None:
        ex = cp.current_executor()
        assert await cp.wait_for(cp.spawn(ex, stubborn("value")), 0.01) == "value"
        with pytest.raises(KeyError):
            await cp.wait_for(cp.spawn(ex, stubborn(KeyError("k"))), 0.01)

    go(backend, main(), threads)


def test_wait_for_none_waits_as_long_as_it_takes(backend: str) -> None:
    async def main() -> list[Any]:
        task = cp.spawn(cp.current_executor(), value_after("task", 0.03))
        return [await cp.wait_for(value_after("coro", 0.03), None), await cp.wait_for(task, None)]

    assert go(backend, main()) == ["coro", "task"]


@pytest.mark.parametrize("seconds", [0, -1.0])
def test_wait_for_non_positive_seconds(backend: str, seconds: float) -> None:
    async def instant() -> str:
        return "no suspension"

    async def main() -> None:
        done_task = cp.spawn(cp.current_executor(), instant())
        await cp.yield_now()
        assert done_task.done()
        assert await cp.wait_for(done_task, seconds) == "no suspension"
        assert await cp.wait_for(instant(), seconds) == "no suspension"
        pending = cp.spawn(cp.current_executor(), cp.sleep(LONG))
        with pytest.raises(TimeoutError):
            await cp.wait_for(pending, seconds)
        assert pending.cancelled()
        with pytest.raises(TimeoutError):
            await cp.wait_for(cp.sleep(LONG), seconds)

    go(backend, main())


@THREADS
def test_cancelling_the_caller_cancels_the_waited_task(backend: str, threads: int) -> None:
    async def main() -> None:
        ex = cp.current_executor()
        inner = cp.spawn(ex, cp.sleep(LONG))
        started = Flag()

        async def waiter() -> None:
            started.set()
            await cp.wait_for(inner, LONG)

        outer = cp.spawn(ex, waiter())
        await started.wait()
        await cp.sleep(0.005)
        outer.cancel()
        with pytest.raises(cp.Cancelled):
            await outer
        assert inner.cancelled()

    go(backend, main(), threads)


def test_wait_for_bad_arguments(backend: str) -> None:
    async def never() -> None:  # pragma: no cover - closed unstarted
        await cp.sleep(LONG)

    async def main() -> None:
        with NoUnawaited():
            with pytest.raises(TypeError):
                await cp.wait_for(never(), "1")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await cp.wait_for(never(), math.nan)
            with pytest.raises(TypeError):
                await cp.wait_for(never(), True)
            with pytest.raises(TypeError):
                await cp.wait_for(42, 1)  # type: ignore[arg-type]
        me = cp.current_task()
        assert me is not None
        with pytest.raises(RuntimeError, match="itself"):
            await cp.wait_for(me, 1)

    go(backend, main())


def test_wait_for_and_shield_outside_a_task() -> None:
    async def never() -> None:  # pragma: no cover - closed unstarted
        await cp.sleep(LONG)

    for call in (cp.wait_for(never(), 1), cp.shield(never())):
        with pytest.raises(RuntimeError, match="inside a corosio_py task"):
            call.send(None)


def test_wait_for_many_tasks_on_four_runners(backend: str) -> None:
    """Half the tasks finish in time, half time out; every one is accounted
    for, and run() returns (no unit of work left behind)."""
    ctx = cp.IOContext(backend=backend)
    outcomes: list[str] = []
    lock = threading.Lock()

    async def one(i: int) -> None:
        inner = cp.spawn(ctx, value_after(i, 0.0 if i % 2 else LONG))
        try:
            assert await cp.wait_for(inner, 0.02) == i
            result = "in time"
        except TimeoutError:
            assert inner.cancelled()
            result = "timed out"
        with lock:
            outcomes.append(result)

    with served(ctx, threads=4):
        tasks = [cp.spawn(ctx, one(i)) for i in range(64)]
        for task in tasks:
            wait_done(task, 30)
    for task in tasks:
        task.result()
    assert sorted(outcomes) == ["in time"] * 32 + ["timed out"] * 32
    assert ctx._sched.outstanding() == 0
    ctx.close()


# ================================================================== shield


@THREADS
def test_shield_returns_the_result_and_raises_the_error(backend: str, threads: int) -> None:
    async def main() -> None:
        assert await cp.shield(value_after(1, 0.001)) == 1
        assert await cp.shield(cp.spawn(cp.current_executor(), value_after(2, 0.001))) == 2
        with pytest.raises(KeyError):
            await cp.shield(raise_after(KeyError("k"), 0.001))

    go(backend, main(), threads)


@THREADS
def test_shield_survives_the_outer_cancel(backend: str, threads: int) -> None:
    """The waiter's cancel only ends its wait: the inner work runs to its end
    and its result is still there to retrieve."""
    side_effects: list[str] = []

    async def inner_work(tag: str) -> str:
        await cp.sleep(0.02)
        side_effects.append(tag)
        return f"{tag} result"

    async def main() -> None:
        ex = cp.current_executor()
        inner = cp.spawn(ex, inner_work("task"))
        started = Flag()

        async def waiter() -> None:
            started.set()
            await cp.shield(inner)

        async def coro_waiter() -> None:
            await cp.shield(inner_work("coroutine"))

        outer = cp.spawn(ex, waiter())
        outer2 = cp.spawn(ex, coro_waiter())
        await started.wait()
        await cp.sleep(0.002)
        outer.cancel()
        outer2.cancel()
        with pytest.raises(cp.Cancelled):
            await outer
        with pytest.raises(cp.Cancelled):
            await outer2
        assert not inner.done()  # the waiter left at once
        assert await inner == "task result"
        while len(side_effects) < 2:
            await cp.sleep(0.001)
        assert sorted(side_effects) == ["coroutine", "task"]

    go(backend, main(), threads)


def test_shield_under_wait_for_keeps_the_task_going(backend: str) -> None:
    async def main() -> str:
        inner = cp.spawn(cp.current_executor(), value_after("kept", 0.03))
        with pytest.raises(TimeoutError):
            await cp.wait_for(cp.shield(inner), 0.005)
        assert not inner.done()
        return await inner

    assert go(backend, main()) == "kept"


def test_shielded_error_nobody_retrieves_is_logged(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        started = Flag()

        async def waiter() -> None:
            started.set()
            await cp.shield(raise_after(KeyError("lost"), 0.01))

        outer = cp.spawn(cp.current_executor(), waiter())
        await started.wait()
        outer.cancel()
        with pytest.raises(cp.Cancelled):
            await outer
        await cp.sleep(0.03)  # the inner task fails meanwhile

    with caplog.at_level(logging.ERROR, logger="corosio_py"):
        go(backend, main())
        gc.collect()
    assert any("never retrieved" in r.getMessage() for r in caplog.records)


def test_shield_bad_arguments(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await cp.shield(42)  # type: ignore[arg-type]

    go(backend, main())


# ================================================================== timeout


def test_timeout_none_never_expires(backend: str) -> None:
    async def main() -> None:
        with cp.timeout(None) as limit:
            await cp.sleep(0.02)
        assert not limit.expired
        # Inside a timeout that fires, None neither delays nor hides it.
        with pytest.raises(TimeoutError), cp.timeout(0.01), cp.timeout(None):
            await cp.sleep(LONG)

    go(backend, main())


def test_timeout_none_lets_a_task_cancel_through(backend: str) -> None:
    async def body() -> None:
        with cp.timeout(None):
            await cp.sleep(LONG)

    async def main() -> None:
        task = cp.spawn(cp.current_executor(), body())
        await cp.sleep(0.005)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    go(backend, main())


@THREADS
def test_async_with_timeout(backend: str, threads: int) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with cp.timeout(0.01):
                await cp.sleep(LONG)
        async with cp.timeout(LONG) as limit:
            await cp.sleep(0.001)
        assert not limit.expired
        async with cp.timeout(None):
            await cp.sleep(0.001)
        with pytest.raises(RuntimeError, match="twice"):
            async with limit:
                pass  # pragma: no cover

    go(backend, main(), threads)


# ================================================================== gather


@THREADS
def test_gather_return_exceptions_returns_errors_in_place(
    backend: str, threads: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> list[Any]:
        return await cp.gather(
            value_after(1, 0.001),
            raise_after(KeyError("k"), 0.001),
            value_after(3, 0.03),  # still running when the error lands: not cancelled
            return_exceptions=True,
        )

    with caplog.at_level(logging.ERROR, logger="corosio_py"):
        results = go(backend, main(), threads)
        gc.collect()
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], KeyError)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_gather_return_exceptions_returns_cancelled_of_a_child(backend: str) -> None:
    async def main() -> list[Any]:
        victim = cp.spawn(cp.current_executor(), cp.sleep(LONG))

        async def canceller() -> str:
            await cp.sleep(0.005)
            victim.cancel()  # someone else cancels a child
            return "cancelled it"

        return await cp.gather(victim, canceller(), return_exceptions=True)

    results = go(backend, main())
    assert isinstance(results[0], cp.Cancelled)
    assert results[1] == "cancelled it"


@THREADS
def test_cancelling_the_gathering_task_cancels_the_children(
    backend: str, threads: int
) -> None:
    async def main() -> None:
        ex = cp.current_executor()
        children = [cp.spawn(ex, cp.sleep(LONG)) for _ in range(3)]
        gathering = cp.spawn(ex, cp.gather(*children, return_exceptions=True))
        await cp.sleep(0.005)
        gathering.cancel()
        with pytest.raises(cp.Cancelled):
            await gathering
        assert all(child.cancelled() for child in children)

    go(backend, main(), threads)


def test_gather_return_exceptions_must_be_a_bool(backend: str) -> None:
    async def never() -> None:  # pragma: no cover - closed unstarted
        await cp.sleep(LONG)

    async def main() -> None:
        with NoUnawaited(), pytest.raises(TypeError, match="return_exceptions"):
            await cp.gather(never(), return_exceptions=1)  # type: ignore[arg-type]

    go(backend, main())


def test_gather_return_exceptions_many_children_on_four_runners(backend: str) -> None:
    async def child(i: int) -> int:
        await cp.sleep(0.001 * (i % 3))
        if i % 4 == 0:
            raise ValueError(i)
        return i

    async def main() -> list[Any]:
        return await cp.gather(*(child(i) for i in range(100)), return_exceptions=True)

    results = go(backend, main(), 4)
    for i, result in enumerate(results):
        if i % 4 == 0:
            assert isinstance(result, ValueError) and result.args == (i,)
        else:
            assert result == i


# ================================================================== TaskGroup.create_task


@THREADS
def test_create_task_is_spawn(backend: str, threads: int) -> None:
    async def main() -> list[Any]:
        async with cp.TaskGroup() as tg:
            first = tg.create_task(value_after(1, 0.001))
            second = tg.create_task(value_after(2, 0.002), name="ignored")
            third = tg.spawn(value_after(3, 0.0))
        return [first.result(), second.result(), third.result()]

    assert go(backend, main(), threads) == [1, 2, 3]


def test_create_task_failure_cancels_the_group(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(ExceptionGroup) as info:
            async with cp.TaskGroup() as tg:
                slow = tg.create_task(value_after(None, LONG))
                tg.create_task(raise_after(KeyError("k"), 0.001))
        assert [type(e) for e in info.value.exceptions] == [KeyError]
        assert slow.cancelled()

    go(backend, main())


def test_create_task_refuses_context(backend: str) -> None:
    async def never() -> None:  # pragma: no cover - closed unstarted
        await cp.sleep(LONG)

    async def main() -> None:
        with NoUnawaited():
            async with cp.TaskGroup() as tg:
                with pytest.raises(TypeError, match="context="):
                    tg.create_task(never(), context=object())
                coro = never()
                with pytest.raises(TypeError):
                    tg.create_task(coro, eager=True)  # type: ignore[call-arg]
                coro.close()

    go(backend, main())
