"""Nothing lost, nothing crashes: the scheduler's side of the reliability
defects of issue 10, on every backend and both schedulers.

* any deadline works (30 days, 1e9 s, infinity), again after ``restart()``;
* Ctrl-C in a multi-threaded ``run()`` raises ``KeyboardInterrupt`` on the
  main thread and nothing else, wherever it lands (run in a subprocess:
  ``sigint_rounds.py``);
* ``close()`` from another thread or from a handler waits until no handler
  runs; a closed context refuses new work and its ``run*`` return 0;
* a context dropped unclosed releases its descriptors with a
  ``ResourceWarning``;
* a reactor pass delivers every readiness report and expires the due timers
  even when one target raises;
* a timed run whose deadline has passed still runs the ready handlers;
* a ``concurrency_hint=1`` context refuses a second thread in ``run*``.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import IOContext
from corosio_py._reactor import READ
from corosio_py.testing import socket_pair
from tests.unit.limits import PROMPT
from tests.unit.thread_helpers import start

pytestmark = pytest.mark.timeout(60)

HINTS = pytest.mark.parametrize("hint", [None, 1], ids=["default", "hint1"])
#: The Ctrl-C program run in a subprocess, and its time limit.
SIGINT_SCRIPT = Path(__file__).with_name("sigint_rounds.py")
SCRIPT_TIMEOUT = 50.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = PROMPT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.0005)


# --------------------------------------------------------------------------
# any deadline works


async def _read_then_stop(ctx: IOContext, sock: cio.TCPSocket) -> int:
    n = await sock.read_some(bytearray(16))
    ctx.stop()
    return n


async def _write(sock: cio.TCPSocket) -> int:
    return await sock.write_some(b"x")


async def _sleep_30_days(idle: cio.TCPSocket) -> None:
    await cio.sleep(30 * 86400)


async def _sleep_forever(idle: cio.TCPSocket) -> None:
    await cio.sleep(math.inf)


async def _timeout_1e9(idle: cio.TCPSocket) -> None:
    with cio.timeout(1e9):
        await idle.read_some(bytearray(16))  # never readable


async def _timer_at_infinity(idle: cio.TCPSocket) -> None:
    timer = cio.Timer(cio.current_executor().context)
    timer.expires_at(math.inf)
    await timer.wait()


LONG_WAITS: dict[str, Callable[[cio.TCPSocket], Coroutine[Any, Any, None]]] = {
    "sleep_30_days": _sleep_30_days,
    "sleep_inf": _sleep_forever,
    "timeout_1e9": _timeout_1e9,
    "timer_at_inf": _timer_at_infinity,
}


@HINTS
@pytest.mark.parametrize("kind", list(LONG_WAITS))
def test_far_deadline_lets_run_block_and_restart(
    make_ctx: Callable[..., IOContext], hint: int | None, kind: str
) -> None:
    """With a wait of 30 days, 1e9 s or forever pending, ``run()`` blocks in
    the OS (bounded by that deadline) without ``OverflowError``, round after
    round of ``restart()``; cancelling the wait then lets ``run()`` end."""
    ctx = make_ctx(hint)
    a, b = socket_pair(ctx)
    idle, idle_peer = socket_pair(ctx)
    waiter = cio.spawn(ctx, LONG_WAITS[kind](idle))
    for _ in range(3):
        # The reader parks, the writer completes it: in between nothing is
        # queued, so the reactor blocks with the far deadline as its bound.
        reader = cio.spawn(ctx, _read_then_stop(ctx, a))
        cio.spawn(ctx, _write(b))
        ctx.restart()
        ctx.run()
        assert reader.result() == 1
    assert not waiter.done()
    waiter.cancel()
    ctx.restart()
    ctx.run()  # the cancelled wait was the last work
    assert waiter.done()
    ctx.restart()
    ran: list[int] = []
    ctx.post(ran.append, 1)
    assert ctx.run() == 1
    assert ran == [1]
    for sock in (a, b, idle, idle_peer):
        sock.close()


@HINTS
@pytest.mark.parametrize("seconds", [1e9, 1e12])
def test_run_for_far_deadline_returns_when_work_finishes(
    make_ctx: Callable[..., IOContext], hint: int | None, seconds: float
) -> None:
    ctx = make_ctx(hint)
    a, b = socket_pair(ctx)
    for _ in range(2):
        reader = cio.spawn(ctx, a.read_some(bytearray(16)))
        cio.spawn(ctx, _write(b))
        started = time.monotonic()
        assert ctx.run_for(seconds) >= 2
        assert time.monotonic() - started < PROMPT
        assert reader.result() == 1
        ctx.restart()
    a.close()
    b.close()


@HINTS
def test_run_for_far_deadline_returns_on_stop_from_another_thread(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    for _ in range(2):
        guard = ctx.work_guard()
        inside = threading.Event()
        ctx.post(inside.set)

        def stop_when_inside(inside: threading.Event = inside) -> None:
            assert inside.wait(PROMPT)
            ctx.stop()

        stopper = start(stop_when_inside)
        started = time.monotonic()
        assert ctx.run_for(1e9) == 1
        assert time.monotonic() - started < PROMPT
        stopper.finish()
        guard.reset()
        ctx.restart()
    ctx.post(lambda: None)
    assert ctx.run() == 1


# --------------------------------------------------------------------------
# Ctrl-C (in a subprocess: the signal must not reach pytest)


def _run_sigint_script(
    mode: str,
    backend: str,
    rounds: int,
    *,
    gil: str | None = None,
    hint: int | None = None,
) -> dict[str, Any]:
    seed = random.randrange(1 << 30)
    env = dict(os.environ)
    package_root = str(Path(cio.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    if gil is not None:
        env["COROSIO_ASSUME_GIL"] = gil
    argv = [sys.executable, str(SIGINT_SCRIPT), mode, backend, str(rounds), str(seed)]
    if hint is not None:
        argv.append(str(hint))
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        pytest.fail(f"{mode} rounds (seed {seed}) hung for {SCRIPT_TIMEOUT}s; output:\n{out!s}")
    report = f"seed {seed}, exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, report
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["rounds"] == rounds, report
    return summary


@pytest.mark.parametrize("gil", ["1", "0"], ids=["gil", "nogil"])
def test_ctrl_c_while_main_thread_is_busy_in_multithreaded_run(backend: str, gil: str) -> None:
    """4 runners on busy handlers, tasks doing socket I/O and sleeps; SIGINT
    at random moments: each round the main thread's ``run()`` raises
    ``KeyboardInterrupt`` (never ``RuntimeError('release unlocked lock')``),
    the other runners see nothing, and ``close()`` ends them all promptly."""
    _run_sigint_script("busy", backend, 40, gil=gil)


@pytest.mark.parametrize("gil", ["1", "0"], ids=["gil", "nogil"])
def test_ctrl_c_while_main_thread_waits_for_work(backend: str, gil: str) -> None:
    """The main thread idle in ``run()`` while the others are busy:
    ``KeyboardInterrupt`` within a second of the signal."""
    _run_sigint_script("idle", backend, 8, gil=gil)


@HINTS
def test_ctrl_c_while_main_thread_is_blocked_in_the_reactor(backend: str, hint: int | None) -> None:
    """The main thread alone in ``run()``, blocked in the OS wait:
    ``KeyboardInterrupt`` within a second, and ``run()`` works again after."""
    _run_sigint_script("reactor", backend, 8, hint=hint)


# --------------------------------------------------------------------------
# close() from any thread


class _ErrorLog(logging.Handler):
    """Collects corosio_py's error records (a coroutine closed while it ran
    is logged, not raised)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]!r}"
        self.records.append(text)


@pytest.fixture
def error_log() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    logger = logging.getLogger("corosio_py")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.mark.leaves_work_for_close("close() ends a running task and closes its sockets")
@pytest.mark.parametrize("then", ["yield", "read", "sleep"])
def test_close_from_another_thread_waits_for_the_running_handler(
    make_ctx: Callable[..., IOContext], error_log: _ErrorLog, then: str
) -> None:
    """The coroutine is never closed while it executes; ``close()`` returns
    after the handler did; the task's outcome, once reported, never changes."""
    ctx = make_ctx()
    idle, idle_peer = socket_pair(ctx)
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []
    outcomes: list[tuple[bool, BaseException | None]] = []

    async def body() -> None:
        try:
            entered.set()
            assert release.wait(PROMPT)  # blocks the step while close() is called
            order.append("step-end")
            if then == "yield":
                await cio.yield_now()
            elif then == "read":
                await idle.read_some(bytearray(16))
            else:
                await cio.sleep(0.001)
            order.append("resumed")
        finally:
            order.append("finally")

    task = cio.spawn(ctx, body())
    task.add_done_callback(lambda t: outcomes.append((t.cancelled(), t._exception)))
    runner = start(ctx.run)
    assert entered.wait(PROMPT)

    def close() -> None:
        ctx.close()
        order.append("closed")

    closer = start(close)
    wait_until(lambda: ctx._sched.closed, "close() to begin")
    assert closer.is_alive(), "close() returned while a handler was running"
    release.set()
    closer.finish()
    assert runner.finish() == 1
    assert order == ["step-end", "finally", "closed"]
    assert task.cancelled()
    assert len(outcomes) == 1 and outcomes[0][0]
    assert not error_log.records, error_log.records
    # Nothing may finish the task again later.
    ctx.restart()
    assert ctx.run() == 0
    assert task.cancelled() and len(outcomes) == 1
    assert not idle.is_open and not idle_peer.is_open


@pytest.mark.leaves_work_for_close("close() ends tasks that never finish by themselves")
def test_close_from_another_thread_with_many_runners(
    make_ctx: Callable[..., IOContext], error_log: _ErrorLog
) -> None:
    """4 runners, tasks suspending and resuming all the time, ``close()``
    from outside: every runner returns, every task is reported once."""
    ctx = make_ctx()
    outcomes: dict[int, int] = {}
    lock = threading.Lock()

    async def churn(i: int) -> None:
        while True:
            await cio.yield_now()
            await cio.sleep(0.0001)

    def count(task: cio.Task[None]) -> None:
        with lock:
            outcomes[id(task)] = outcomes.get(id(task), 0) + 1

    tasks = [cio.spawn(ctx, churn(i)) for i in range(40)]
    for task in tasks:
        task.add_done_callback(count)
    runners = [start(ctx.run) for _ in range(4)]
    wait_until(lambda: ctx._sched.outstanding() > 0, "the runners to start")
    time.sleep(0.05)  # let them churn (not a synchronisation)
    ctx.close()
    for runner in runners:
        runner.finish()
    assert all(task.cancelled() for task in tasks)
    assert sorted(outcomes.values()) == [1] * len(tasks)
    assert not error_log.records, error_log.records


@pytest.mark.leaves_work_for_close("close() cancels a parked read and closes its sockets")
@HINTS
def test_close_from_inside_a_handler_finishes_after_it_returns(
    make_ctx: Callable[..., IOContext], error_log: _ErrorLog, hint: int | None
) -> None:
    ctx = make_ctx(hint)
    a, b = socket_pair(ctx)
    order: list[str] = []

    async def parked() -> None:
        try:
            await a.read_some(bytearray(16))
        finally:
            order.append("parked-finally")

    async def closer() -> str:
        ctx.close()
        # The shutdown waits for this handler: nothing is closed yet.
        order.append(f"after-close open={a.is_open}")
        return "done"

    waiting = cio.spawn(ctx, parked())
    assert ctx.poll() == 1  # it parks
    closing = cio.spawn(ctx, closer())
    ctx.restart()
    ctx.run()
    assert order == ["after-close open=True", "parked-finally"]
    assert closing.result() == "done"
    assert waiting.cancelled()
    assert not a.is_open and not b.is_open
    assert not error_log.records, error_log.records


@pytest.mark.leaves_work_for_close("close() abandons a parked read and closes its socket")
@HINTS
def test_closed_context_refuses_work_and_runs_nothing(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    a, _ = socket_pair(ctx)
    cio.spawn(ctx, a.read_some(bytearray(16)))
    ctx.poll()
    ctx.close()
    with pytest.raises(RuntimeError):
        ctx.work_guard()
    with pytest.raises(RuntimeError):
        ctx.executor.on_work_started()
    with pytest.raises(RuntimeError):
        ctx.post(lambda: None)
    with pytest.raises(RuntimeError):
        ctx.executor.post(lambda: None)

    async def never() -> None:
        raise AssertionError("a task spawned on a closed context ran")

    coro = never()
    with pytest.raises(RuntimeError):
        cio.spawn(ctx, coro)
    ctx.restart()
    assert ctx.run_for(0.01) == 0
    assert ctx.run_one_for(0.01) == 0
    assert ctx.run() == 0
    assert ctx.poll() == 0
    assert ctx.stopped()


# --------------------------------------------------------------------------
# a context dropped unclosed


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@HINTS
def test_unclosed_contexts_release_their_descriptors_with_a_warning(
    backend: str, hint: int | None
) -> None:
    gc.collect()
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(50):
            IOContext(concurrency_hint=hint, backend=backend)
        gc.collect()
    after = _open_fds()
    unclosed = [
        w
        for w in caught
        if issubclass(w.category, ResourceWarning) and "IOContext" in str(w.message)
    ]
    assert after <= before, f"{after - before} descriptors leaked by 50 unclosed contexts"
    assert len(unclosed) == 50


# --------------------------------------------------------------------------
# a reactor pass where one target raises


class _OnReadyError(Exception):
    """What the failing readiness target raises."""


class _FailingTarget:
    """A readiness target whose first read report raises."""

    def __init__(self) -> None:
        self.raised = 0

    def wants_read(self) -> bool:
        return not self.raised

    def wants_write(self) -> bool:
        return False

    def wants_error(self) -> bool:
        return False

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        if bits & READ and not self.raised:
            self.raised += 1
            raise _OnReadyError("on_ready failed")


def _parked_read(sock: cio.TCPSocket) -> bool:
    desc = sock._desc
    assert desc is not None
    with desc.lock:
        return desc.reads.op is not None


@HINTS
def test_reactor_pass_delivers_everything_when_a_target_raises(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    # Made and registered first: level-triggered backends report it first.
    bad_r, bad_w = socket.socketpair()
    bad_r.setblocking(False)
    target = _FailingTarget()
    reactor = ctx._sched.reactor
    reactor.register(bad_r.fileno(), target)
    a, b = socket_pair(ctx)
    try:
        reader = cio.spawn(ctx, a.read_some(bytearray(16)))
        sleeper = cio.spawn(ctx, cio.sleep(0.02))
        ctx.poll()
        assert _parked_read(a) and not sleeper.done()
        bad_w.send(b"!")  # first: epoll reports readiness in arrival order
        os.write(b.fileno(), b"data")
        time.sleep(0.03)  # the sleep is due by the next pass (not a handshake)
        ctx.restart()
        with pytest.raises(_OnReadyError):
            ctx.run()
        assert target.raised == 1
        # The failing pass delivered the read and expired the timer.
        assert not _parked_read(a), "the read's readiness was lost with the error"
        assert ctx._sched.timers.next_deadline() is None, "the due timer was skipped"
        ctx.restart()
        ctx.run_for(PROMPT)  # raises nothing more; ends when the work is done
        assert reader.result() == 4
        assert sleeper.done() and sleeper.result() is None
        ctx.restart()
        ctx.post(lambda: None)
        assert ctx.run() == 1
    finally:
        reactor.deregister(bad_r.fileno())
        bad_r.close()
        bad_w.close()
        a.close()
        b.close()


# --------------------------------------------------------------------------
# a timed run past its deadline runs the ready handlers


@HINTS
@pytest.mark.parametrize("call", ["run_for_0", "run_until_past"])
def test_timed_run_past_its_deadline_runs_ready_handlers(
    make_ctx: Callable[..., IOContext], hint: int | None, call: str
) -> None:
    ctx = make_ctx(hint)
    ran: list[int] = []
    for i in range(3):
        ctx.post(ran.append, i)
    if call == "run_for_0":
        n = ctx.run_for(0)
    else:
        n = ctx.run_until(time.monotonic() - 1)
    assert (n, ran) == (3, [0, 1, 2])


@HINTS
def test_run_one_for_zero_runs_one_ready_handler(
    make_ctx: Callable[..., IOContext], hint: int | None
) -> None:
    ctx = make_ctx(hint)
    ran: list[int] = []
    for i in range(3):
        ctx.post(ran.append, i)
    assert ctx.run_one_for(0) == 1
    assert ran == [0]
    assert ctx.poll() == 2
    assert ran == [0, 1, 2]


# --------------------------------------------------------------------------
# concurrency_hint=1 from two threads


@pytest.mark.parametrize("second", ["run", "run_one", "run_for", "poll"])
def test_hint1_refuses_a_second_thread_and_the_first_is_unharmed(
    make_ctx: Callable[..., IOContext], second: str
) -> None:
    ctx = make_ctx(1)
    handlers = 200
    inside = threading.Event()
    attempted = threading.Event()
    ran: list[int] = []

    def handler(i: int) -> None:
        ran.append(i)
        if i == handlers // 2:
            inside.set()
            assert attempted.wait(PROMPT)

    for i in range(handlers):
        ctx.post(handler, i)
    first = start(ctx.run)
    assert inside.wait(PROMPT)
    try:
        calls: dict[str, Callable[[], int]] = {
            "run": ctx.run,
            "run_one": ctx.run_one,
            "run_for": lambda: ctx.run_for(1.0),
            "poll": ctx.poll,
        }
        with pytest.raises(RuntimeError):
            calls[second]()
    finally:
        attempted.set()
    assert first.finish() == handlers
    assert ran == list(range(handlers))
    # The first thread has left: another thread may run it now.
    ctx.restart()
    ctx.post(ran.append, -1)
    assert ctx.run() == 1
