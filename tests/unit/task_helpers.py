"""Helpers shared by the task, timer and cancellation tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import corosio_py as cp
from tests.unit.limits import JOIN, PROMPT


@contextlib.contextmanager
def served(ctx: cp.IOContext, threads: int = 1) -> Iterator[None]:
    """Run ``ctx`` on ``threads`` background threads for the block.

    The threads are in ``run()`` (kept there by a work guard) before the
    block starts, so work spawned in the block is shared between them; at
    the end the guard is released and the threads must return.
    """
    guard = ctx.work_guard()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            ctx.run()
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=serve, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(0.05)  # let them reach run()
    try:
        yield
    finally:
        guard.reset()
        for worker in workers:
            worker.join(JOIN)
    assert not any(w.is_alive() for w in workers), "a thread did not return from run()"
    if errors:
        raise errors[0]


def wait_done(task: cp.Task[Any], limit: float = PROMPT) -> None:
    """Poll until ``task`` is done (it runs on other threads)."""
    deadline = time.monotonic() + limit
    while not task.done():
        assert time.monotonic() < deadline, f"{task!r} did not finish in time"
        time.sleep(0.0005)


async def value_after(value: Any, delay: float = 0.0) -> Any:
    """Return ``value`` after sleeping ``delay`` seconds."""
    await cp.sleep(delay)
    return value


async def raise_after(error: BaseException, delay: float = 0.0) -> Any:
    """Raise ``error`` after sleeping ``delay`` seconds."""
    await cp.sleep(delay)
    raise error
