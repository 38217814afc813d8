"""SignalSet: construction, add/remove/clear, waits, cancellation, several
sets per signal, remembered signals, previous handlers put back, and
delivery whichever thread the OS picks: ``os.kill`` from another thread,
``pthread_kill`` at a runner, the ``kill`` command in a child process, with
the main thread in ``run()``, idle outside it, or busy in a handler.

Every test runs on every backend (and the hand-off tests on both
schedulers).  The signals used are SIGUSR1/SIGUSR2 (and SIGTERM, SIGINT
where the test is about them), each given a recording Python handler for
the test (``handlers`` fixture), so a signal that slips past a set can never
end the pytest process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext, SignalSet, StopSource, _interrupt, spawn
from corosio_py._signals import _HUB, _on_signal
from tests.unit.limits import JOIN, PATIENCE
from tests.unit.thread_helpers import start

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]

USR1 = int(signal.SIGUSR1)
USR2 = int(signal.SIGUSR2)
TERM = int(signal.SIGTERM)


class Recorder:
    """A Python signal handler that records the signals it got."""

    def __init__(self) -> None:
        self.got: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.got.append(signum)


@pytest.fixture
def handlers() -> Iterator[dict[int, Recorder]]:
    """Recording handlers for SIGUSR1, SIGUSR2 and SIGTERM during the test;
    afterwards the originals are back and no set holds a signal."""
    recorders = {signum: Recorder() for signum in (USR1, USR2, TERM)}
    originals = {signum: signal.signal(signum, rec) for signum, rec in recorders.items()}
    try:
        yield recorders
    finally:
        leftover = dict(_HUB.holders)
        for signum, original in originals.items():
            signal.signal(signum, original)
        with _HUB.lock:
            _HUB.sweep_locked()
        assert not leftover, f"a set still holds {leftover}"


def run_main(ctx: IOContext, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on ``ctx`` on this (the main) thread; its result."""
    task = spawn(ctx, coro)
    ctx.run()
    assert task.done(), "run() returned before the task finished"
    return task.result()


def later(delay: float, fn: Callable[..., Any], *args: Any) -> threading.Thread:
    """Call ``fn(*args)`` on a new thread after ``delay`` seconds."""

    def body() -> None:
        time.sleep(delay)
        fn(*args)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await corosio_py.sleep(0.001)


def waiting(sset: SignalSet, n: int = 1) -> Callable[[], bool]:
    """A condition: ``n`` tasks wait on ``sset``."""
    return lambda: len(sset._waiters) >= n


@pytest.fixture(params=[None, 1], ids=["default", "hint1"])
def hint(request: pytest.FixtureRequest) -> int | None:
    value: int | None = request.param
    return value


# ---------------------------------------------------------------- construction


def test_construction(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    empty = SignalSet(ctx)
    one = SignalSet(ctx, USR1)
    three = SignalSet(ctx, USR1, USR2, TERM)
    assert signal.getsignal(USR1) is _on_signal
    assert signal.getsignal(TERM) is _on_signal
    assert empty.context is ctx
    assert "SIGUSR2" in repr(three)
    for sset in (empty, one, three):
        sset.close()
    assert signal.getsignal(USR1) is handlers[USR1]
    assert signal.getsignal(TERM) is handlers[TERM]
    assert repr(one) == "<SignalSet closed>"


def test_add_remove_clear(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx)
    sset.add(USR1)
    sset.add(USR1)  # a no-op
    sset.add(USR2)
    sset.remove(USR2)
    assert signal.getsignal(USR2) is handlers[USR2]
    sset.remove(USR2)  # not held: a no-op
    assert signal.getsignal(USR1) is _on_signal
    sset.clear()
    sset.clear()
    assert signal.getsignal(USR1) is handlers[USR1]
    sset.add(USR1)  # usable again after clear()
    assert signal.getsignal(USR1) is _on_signal
    sset.close()
    sset.close()
    assert signal.getsignal(USR1) is handlers[USR1]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (-1, ValueError),
        (0, ValueError),
        (1000, ValueError),
        (int(signal.SIGKILL), ValueError),
        (int(signal.SIGSTOP), ValueError),
        ("SIGUSR1", TypeError),
        (True, TypeError),
        (1.0, TypeError),
        (None, TypeError),
    ],
)
def test_bad_signal_numbers(
    make_ctx: Callable[..., IOContext], handlers: Any, bad: Any, error: type[Exception]
) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx)
    with pytest.raises(error):
        sset.add(bad)
    with pytest.raises(error):
        sset.remove(bad)
    with pytest.raises(error):
        SignalSet(ctx, USR1, bad)  # nothing of it stays held
    assert signal.getsignal(USR1) is handlers[USR1]
    sset.close()


def test_misuse(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    with pytest.raises(TypeError):
        SignalSet(object())  # type: ignore[arg-type]
    ctx = make_ctx()
    ctx.close()
    with pytest.raises(RuntimeError):
        SignalSet(ctx, USR1)
    assert signal.getsignal(USR1) is handlers[USR1]


def test_closed_set(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    sset.close()
    with pytest.raises(OSError) as info:
        sset.add(USR2)
    assert info.value.errno == 9
    sset.remove(USR1)  # no-ops on a closed set
    sset.clear()
    sset.cancel()

    async def main() -> None:
        with pytest.raises(OSError):
            await sset.wait()

    run_main(ctx, main())


# ---------------------------------------------------------------- waits


def test_wait_with_signal(make_ctx: Callable[..., IOContext], handlers: Any, hint: Any) -> None:
    """The signal is raised by a task after a timer, on the thread running it."""
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)

    async def raiser() -> None:
        await corosio_py.sleep(0.01)
        signal.raise_signal(USR1)

    async def main() -> int:
        spawn(ctx, raiser())
        return await sset.wait()

    assert run_main(ctx, main()) == USR1
    assert handlers[USR1].got == []  # the set took it, not the previous handler
    sset.close()


def test_wait_with_different_signal(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1, TERM)

    async def main() -> int:
        later(0.01, os.kill, os.getpid(), TERM)
        return await sset.wait()

    assert run_main(ctx, main()) == TERM
    sset.close()
    assert handlers[TERM].got == []


def test_queued_signal_is_remembered_once(
    make_ctx: Callable[..., IOContext], handlers: Any, hint: Any
) -> None:
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1, USR2)
    # The watcher hands signals on in the order they came: once the barrier
    # set has TERM, the second USR1 has been handed on too (waiting only for
    # two remembered signals raced with it).
    barrier = SignalSet(ctx, TERM)
    signal.raise_signal(USR2)
    signal.raise_signal(USR1)
    signal.raise_signal(USR1)  # remembered once per number
    signal.raise_signal(TERM)

    async def main() -> list[int]:
        await wait_until(lambda: len(barrier._pending) == 1, "every signal handed on")
        assert len(sset._pending) == 2
        got = [await sset.wait(), await sset.wait()]  # oldest first, at once
        with pytest.raises(TimeoutError), corosio_py.timeout(0.05):
            await sset.wait()
        return got

    assert run_main(ctx, main()) == [USR2, USR1]
    sset.close()
    barrier.close()


def test_sequential_waits(make_ctx: Callable[..., IOContext], handlers: Any, hint: Any) -> None:
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)

    async def main() -> int:
        count = 0
        for _ in range(3):
            await corosio_py.sleep(0.002)
            signal.raise_signal(USR1)
            assert await sset.wait() == USR1
            count += 1
        return count

    assert run_main(ctx, main()) == 3
    sset.close()


def test_several_sets_and_waiters(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    """Two sets on one signal both get it; two waiters on one set both complete."""
    ctx = make_ctx()
    first = SignalSet(ctx, USR1)
    second = SignalSet(ctx, USR1, USR2)

    async def main() -> list[int]:
        tasks = [spawn(ctx, _wait(first)), spawn(ctx, _wait(second)), spawn(ctx, _wait(second))]
        await wait_until(lambda: waiting(first)() and waiting(second, 2)(), "three waiters")
        later(0, os.kill, os.getpid(), USR1)
        return [await task for task in tasks]

    assert run_main(ctx, main()) == [USR1, USR1, USR1]
    first.close()
    assert signal.getsignal(USR1) is _on_signal  # the second set still holds it
    second.close()
    assert signal.getsignal(USR1) is handlers[USR1]


async def _wait(sset: SignalSet) -> int:
    return await sset.wait()


# ---------------------------------------------------------------- cancellation


def test_cancel(make_ctx: Callable[..., IOContext], handlers: Any, hint: Any) -> None:
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)
    sset.cancel()  # no waiters: a no-op
    sset.cancel()

    async def main() -> int:
        waiter = spawn(ctx, _wait(sset))
        await wait_until(waiting(sset), "the waiter")
        sset.cancel()
        with pytest.raises(Cancelled):
            await waiter
        signal.raise_signal(USR1)  # after a cancel: remembered for the next wait
        return await sset.wait()

    assert run_main(ctx, main()) == USR1
    sset.close()


def test_task_cancel_and_stop_token(
    make_ctx: Callable[..., IOContext], handlers: Any, hint: Any
) -> None:
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)

    async def main() -> None:
        stopped = StopSource()
        stopped.request_stop()
        with pytest.raises(Cancelled):
            await sset.wait(stop_token=stopped.token)  # never starts
        source = StopSource()

        async def by_token() -> int:
            return await sset.wait(stop_token=source.token)

        waiter = spawn(ctx, by_token())
        await wait_until(waiting(sset), "the waiter")
        source.request_stop()
        with pytest.raises(Cancelled):
            await waiter
        waiter = spawn(ctx, _wait(sset))
        await wait_until(waiting(sset), "the waiter")
        waiter.cancel()
        with pytest.raises(Cancelled):
            await waiter
        assert not sset._waiters
        with pytest.raises(TypeError):
            await sset.wait(stop_token=object())  # type: ignore[arg-type]

    run_main(ctx, main())
    sset.close()


def test_close_cancels_waiters(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1, USR2)

    async def main() -> None:
        waiter = spawn(ctx, _wait(sset))
        await wait_until(waiting(sset), "the waiter")
        sset.close()
        with pytest.raises(Cancelled):
            await waiter

    run_main(ctx, main())
    assert signal.getsignal(USR1) is handlers[USR1]
    assert signal.getsignal(USR2) is handlers[USR2]


@pytest.mark.leaves_work_for_close("close() cancels a parked signal wait and closes the set")
def test_context_close_releases_everything(
    make_ctx: Callable[..., IOContext], handlers: Any, hint: Any
) -> None:
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)
    waiter = spawn(ctx, _wait(sset))
    ctx.run_for(0.05)  # the waiter parks; the wait is outstanding work
    assert not waiter.done()
    assert not ctx.stopped()
    ctx.close()
    assert waiter.cancelled()
    assert signal.getsignal(USR1) is handlers[USR1]
    with pytest.raises(OSError):
        sset.add(USR1)
    signal.raise_signal(USR1)  # the previous handler is back in charge
    assert handlers[USR1].got == [USR1]


# ---------------------------------------------------------------- previous handlers


def test_previous_handlers_restored(make_ctx: Callable[..., IOContext], handlers: Any) -> None:
    ctx = make_ctx()
    signal.signal(USR2, signal.SIG_IGN)
    first = SignalSet(ctx, USR1, USR2)
    second = SignalSet(ctx, USR1)
    first.close()
    assert signal.getsignal(USR1) is _on_signal
    assert signal.getsignal(USR2) == signal.SIG_IGN
    second.close()
    assert signal.getsignal(USR1) is handlers[USR1]


def test_a_handler_set_meanwhile_stays(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    """Code that replaced our handler keeps its own when the set lets go."""
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    mine = Recorder()
    signal.signal(USR1, mine)
    sset.close()
    assert signal.getsignal(USR1) is mine


def test_sigint_goes_to_the_set(make_ctx: Callable[..., IOContext]) -> None:
    """A set holding SIGINT gets Ctrl-C instead of KeyboardInterrupt; let go
    inside run(), the scheduler's Ctrl-C deferral is put back, not Python's
    default handler; outside run(), Python's default handler."""
    original = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ctx = make_ctx()
        sset = SignalSet(ctx, signal.SIGINT)

        async def main() -> tuple[int, Any]:
            later(0.01, os.kill, os.getpid(), signal.SIGINT)
            got = await sset.wait()
            sset.close()
            return got, signal.getsignal(signal.SIGINT)

        got, inside = run_main(ctx, main())
        assert got == signal.SIGINT
        assert inside is _interrupt._on_sigint
        sset = SignalSet(ctx, signal.SIGINT)
        sset.close()
        assert signal.getsignal(signal.SIGINT) is _interrupt._on_sigint
    finally:
        signal.signal(signal.SIGINT, original)


# ---------------------------------------------------------------- other threads


def test_new_signal_off_the_main_thread(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    """Taking a signal no set holds needs the main thread; one already held
    can be taken anywhere; one let go off the main thread is restored by the
    next set operation on the main thread."""
    ctx = make_ctx()
    held = SignalSet(ctx, USR1)

    def off_main() -> SignalSet:
        with pytest.raises(RuntimeError):
            SignalSet(ctx, USR2)
        other = SignalSet(ctx, USR1)  # already held: fine
        held.close()
        other.close()  # the last set lets go here: an orphan
        return other

    start(off_main).finish()
    assert signal.getsignal(USR2) is handlers[USR2]
    assert signal.getsignal(USR1) is _on_signal  # not restored yet
    SignalSet(ctx).clear()  # any set operation on the main thread settles it
    assert signal.getsignal(USR1) is handlers[USR1]


def test_orphan_restored_when_the_signal_arrives(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    start(sset.close).finish()
    assert signal.getsignal(USR1) is _on_signal
    signal.raise_signal(USR1)  # our handler plays the previous one and restores it
    assert handlers[USR1].got == [USR1]
    assert signal.getsignal(USR1) is handlers[USR1]
    again = SignalSet(ctx, USR1)  # taken back properly
    assert signal.getsignal(USR1) is _on_signal
    again.close()


def _runners(ctx: IOContext, n: int) -> list[Any]:
    return [start(ctx.run) for _ in range(n)]


def test_delivered_to_a_runner_thread_main_in_run(
    make_ctx: Callable[..., IOContext], handlers: Any, hint: Any
) -> None:
    """pthread_kill at a thread other than the main one, while the main
    thread is blocked in the reactor's OS wait."""
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR1)
    bystander = threading.Event()
    other = start(bystander.wait, 20)

    async def main() -> int:
        later(0.05, signal.pthread_kill, other.ident, USR1)
        return await sset.wait()

    assert run_main(ctx, main()) == USR1
    bystander.set()
    other.finish()
    sset.close()


def test_main_thread_idle_outside_run(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    """Four threads run the context; the main thread waits on an event that
    only the signal's task sets: the signal goes to one of the runners."""
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    done = threading.Event()

    async def main() -> None:
        assert await sset.wait() == USR1
        done.set()

    task = spawn(ctx, main())
    runners = _runners(ctx, 4)
    deadline = time.monotonic() + PATIENCE
    while not sset._waiters:
        assert time.monotonic() < deadline, "the waiter never parked"
        time.sleep(0.001)
    signal.pthread_kill(runners[2].ident, USR1)
    assert done.wait(PATIENCE), "the signal never reached the task"
    for runner in runners:
        runner.finish()
    task.result()
    sset.close()


def test_main_thread_busy_in_a_handler(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    """The main thread spins in a handler that ends only once the task woken
    by the signal (on another runner) says so."""
    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    done = threading.Event()
    killed = threading.Event()

    async def waiter() -> None:
        assert await sset.wait() == USR1
        done.set()

    def busy() -> None:
        deadline = time.monotonic() + PATIENCE
        while not sset._waiters:
            assert time.monotonic() < deadline
        os.kill(os.getpid(), USR1)
        killed.set()
        while not done.is_set():  # pure Python, never blocks
            assert time.monotonic() < deadline, "the signal never reached the task"

    spawn(ctx, waiter())
    runners = _runners(ctx, 3)
    ctx.post(busy)
    ctx.run()
    for runner in runners:
        runner.finish()
    assert killed.is_set() and done.is_set()
    sset.close()


def test_kill_from_a_child_process(
    make_ctx: Callable[..., IOContext], handlers: Any, hint: Any
) -> None:
    kill = shutil.which("kill")
    if kill is None:
        pytest.skip("no kill command")
    ctx = make_ctx(hint)
    sset = SignalSet(ctx, USR2)

    async def main() -> int:
        command = [kill, "-USR2", str(os.getpid())]
        child = later(0.01, lambda: subprocess.run(command, check=True))
        got = await sset.wait()
        child.join(JOIN)
        return got

    assert run_main(ctx, main()) == USR2
    sset.close()


def test_wakeup_fd_replaced_by_other_code(
    make_ctx: Callable[..., IOContext], handlers: Any
) -> None:
    """Another library installs its own wake-up fd: the signal still reaches
    the set (through our handler), and the other fd stays installed."""
    import socket

    ctx = make_ctx()
    sset = SignalSet(ctx, USR1)
    theirs, peer = socket.socketpair()
    theirs.setblocking(False)
    ours = signal.set_wakeup_fd(theirs.fileno())
    try:

        async def main() -> int:
            later(0.01, os.kill, os.getpid(), USR1)
            return await sset.wait()

        assert run_main(ctx, main()) == USR1
        assert signal.set_wakeup_fd(ours) == theirs.fileno()
    finally:
        sset.close()
        theirs.close()
        peer.close()
