"""Helpers shared by the coordination-primitive tests."""

from __future__ import annotations

from typing import Any

import corosio_py as cp


def settle(ctx: cp.IOContext) -> int:
    """Run every ready handler on this thread (no blocking); return how many.

    The context stops itself whenever its work runs out, so it is restarted
    before each pass, and left restarted: ready for ``run()``.
    """
    total = 0
    while True:
        ctx.restart()
        ran = ctx.poll()
        if not ran:
            ctx.restart()
            return total
        total += ran


def outcome(task: cp.Task[Any]) -> object:
    """The task's result, ``"cancelled"``, or its exception (it must be done)."""
    assert task.done(), f"{task!r} is still pending"
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return error if error is not None else task.result()
