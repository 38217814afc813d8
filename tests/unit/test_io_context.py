"""IOContext, Executor and work-guard tests, run on every reactor backend.

The first half ports the upstream ``test/unit/io_context.cpp`` catalogue
(upstream behaviour; each test is named after its upstream
case); the second half checks what the docstrings of ``IOContext`` and
``Executor`` promise.  Timing bounds are generous: the machine is small and shared, so an
upper bound only has to tell "returned promptly" from "waited for the full
timeout" or "hung".
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext
from tests.unit.limits import JOIN, PROMPT
from tests.unit.thread_helpers import Runner, join_all, start, wait_until

pytestmark = pytest.mark.timeout(60)

#: Hints to run the single-threaded cases with: the default scheduler and the
#: lock-free ``concurrency_hint=1`` one.
HINTS = pytest.mark.parametrize("hint", [None, 1], ids=["default", "hint1"])


# --------------------------------------------------------------------------
# helpers


class Counter:
    """A lock-protected counter, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1

    async def coroutine(self) -> None:
        """The upstream "counter coroutine": bump when resumed, then finish."""
        self.bump()


# --------------------------------------------------------------------------
# upstream catalogue (test/unit/io_context.cpp)


def test_construction(make_ctx: Callable[..., IOContext]) -> None:
    assert not make_ctx().stopped()
    assert not make_ctx(1).stopped()
    assert not make_ctx(2).stopped()


def test_get_executor(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    ex1 = ctx.executor
    ex2 = ctx.executor
    assert ex1 == ex2
    assert (ex1 != ex2) is False
    assert hash(ex1) == hash(ex2)


@HINTS
def test_run(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    counter = Counter()
    tasks = [corosio_py.spawn(ctx, counter.coroutine()) for _ in range(3)]
    assert ctx.run() == 3
    assert counter.value == 3
    assert all(t.done() for t in tasks)
    assert ctx.stopped()


@HINTS
def test_run_one(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run_one() == 1
    assert counter.value == 1
    assert not ctx.stopped()
    assert ctx.run_one() == 1
    assert counter.value == 2
    # As upstream: the call that ran the last handler stops the context.
    assert ctx.stopped()
    assert ctx.run_one() == 0


@HINTS
def test_poll(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    assert ctx.poll() == 0
    assert ctx.stopped()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    corosio_py.spawn(ctx, counter.coroutine())
    ctx.restart()
    assert ctx.poll() == 2
    assert counter.value == 2
    assert ctx.stopped()


@HINTS
def test_poll_one(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    assert ctx.poll_one() == 0
    assert ctx.stopped()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    corosio_py.spawn(ctx, counter.coroutine())
    ctx.restart()
    assert ctx.poll_one() == 1
    assert counter.value == 1
    assert ctx.poll_one() == 1
    assert counter.value == 2
    assert ctx.poll_one() == 0
    assert ctx.stopped()


@HINTS
def test_stop_and_restart(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    ctx.stop()
    assert ctx.stopped()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run() == 0
    assert counter.value == 0
    ctx.restart()
    assert not ctx.stopped()
    assert ctx.run() == 1
    assert counter.value == 1


@HINTS
def test_run_one_for(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    assert ctx.run_one_for(0.010) == 0
    assert ctx.stopped()
    ctx.restart()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run_one_for(0.100) == 1
    assert counter.value == 1


@HINTS
def test_run_one_until(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    assert ctx.run_one_until(time.monotonic() + 0.010) == 0
    assert ctx.stopped()
    ctx.restart()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run_one_until(time.monotonic() + 0.100) == 1
    assert counter.value == 1


@HINTS
def test_run_for(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    t0 = time.monotonic()
    assert ctx.run_for(0.020) == 0
    assert ctx.stopped()
    assert time.monotonic() - t0 < PROMPT
    # With no work, even a long run_for returns at once.
    ctx.restart()
    t0 = time.monotonic()
    assert ctx.run_for(30.0) == 0
    assert time.monotonic() - t0 < PROMPT
    assert ctx.stopped()
    ctx.restart()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run_for(0.100) == 1
    assert counter.value == 1


def test_executor_running_in_this_thread(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    ex = ctx.executor
    assert not ex.running_in_this_thread()
    seen: list[bool] = []

    async def check() -> None:
        seen.append(ex.running_in_this_thread())

    corosio_py.spawn(ctx, check())
    ctx.post(lambda: seen.append(ex.running_in_this_thread()))
    assert ctx.run() == 2
    assert seen == [True, True]
    assert not ex.running_in_this_thread()


def test_executor_running_in_this_thread_is_false_on_foreign_thread(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx()
    other = make_ctx()
    ex = ctx.executor
    seen: list[bool] = []
    in_handler = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        in_handler.set()
        release.wait(JOIN)

    ctx.post(blocker)
    runner = start(ctx.run)
    try:
        assert in_handler.wait(JOIN)
        # The main thread is foreign while another thread runs the context...
        assert not ex.running_in_this_thread()
        # ...and so is a thread inside run() of a different context.
        other.post(lambda: seen.append(ex.running_in_this_thread()))
        assert other.run() == 1
        assert seen == [False]
    finally:
        release.set()
    join_all([runner])


def test_multithreaded(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    counter = Counter()

    def post_many() -> None:
        for _ in range(100):
            corosio_py.spawn(ctx, counter.coroutine())

    posters = [start(post_many) for _ in range(4)]
    join_all(posters)
    runners = [start(ctx.run) for _ in range(4)]
    join_all(runners)
    assert counter.value == 400
    assert sum(r.result for r in runners) == 400
    assert ctx.stopped()


def test_multithreaded_stress(make_ctx: Callable[..., IOContext]) -> None:
    for iteration in range(10):
        ctx = make_ctx()
        counter = Counter()
        for _ in range(100):
            corosio_py.spawn(ctx, counter.coroutine())
        runners = [start(ctx.run) for _ in range(4)]
        join_all(runners)
        assert counter.value == 100, f"iteration {iteration}"
        assert sum(r.result for r in runners) == 100, f"iteration {iteration}"
        ctx.close()


def test_construction_single_threaded(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx(1)
    assert not ctx.stopped()
    counter = Counter()
    corosio_py.spawn(ctx, counter.coroutine())
    assert ctx.run() == 1
    assert counter.value == 1


@HINTS
def test_run_one_until_expired_deadline_stops(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    assert ctx.run_one_until(time.monotonic() - 0.001) == 0
    assert ctx.stopped()
    ctx.restart()
    assert ctx.run_for(-0.001) == 0
    assert ctx.stopped()


@HINTS
def test_run_one_until_long_deadline_no_work(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    t0 = time.monotonic()
    assert ctx.run_one_until(time.monotonic() + 2.0) == 0
    assert time.monotonic() - t0 < 1.0
    assert ctx.stopped()


@HINTS
def test_run_for_with_outstanding_work(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    ex = ctx.executor
    ex.on_work_started()
    t0 = time.monotonic()
    assert ctx.run_for(0.200) == 0
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.150
    assert elapsed < 1.0
    assert not ctx.stopped()
    ex.on_work_finished()
    assert ctx.stopped()


@HINTS
def test_run_one_for_with_outstanding_work(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    ex = ctx.executor
    ex.on_work_started()
    t0 = time.monotonic()
    assert ctx.run_one_for(0.200) == 0
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.150
    assert elapsed < 1.0
    assert not ctx.stopped()
    ex.on_work_finished()
    assert ctx.stopped()


def test_multithreaded_notify_and_wait_for(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    counter = Counter()
    guard = ctx.work_guard()
    runner = start(ctx.run_for, 30.0)
    for _ in range(8):
        corosio_py.spawn(ctx, counter.coroutine())
    wait_until(lambda: counter.value == 8)
    released = time.monotonic()
    guard.reset()
    join_all([runner])
    # The runner returned because the last unit of work went away, not
    # because its 30 s ran out.
    assert runner.finished_at is not None
    assert runner.finished_at - released < 5.0
    assert counter.value == 8
    assert runner.result == 8
    assert ctx.stopped()


@pytest.mark.leaves_work_for_close("close() closes the frames of tasks whose resumption is queued")
@HINTS
def test_shutdown_destroys_posted_coroutine_frames(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    """Three tasks, each with a resumption posted (after ``yield_now``) and
    never run: close() closes their coroutines, so every ``finally`` runs,
    and each task reports ``Cancelled``."""
    ctx = make_ctx(hint)
    started = Counter()
    resumed = Counter()
    destroyed = Counter()

    async def frame() -> None:
        try:
            started.bump()
            await corosio_py.yield_now()
            resumed.bump()
        finally:
            destroyed.bump()

    tasks = [corosio_py.spawn(ctx, frame()) for _ in range(3)]
    for _ in range(3):
        assert ctx.poll_one() == 1
    assert started.value == 3
    assert destroyed.value == 0
    ctx.close()
    assert resumed.value == 0
    assert destroyed.value == 3
    for task in tasks:
        assert task.done()
        assert task.cancelled()
        with pytest.raises(Cancelled):
            task.result()


@pytest.mark.leaves_work_for_close("close() closes the frames of tasks that never started")
@HINTS
def test_shutdown_destroys_never_started_coroutine_frames(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    """The upstream case proper: three spawned coroutines that never ran.  A
    never-started Python coroutine has no ``finally`` to run, so the frames'
    destruction is counted through an object each frame owns."""
    ctx = make_ctx(hint)
    destroyed = Counter()
    ran = Counter()

    class Owned:
        pass

    async def frame(owned: Owned) -> None:
        try:
            ran.bump()
        finally:
            del owned

    tasks = []
    for _ in range(3):
        owned = Owned()
        weakref.finalize(owned, destroyed.bump)
        tasks.append(corosio_py.spawn(ctx, frame(owned)))
    del owned
    gc.collect()
    assert destroyed.value == 0  # the frames keep their objects alive
    ctx.close()
    gc.collect()
    assert ran.value == 0
    assert destroyed.value == 3
    for task in tasks:
        assert task.done()
        assert task.cancelled()
        with pytest.raises(Cancelled):
            task.result()


@pytest.mark.leaves_work_for_close("close() closes tasks waiting on timers")
@HINTS
def test_shutdown_destroys_timer_waiters(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    """2.10.5: a coroutine waiting on a one-hour timer is closed at shutdown."""
    ctx = make_ctx(hint)
    destroyed = Counter()
    waiting = Counter()

    async def sleeper() -> None:
        try:
            waiting.bump()
            await corosio_py.sleep(3600.0)
        finally:
            destroyed.bump()

    tasks = [corosio_py.spawn(ctx, sleeper()) for _ in range(3)]
    ctx.run_for(0.05)
    assert waiting.value == 3
    assert destroyed.value == 0
    t0 = time.monotonic()
    ctx.close()
    assert time.monotonic() - t0 < PROMPT
    assert destroyed.value == 3
    assert all(t.cancelled() for t in tasks)


# --------------------------------------------------------------------------
# posting and executors (IOContext.post, Executor)


@HINTS
def test_post_passes_args(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    got: list[tuple[Any, ...]] = []
    ctx.post(lambda *a: got.append(a), 1, "two", None)
    ctx.executor.post(lambda *a: got.append(a), 3)
    ctx.executor.defer(lambda *a: got.append(a), 4, 5)
    ctx.executor.dispatch(lambda *a: got.append(a), 6)
    ctx.post(lambda: got.append(()))
    assert ctx.run() == 5
    assert got == [(1, "two", None), (3,), (4, 5), (6,), ()]


@pytest.mark.parametrize("bad", [None, 42, "fn", object()], ids=["None", "int", "str", "object"])
def test_post_of_non_callable_raises_type_error(
    make_ctx: Callable[..., IOContext], bad: object
) -> None:
    ctx = make_ctx()
    ex = ctx.executor
    for submit in (ctx.post, ex.post, ex.dispatch, ex.defer):
        with pytest.raises(TypeError):
            submit(bad)  # type: ignore[arg-type]
    # Nothing was queued: the context has no work.
    assert ctx.poll() == 0
    assert ctx.stopped()


@HINTS
def test_dispatch_runs_inline_when_running_in_this_thread(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    ex = ctx.executor
    order: list[str] = []

    def outer() -> None:
        order.append("outer-start")
        ex.dispatch(order.append, "dispatched")
        order.append("outer-end")

    ctx.post(outer)
    assert ctx.run() == 1  # the dispatched call ran inside the handler
    assert order == ["outer-start", "dispatched", "outer-end"]


@HINTS
def test_dispatch_from_outside_posts(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    got: list[int] = []
    ctx.executor.dispatch(got.append, 1)
    assert got == []  # not inline: this thread is not running the context
    assert ctx.run() == 1
    assert got == [1]


@HINTS
def test_defer_never_inline(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    ex = ctx.executor
    order: list[str] = []

    def outer() -> None:
        order.append("outer-start")
        ex.defer(order.append, "deferred")
        ex.post(order.append, "posted")
        order.append("outer-end")

    ex.defer(outer)
    assert order == []
    assert ctx.run() == 3
    assert order == ["outer-start", "outer-end", "deferred", "posted"]


def test_executors_compare_by_context(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    other = make_ctx()
    assert ctx.executor == ctx.executor
    assert ctx.executor != other.executor
    assert ctx.executor.context is ctx
    assert other.executor.context is other
    assert ctx.executor != object()
    assert len({ctx.executor, ctx.executor, other.executor}) == 2


# --------------------------------------------------------------------------
# work accounting


def test_work_guard_keeps_run_going_until_reset_from_another_thread(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx()
    guard = ctx.work_guard()
    runner = start(ctx.run)
    time.sleep(0.1)
    assert runner.is_alive()  # no work queued, but the guard holds run()
    got: list[int] = []
    ctx.post(got.append, 1)
    wait_until(lambda: got == [1])
    time.sleep(0.05)
    assert runner.is_alive()
    assert not ctx.stopped()
    released = time.monotonic()
    guard.reset()
    join_all([runner])
    assert runner.finished_at is not None
    assert runner.finished_at - released < PROMPT
    assert runner.result == 1
    assert ctx.stopped()


@HINTS
def test_work_guard_as_context_manager(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    with ctx.work_guard() as guard:
        assert guard is not None
        assert ctx.run_for(0.02) == 0
        assert not ctx.stopped()  # the guard is outstanding work
        assert ctx.poll() == 0
        assert not ctx.stopped()
    # Releasing the last unit stops the context.
    assert ctx.stopped()
    ctx.restart()
    assert ctx.run() == 0
    assert ctx.stopped()


@HINTS
def test_work_guard_reset_twice_is_harmless(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    guard = ctx.work_guard()
    guard.reset()
    assert ctx.stopped()
    guard.reset()  # must not release a second unit
    with guard:
        pass  # nor may the context manager
    ctx.restart()
    got: list[int] = []
    ctx.post(got.append, 1)
    ctx.post(got.append, 2)
    # If a reset had released twice the count would be off by one and the
    # context would stop before (or without) running the second handler.
    assert ctx.run_one() == 1
    assert not ctx.stopped()
    assert ctx.run() == 1
    assert got == [1, 2]


@HINTS
def test_on_work_started_and_finished(make_ctx: Callable[..., IOContext], hint: int | None) -> None:
    ctx = make_ctx(hint)
    ex = ctx.executor
    ex.on_work_started()
    ex.on_work_started()
    assert ctx.poll() == 0
    assert not ctx.stopped()
    ex.on_work_finished()
    assert not ctx.stopped()
    assert ctx.run_for(0.01) == 0
    assert not ctx.stopped()
    ex.on_work_finished()
    assert ctx.stopped()


def test_on_work_finished_from_another_thread_ends_run(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx()
    ex = ctx.executor
    ex.on_work_started()
    runner = start(ctx.run)
    time.sleep(0.05)
    assert runner.is_alive()
    ex.on_work_finished()
    join_all([runner])
    assert runner.result == 0
    assert ctx.stopped()


# --------------------------------------------------------------------------
# argument validation and construction


@HINTS
def test_run_for_negative_behaves_as_zero(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    assert ctx.run_for(-1) == 0
    assert ctx.stopped()
    ctx.restart()
    assert ctx.run_one_for(-1) == 0
    assert ctx.stopped()
    ctx.restart()
    # With outstanding work, a negative duration returns at once without
    # stopping, exactly as run_for(0) does.
    guard = ctx.work_guard()
    for call in (ctx.run_for, ctx.run_one_for):
        t0 = time.monotonic()
        assert call(-1) == 0
        assert time.monotonic() - t0 < PROMPT
        assert not ctx.stopped()
        assert call(0) == 0
        assert not ctx.stopped()
    t0 = time.monotonic()
    assert ctx.run_until(time.monotonic() - 1) == 0
    assert ctx.run_one_until(time.monotonic() - 1) == 0
    assert time.monotonic() - t0 < PROMPT
    assert not ctx.stopped()
    # Queued handlers are still run (a zero timeout runs what is ready).
    got: list[int] = []
    ctx.post(got.append, 1)
    deadline = time.monotonic() + PROMPT
    while not got and time.monotonic() < deadline:
        ctx.run_for(-1)
    assert got == [1]
    guard.reset()
    assert ctx.stopped()


TIMED = ["run_for", "run_one_for", "run_until", "run_one_until"]


@pytest.mark.parametrize("method", TIMED)
def test_timed_variants_reject_nan(make_ctx: Callable[..., IOContext], method: str) -> None:
    ctx = make_ctx()
    with pytest.raises(ValueError):
        getattr(ctx, method)(math.nan)
    with pytest.raises(ValueError):
        getattr(ctx, method)(float("nan"))


@pytest.mark.parametrize("method", TIMED)
@pytest.mark.parametrize("bad", ["1", None, b"1", [1]], ids=["str", "None", "bytes", "list"])
def test_timed_variants_reject_non_numbers(
    make_ctx: Callable[..., IOContext], method: str, bad: object
) -> None:
    ctx = make_ctx()
    with pytest.raises(TypeError):
        getattr(ctx, method)(bad)


def test_unknown_backend_raises_value_error_naming_available(backend: str) -> None:
    with pytest.raises(ValueError) as info:
        IOContext(backend="nope")
    message = str(info.value)
    assert "nope" in message
    for name in corosio_py.available_backends():
        assert name in message


@pytest.mark.parametrize("hint", [0, -1])
def test_concurrency_hint_below_one_raises_value_error(backend: str, hint: int) -> None:
    with pytest.raises(ValueError):
        IOContext(concurrency_hint=hint, backend=backend)


def test_concurrency_hint_non_int_raises_type_error(backend: str) -> None:
    with pytest.raises(TypeError):
        IOContext(concurrency_hint="2", backend=backend)  # type: ignore[arg-type]


@HINTS
def test_backend_property_is_the_requested_name(backend: str, hint: int | None) -> None:
    with IOContext(concurrency_hint=hint, backend=backend) as ctx:
        assert ctx.backend == backend
    assert backend in corosio_py.available_backends()


# --------------------------------------------------------------------------
# close()


@pytest.mark.leaves_work_for_close("close() discards a queued function")
@HINTS
def test_close_is_idempotent_and_final(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    got: list[int] = []
    ctx.post(got.append, 1)
    ctx.close()
    ctx.close()
    assert got == []  # queued functions are discarded, never called
    with pytest.raises(RuntimeError):
        ctx.post(got.append, 2)
    with pytest.raises(RuntimeError):
        ctx.executor.post(got.append, 3)
    coro = Counter().coroutine()
    with pytest.raises(RuntimeError):
        corosio_py.spawn(ctx, coro)
    coro.close()
    assert ctx.run() == 0
    assert ctx.run_one() == 0
    assert ctx.poll() == 0
    assert ctx.poll_one() == 0
    assert ctx.run_for(0.01) == 0
    ctx.restart()
    assert ctx.run() == 0
    assert got == []
    ctx.close()


@HINTS
def test_with_statement_closes(backend: str, hint: int | None) -> None:
    got: list[int] = []
    with IOContext(concurrency_hint=hint, backend=backend) as ctx:
        assert isinstance(ctx, IOContext)
        ctx.post(got.append, 1)
        assert ctx.run() == 1
        ctx.restart()
        ctx.post(got.append, 2)
    assert got == [1]
    with pytest.raises(RuntimeError):
        ctx.post(got.append, 3)
    assert ctx.run() == 0


@pytest.mark.leaves_work_for_close("close() wakes threads a work guard keeps in run()")
def test_close_wakes_threads_in_run(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    guard = ctx.work_guard()
    runners = [start(ctx.run) for _ in range(3)]
    time.sleep(0.05)
    ctx.close()
    join_all(runners)
    guard.reset()


# --------------------------------------------------------------------------
# poll() makes a non-blocking reactor pass


@HINTS
@pytest.mark.parametrize("method", ["poll", "poll_one"])
def test_poll_loop_observes_due_timer(
    make_ctx: Callable[..., IOContext], hint: int | None, method: str
) -> None:
    ctx = make_ctx(hint)
    poll = getattr(ctx, method)

    async def sleeper() -> str:
        await corosio_py.sleep(0.01)
        return "done"

    task = corosio_py.spawn(ctx, sleeper())
    t0 = time.monotonic()
    while not task.done():
        assert time.monotonic() - t0 < PROMPT, "a poll loop never saw the timer expire"
        poll()
        time.sleep(0.005)
    assert task.result() == "done"


@HINTS
@pytest.mark.parametrize("method", ["poll", "poll_one"])
def test_poll_loop_observes_ready_socket(
    make_ctx: Callable[..., IOContext], hint: int | None, method: str
) -> None:
    from corosio_py.testing import socket_pair

    ctx = make_ctx(hint)
    poll = getattr(ctx, method)
    left, right = socket_pair(ctx)

    async def reader() -> bytes:
        buf = bytearray(16)
        n = await right.read_some(buf)
        return bytes(buf[:n])

    task = corosio_py.spawn(ctx, reader())
    for _ in range(5):
        poll()  # the reader parks: nothing to read yet
    assert not task.done()
    # Make the socket readable behind the context's back: only a reactor
    # pass made by poll() can notice.
    os.write(left.fileno(), b"ping")
    t0 = time.monotonic()
    while not task.done():
        assert time.monotonic() - t0 < PROMPT, "a poll loop never saw the socket ready"
        poll()
        time.sleep(0.005)
    assert task.result() == b"ping"
    left.close()
    right.close()


def test_poll_never_blocks(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()

    async def sleeper() -> None:
        await corosio_py.sleep(3600.0)

    task = corosio_py.spawn(ctx, sleeper())
    assert ctx.poll() == 1  # the task ran up to its sleep
    t0 = time.monotonic()
    for _ in range(20):
        assert ctx.poll() == 0
        assert ctx.poll_one() == 0
    assert time.monotonic() - t0 < PROMPT
    assert not ctx.stopped()
    task.cancel()
    ctx.run()
    assert task.cancelled()


# --------------------------------------------------------------------------
# exceptions, stop, chains, load


class BoomError(Exception):
    pass


@HINTS
def test_handler_exception_propagates_and_nothing_is_lost(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    got: list[int] = []

    def boom() -> None:
        raise BoomError("from a handler")

    ctx.post(got.append, 1)
    ctx.post(boom)
    ctx.post(got.append, 2)
    ctx.post(got.append, 3)
    with pytest.raises(BoomError):
        ctx.run()
    assert got == [1]
    assert not ctx.stopped()
    assert ctx.run() == 2
    assert got == [1, 2, 3]
    assert ctx.stopped()


def test_handler_exception_propagates_on_the_thread_that_ran_it(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx()
    got: list[int] = []
    raised_on: list[int] = []

    def boom() -> None:
        raised_on.append(threading.get_ident())
        raise BoomError("from a handler")

    ctx.post(boom)
    for i in range(10):
        ctx.post(got.append, i)
    runner = start(ctx.run)
    runner.join(JOIN)
    assert not runner.is_alive()
    assert isinstance(runner.error, BoomError)
    assert raised_on == [runner.ident]
    assert not ctx.stopped()
    # The main thread picks up the rest: nothing was lost.
    assert ctx.run() == 10
    assert got == list(range(10))


def test_stop_from_handler_wakes_every_thread(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    guard = ctx.work_guard()
    threads = 4
    runners = [start(ctx.run) for _ in range(threads)]
    # With the guard held, a live runner is blocked inside run(): asleep or
    # the reactor.
    time.sleep(0.2)
    assert all(r.is_alive() for r in runners)
    stopped_at: list[float] = []

    def stopper() -> None:
        stopped_at.append(time.monotonic())
        ctx.stop()

    ctx.post(stopper)
    join_all(runners, timeout=PROMPT + 3.0)
    assert stopped_at
    for r in runners:
        assert r.finished_at is not None
        assert r.finished_at - stopped_at[0] < PROMPT
    assert sum(r.result for r in runners) == 1
    assert ctx.stopped()
    guard.reset()


@pytest.mark.parametrize("post_first", [False, True], ids=["runners-first", "posts-first"])
def test_ready_handlers_run_in_parallel_on_idle_threads(
    make_ctx: Callable[..., IOContext], post_first: bool
) -> None:
    """docs/scheduler.md, "Nothing is stranded": while handlers are queued and threads are idle,
    the threads take them (the wake cascade), so 4 handlers that each wait
    for the other 3 all run at once on 4 threads.  A handler that blocks
    must not hold back ready work that idle threads could run."""
    ctx = make_ctx()
    guard = ctx.work_guard()
    threads = 4
    barrier = threading.Barrier(threads, timeout=5.0)
    met: list[bool] = []

    def meet() -> None:
        try:
            barrier.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)

    runners: list[Runner] = []
    if not post_first:
        runners = [start(ctx.run) for _ in range(threads)]
        time.sleep(0.2)
    for _ in range(threads):
        ctx.post(meet)
    if post_first:
        runners = [start(ctx.run) for _ in range(threads)]
    wait_until(lambda: len(met) == threads)
    guard.reset()
    join_all(runners)
    assert met == [True] * threads, "the handlers never ran concurrently"
    assert sum(r.result for r in runners) == threads


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_handlers_posting_handlers_chain(make_ctx: Callable[..., IOContext], threads: int) -> None:
    ctx = make_ctx()
    total = 10_000
    ran = bytearray(total)

    def link(i: int) -> None:
        ran[i] += 1
        if i + 1 < total:
            ctx.post(link, i + 1)

    ctx.post(link, 0)
    runners = [start(ctx.run) for _ in range(threads)]
    join_all(runners, timeout=45.0)
    assert sum(r.result for r in runners) == total
    assert ran.count(1) == total
    assert ctx.stopped()


def test_handlers_posting_handlers_chain_single_threaded(
    make_ctx: Callable[..., IOContext],
) -> None:
    ctx = make_ctx(1)
    total = 10_000
    ran = bytearray(total)

    def link(i: int) -> None:
        ran[i] += 1
        if i + 1 < total:
            ctx.executor.post(link, i + 1)

    ctx.post(link, 0)
    assert ctx.run() == total
    assert ran.count(1) == total
    assert ctx.stopped()


def test_many_threads_many_handlers_each_run_exactly_once(
    make_ctx: Callable[..., IOContext],
) -> None:
    threads = 8
    per_thread = 100_000
    total = threads * per_thread
    ctx = make_ctx()
    ran = bytearray(total)  # one slot per handler: 0 = lost, 2+ = ran twice

    def handler(i: int) -> None:
        ran[i] += 1

    def post_range(first: int) -> None:
        post = ctx.post
        for i in range(first, first + per_thread):
            post(handler, i)

    guard = ctx.work_guard()
    runners = [start(ctx.run) for _ in range(threads)]
    posters = [start(post_range, k * per_thread) for k in range(threads)]
    join_all(posters, timeout=50.0)
    guard.reset()
    join_all(runners, timeout=50.0)
    assert ran.count(1) == total, (
        f"{ran.count(0)} handlers never ran, {total - ran.count(0) - ran.count(1)} ran twice"
    )
    assert sum(r.result for r in runners) == total
    assert ctx.stopped()
