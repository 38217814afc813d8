"""corosio_py.testing.wait_all_tasks_blocked: the "every task has parked"
handshake the other tests use instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import corosio_py as cp
from corosio_py.testing import socket_pair, wait_all_tasks_blocked
from tests.unit.limits import PATIENCE
from tests.unit.sync_helpers import settle
from tests.unit.task_helpers import served, wait_done
from tests.unit.thread_helpers import start

pytestmark = pytest.mark.timeout(60)

#: How long a test that expects a timeout lets the helper poll.
SHORT = 0.2


def test_returns_once_tasks_park_on_events(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    event = cp.Event()
    tasks = [cp.spawn(ctx, event.wait()) for _ in range(5)]
    with served(ctx, 2):
        wait_all_tasks_blocked(ctx, PATIENCE)
        assert not any(t.done() for t in tasks)
        event.set()
        for task in tasks:
            wait_done(task)
    assert all(t.result() is True for t in tasks)


def test_single_thread_context_watched_from_another_thread(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    """concurrency_hint=1: this thread runs the context; another one waits
    for the tasks to block, then wakes them."""
    ctx = make_ctx(1)
    event = cp.Event()
    tasks = [cp.spawn(ctx, event.wait()) for _ in range(3)]
    seen: list[bool] = []

    def watch() -> None:
        wait_all_tasks_blocked(ctx)
        seen.append(any(t.done() for t in tasks))
        event.set()

    watcher = start(watch)
    ctx.run()
    watcher.finish()
    assert seen == [False]
    assert all(t.result() is True for t in tasks)


def test_returns_once_a_read_parks(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    a, b = socket_pair(ctx)
    buf = bytearray(4)

    async def read() -> int:
        return await b.read_some(buf)

    task = cp.spawn(ctx, read())
    with served(ctx, 1):
        wait_all_tasks_blocked(ctx)
        assert not task.done()
        cp.spawn(ctx, _write(a))
        wait_done(task)
    assert task.result() == 4 and bytes(buf) == b"ping"
    a.close()
    b.close()


async def _write(sock: cp.TCPSocket) -> None:
    await sock.write_some(b"ping")


def test_returns_at_once_without_tasks(make_ctx: Callable[..., cp.IOContext]) -> None:
    wait_all_tasks_blocked(make_ctx())


def test_returns_after_tasks_finished(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()

    async def nothing() -> int:
        return 1

    task = cp.spawn(ctx, nothing())
    ctx.run()
    wait_all_tasks_blocked(ctx)
    assert task.result() == 1


def test_times_out_while_a_task_keeps_running(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    stop = threading.Event()

    async def spin() -> None:
        while not stop.is_set():
            await cp.yield_now()

    task = cp.spawn(ctx, spin())
    with served(ctx, 1):
        with pytest.raises(TimeoutError):
            wait_all_tasks_blocked(ctx, SHORT)
        stop.set()
        wait_done(task)


def test_times_out_while_a_first_step_is_queued(make_ctx: Callable[..., cp.IOContext]) -> None:
    """Nothing runs the context: the spawned task never starts."""
    ctx = make_ctx()
    event = cp.Event()
    cp.spawn(ctx, event.wait())
    with pytest.raises(TimeoutError):
        wait_all_tasks_blocked(ctx, SHORT)
    settle(ctx)  # now it parks
    wait_all_tasks_blocked(ctx)
    event.set()
    settle(ctx)


def test_bad_arguments(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    with pytest.raises(TypeError):
        wait_all_tasks_blocked(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wait_all_tasks_blocked(ctx, "1")  # type: ignore[arg-type]
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            wait_all_tasks_blocked(ctx, bad)


def test_refused_inside_the_context(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()

    async def main() -> None:
        wait_all_tasks_blocked(ctx)

    task = cp.spawn(ctx, main())
    ctx.run()
    with pytest.raises(RuntimeError, match="inside"):
        task.result()


def test_refused_on_a_closed_context(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    ctx.close()
    with pytest.raises(RuntimeError, match="closed"):
        wait_all_tasks_blocked(ctx)
