"""Fixtures shared by the unit tests.

``fd_leak_check`` is module-scoped: a module opts in with
``pytestmark = pytest.mark.usefixtures("fd_leak_check")`` and fails at
teardown if it left more file descriptors open than it found, or if a
socket had to be closed by the garbage collector ("unclosed socket"
``ResourceWarning``).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest

from corosio_py import IOContext
from corosio_py._lockless import LocklessScheduler
from corosio_py._threaded import ThreadedScheduler
from tests.unit.limits import PROMPT

#: Where the process lists its open fds (Linux, then macOS/BSD).
_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def _fd_dir() -> str | None:
    for path in _FD_DIRS:
        if os.path.isdir(path):
            return path
    return None


def _open_fds(path: str) -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir(path):
        fd = int(name)
        try:
            fds[fd] = os.readlink(f"{path}/{name}")
        except OSError:
            continue  # the listing's own fd, already closed
    return fds


def _collect_unclosed() -> list[str]:
    """Run the GC and return the messages of unclosed-resource warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.fixture(scope="module")
def fd_leak_check() -> Iterator[None]:
    """Fail the module if it leaks file descriptors or unclosed sockets."""
    path = _fd_dir()
    if path is None:
        pytest.skip("no /proc/self/fd or /dev/fd to count open fds")
    _collect_unclosed()
    before = _open_fds(path)
    yield
    unclosed = _collect_unclosed()
    deadline = time.monotonic() + PROMPT
    while True:
        after = _open_fds(path)
        leaked = {fd: target for fd, target in after.items() if fd not in before}
        if len(after) <= len(before) or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # a helper thread may still be closing its fds
        unclosed += _collect_unclosed()
    problems = []
    if len(after) > len(before):
        problems.append(f"{len(after) - len(before)} more fds open: {leaked}")
    if unclosed:
        problems.append(f"garbage-collected unclosed resources: {unclosed}")
    if problems:
        pytest.fail("resource leak in this module: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def make_ctx(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., IOContext]]:
    """Build contexts on the backend under test; all are closed at teardown.

    A context must hold no outstanding work and no fd registered with its
    reactor when it is closed (by the test, or here at teardown) while no
    thread runs it: the test closed what it opened and let every operation
    finish.  A test whose point is what ``IOContext.close()`` does with work
    left behind says so with ``@pytest.mark.leaves_work_for_close("why")``.
    """
    made: list[IOContext] = []
    marker = request.node.get_closest_marker("leaves_work_for_close")
    if marker is not None and not marker.args:
        pytest.fail("@pytest.mark.leaves_work_for_close needs a reason", pytrace=False)
    checked = marker is None
    problems: list[str] = []
    close = IOContext.close

    # Checked on the way into close() (the test's call, from whichever
    # thread, or ours below): afterwards everything has been released.
    def checked_close(ctx: IOContext) -> None:
        if checked and any(ctx is m for m in made):
            problems.extend(f"{ctx!r}: {p}" for p in _leftovers(ctx))
        close(ctx)

    monkeypatch.setattr(IOContext, "close", checked_close)

    def make(concurrency_hint: int | None = None) -> IOContext:
        ctx = IOContext(concurrency_hint=concurrency_hint, backend=backend)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
    if problems:
        pytest.fail("the test left work behind: " + "; ".join(problems), pytrace=False)


def _leftovers(ctx: IOContext) -> list[str]:
    """What an idle, unclosed context still holds: outstanding work and fds
    registered with its reactor.  Nothing for a closed context or one a
    thread is still running (its state is in flux: not checked)."""
    sched = ctx._sched
    if sched.closed or _running(ctx):
        return []
    problems = []
    outstanding = sched.outstanding()
    if outstanding:
        problems.append(f"{outstanding} units of work outstanding")
    reactor = sched.reactor
    targets = getattr(reactor, "_targets", None)
    if targets:
        problems.append(f"fds {sorted(targets)} still registered with the reactor")
    return problems


def _running(ctx: IOContext) -> bool:
    """Whether a thread is inside one of ``ctx``'s ``run*`` calls."""
    sched = ctx._sched
    if isinstance(sched, ThreadedScheduler):
        with sched._lock:
            return bool(sched._frames)
    assert isinstance(sched, LocklessScheduler)
    return sched._entry.locked()


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escape any thread (helper threads included)."""
    errors: list[BaseException] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        errors.append(args.exc_value if args.exc_value is not None else RuntimeError("?"))

    monkeypatch.setattr(threading, "excepthook", hook)
    return errors


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leaves_work_for_close(reason): the test leaves work or open objects for"
        " IOContext.close() to release (what it checks); make_ctx does not check for leftovers",
    )
