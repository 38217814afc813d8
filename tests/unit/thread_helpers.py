"""Runner threads shared by the scheduler tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.unit.limits import JOIN


class Runner(threading.Thread):
    """A daemon thread calling ``fn(*args)``; keeps the result or the error."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True)
        self._fn = fn
        self._args = args
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.result = self._fn(*self._args)
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


    def finish(self) -> Any:
        """Join (bounded); re-raise the thread's error; return its result."""
        self.join(JOIN)
        assert not self.is_alive(), "the thread did not return"
        if self.error is not None:
            raise self.error
        return self.result


def start(fn: Callable[..., Any], *args: Any) -> Runner:
    runner = Runner(fn, *args)
    runner.start()
    return runner


def join_all(threads: list[Runner], timeout: float = JOIN) -> None:
    """Join every thread within ``timeout`` in total; fail on a hang or error."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t for t in threads if t.is_alive()]
    assert not hung, f"{len(hung)} of {len(threads)} threads did not return in {timeout}s"
    errors = [t.error for t in threads if t.error is not None]
    if errors:
        raise errors[0]


def wait_until(predicate: Callable[[], bool], timeout: float = JOIN) -> None:
    """Poll ``predicate`` every millisecond; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)
