"""to_thread(): a blocking function on a helper thread, its outcome handed back.

What they pin down (the ``to_thread`` docstring): the function
never runs on a thread inside ``run()``, the task resumes with its result
or error, and a cancelled wait abandons the result.  Every test runs once
per reactor backend.
"""

from __future__ import annotations

import contextvars
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import corosio_py as cp
from corosio_py import _workers
from tests.unit.limits import PATIENCE, PROMPT
from tests.unit.task_helpers import served, wait_done
from tests.unit.tcp_helpers import run, until
from tests.unit.thread_helpers import start

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]


_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


class Gate:
    """A blocking function that waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls = 0

    def __call__(self, value: Any = "done") -> Any:
        self.calls += 1
        self.entered.set()
        if not self.opened.wait(20):
            raise AssertionError("the gate was never opened")
        return value


@pytest.fixture
def gate() -> Iterator[Gate]:
    blocker = Gate()
    yield blocker
    blocker.opened.set()  # never leave a helper thread blocked
    assert _workers.settle(PATIENCE)


def _settled(ctx: cp.IOContext, errors: list[BaseException]) -> None:
    """Every helper call handed back or dropped; nothing escaped, nothing counted."""
    assert _workers.settle(PATIENCE)
    assert errors == []
    assert ctx._sched.outstanding() == 0


# ---------------------------------------------------------------- results and errors


def test_returns_the_result_with_args_and_kwargs(backend: str) -> None:
    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    async def main() -> int:
        return await cp.to_thread(add, 2, 3, scale=10)

    assert run(backend, main) == 50


def test_the_function_error_is_raised_at_the_await(backend: str) -> None:
    class Stop(BaseException):
        """Not an Exception: still delivered, never lost on the helper thread."""

    def fail(error: BaseException) -> None:
        raise error

    async def main() -> None:
        with pytest.raises(ValueError, match="bad value"):
            await cp.to_thread(fail, ValueError("bad value"))
        with pytest.raises(Stop):
            await cp.to_thread(fail, Stop())
        with pytest.raises(OSError):
            await cp.to_thread(os.close, -1)  # a real blocking call failing

    run(backend, main)


def test_a_non_callable_is_a_type_error_at_the_await(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="callable"):
            await cp.to_thread(42)  # type: ignore[arg-type]

    run(backend, main)


def test_context_variables_are_copied(backend: str) -> None:
    def read_and_set() -> str:
        seen = _var.get()
        _var.set("set in the helper")
        return seen

    async def main() -> tuple[str, str]:
        _var.set("set in the task")
        seen = await cp.to_thread(read_and_set)
        return seen, _var.get()

    assert run(backend, main) == ("set in the task", "set in the task")


# ---------------------------------------------------------------- threads


def test_never_runs_on_a_run_thread_with_four_runners(backend: str) -> None:
    """Four threads in ctx.run(): each call runs on a helper thread, and the
    task resumes on one of the runners."""
    where: list[tuple[bool, int]] = []
    lock = threading.Lock()

    def probe(ctx: cp.IOContext) -> int:
        with lock:
            where.append((ctx.executor.running_in_this_thread(), threading.get_ident()))
        time.sleep(0.001)  # a blocking call, so that several overlap
        return threading.get_ident()

    async def one(ctx: cp.IOContext) -> tuple[int, bool]:
        helper = await cp.to_thread(probe, ctx)
        return helper, ctx.executor.running_in_this_thread()

    ctx = cp.IOContext(backend=backend)
    runner_ids: set[int] = set()
    with served(ctx, threads=4):

        def note_runner() -> None:
            with lock:
                runner_ids.add(threading.get_ident())

        for _ in range(16):
            ctx.post(note_runner)
        tasks = [cp.spawn(ctx, one(ctx)) for _ in range(48)]
        for task in tasks:
            wait_done(task, 30)
    outcomes = [task.result() for task in tasks]
    ctx.close()
    assert len(where) == 48
    assert not any(in_run for in_run, _ in where)
    assert all(resumed_in_run for _, resumed_in_run in outcomes)
    assert not {helper for helper, _ in outcomes} & runner_ids
    assert threading.get_ident() not in {helper for helper, _ in outcomes}


def test_the_context_serves_other_tasks_while_the_function_blocks(
    backend: str, gate: Gate
) -> None:
    """One runner thread: the call blocks until another *task* opens the gate
    (had it run on the runner, this would deadlock)."""

    async def main() -> str:
        waiter = cp.spawn(cp.current_executor(), cp.to_thread(gate, "opened"))
        await until(gate.entered.is_set, "the call to start")
        await cp.sleep(0.005)  # timers still fire meanwhile
        assert not waiter.done()
        gate.opened.set()
        return await waiter

    assert run(backend, main) == "opened"


def test_run_does_not_return_while_a_call_is_pending(backend: str, gate: Gate) -> None:
    """The waiting task counts as outstanding work: run() keeps going."""
    ctx = cp.IOContext(backend=backend)
    task = cp.spawn(ctx, cp.to_thread(gate, "late"))
    runner = start(ctx.run)
    assert gate.entered.wait(PROMPT)
    assert ctx._sched.outstanding() >= 1
    runner.join(0.05)
    assert runner.is_alive(), "run() returned while the call was pending"
    gate.opened.set()
    runner.finish()
    assert task.result() == "late"
    assert ctx._sched.outstanding() == 0
    ctx.close()


def test_more_calls_than_pool_threads_all_complete(backend: str) -> None:
    """Calls beyond the pool's size queue for a free thread."""

    def square(n: int) -> int:
        time.sleep(0.001)
        return n * n

    async def main() -> list[int]:
        return await cp.gather(*(cp.to_thread(square, n) for n in range(100)))

    assert cp.run(main(), threads=4, backend=backend) == [n * n for n in range(100)]


# ---------------------------------------------------------------- cancellation


def test_task_cancel_abandons_the_result(
    backend: str, gate: Gate, thread_errors: list[BaseException]
) -> None:
    ctx = cp.IOContext(backend=backend)

    async def main() -> None:
        waiter = cp.spawn(ctx, cp.to_thread(gate, "abandoned"))
        await until(gate.entered.is_set, "the call to start")
        assert waiter.cancel()
        with pytest.raises(cp.Cancelled):
            await waiter  # at once, while the function still blocks
        assert not gate.opened.is_set()

    main_task = cp.spawn(ctx, main())
    ctx.run()
    main_task.result()
    gate.opened.set()
    _settled(ctx, thread_errors)  # the late result posted nothing
    assert gate.calls == 1
    ctx.close()


def test_timeout_and_wait_for_abandon_the_result(backend: str, gate: Gate) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError), cp.timeout(0.02):
            await cp.to_thread(gate)
        with pytest.raises(TimeoutError):
            await cp.wait_for(cp.to_thread(gate), 0.02)

    run(backend, main)
    assert gate.calls == 2


def test_a_pending_cancel_means_the_function_never_runs(backend: str) -> None:
    calls: list[int] = []

    async def main() -> None:
        task = cp.current_task()
        assert task is not None
        task.cancel()  # lands at the next suspension: the call never starts
        with pytest.raises(cp.Cancelled):
            await cp.to_thread(calls.append, 1)

    run(backend, main)
    assert _workers.settle(PATIENCE)
    assert calls == []


@pytest.mark.parametrize("hint", [None, 1], ids=["threaded", "hint1"])
def test_close_abandons_a_pending_call(
    backend: str, hint: int | None, gate: Gate, thread_errors: list[BaseException]
) -> None:
    ctx = cp.IOContext(concurrency_hint=hint, backend=backend)
    finalized: list[bool] = []

    async def call() -> None:
        try:
            await cp.to_thread(gate)
        finally:
            finalized.append(True)

    task = cp.spawn(ctx, call())
    while not gate.entered.is_set():
        ctx.run_one_for(0.01)
    ctx.close()
    assert finalized == [True]
    assert task.cancelled()
    gate.opened.set()
    _settled(ctx, thread_errors)


def test_cancel_races_completion_with_four_runners(
    backend: str, monkeypatch: pytest.MonkeyPatch, thread_errors: list[BaseException]
) -> None:
    """A cancel from a foreign thread races the function's return: each call
    completes exactly once (COROSIO_DEBUG checks), with its result or with
    ``Cancelled`` (the result abandoned), and run() accounts for all work."""
    monkeypatch.setenv("COROSIO_DEBUG", "1")
    rng = random.Random(1107)
    helper_rng = random.Random(1109)  # used by the helper threads only
    rounds = 300
    ctx = cp.IOContext(backend=backend)
    meet = threading.Barrier(2, timeout=PROMPT)
    ran = [0] * rounds

    def work(i: int) -> int:
        ran[i] += 1
        meet.wait()  # the test thread cancels from here on
        # Vary where the return lands against the cancel; a sleep lets the
        # cancelling thread run under the GIL too.
        pause = helper_rng.choice((0.0, 0.0, 1e-5, 5e-5, 2e-4))
        if pause:
            time.sleep(pause)
        return i

    async def call(i: int) -> int:
        return await cp.to_thread(work, i)

    delivered = cancelled = 0
    with served(ctx, threads=4):
        for i in range(rounds):
            task = cp.spawn(ctx, call(i))
            meet.wait()
            for _ in range(rng.randrange(300)):
                pass
            task.cancel()
            wait_done(task)
            if task.cancelled():
                cancelled += 1
            else:
                assert task.result() == i
                delivered += 1
    assert delivered + cancelled == rounds
    assert delivered and cancelled, "the race never went both ways"
    assert ran == [1] * rounds
    _settled(ctx, thread_errors)
    ctx.close()


def test_cancel_races_completion_on_a_single_threaded_context(
    backend: str, monkeypatch: pytest.MonkeyPatch, thread_errors: list[BaseException]
) -> None:
    """concurrency_hint=1: the helper thread posts the outcome to the lock-free
    scheduler (interrupting its reactor); a cancel on the context's thread
    races it, and the outcome is still one."""
    monkeypatch.setenv("COROSIO_DEBUG", "1")
    rng = random.Random(1108)
    ctx = cp.IOContext(concurrency_hint=1, backend=backend)

    def identity(value: int) -> int:
        return value

    async def main() -> tuple[int, int]:
        delivered = cancelled = 0
        for i in range(100):
            child = cp.spawn(ctx, cp.to_thread(identity, i))
            for _ in range(rng.randrange(4)):
                await cp.yield_now()
            if rng.random() < 0.5:
                await cp.sleep(0.0002)
            child.cancel()
            try:
                assert await child == i
                delivered += 1
            except cp.Cancelled:
                cancelled += 1
        return delivered, cancelled

    task = cp.spawn(ctx, main())
    ctx.run()
    delivered, cancelled = task.result()
    assert delivered + cancelled == 100
    _settled(ctx, thread_errors)
    ctx.close()


def test_result_on_a_single_threaded_context(backend: str) -> None:
    """concurrency_hint=1: the result (None included) is posted from the helper
    thread, and wakes the context's thread blocked in its reactor."""
    ctx = cp.IOContext(concurrency_hint=1, backend=backend)

    async def main() -> tuple[Any, Any]:
        return await cp.to_thread(lambda: None), await cp.to_thread(sum, [1, 2, 3])

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == (None, 6)
    ctx.close()


# ---------------------------------------------------------------- the process


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_idle_pool_threads_do_not_keep_the_interpreter_alive(backend: str) -> None:
    done = _python(
        f"""
        import corosio_py as cp

        async def main():
            return await cp.to_thread(sum, [1, 2])

        print(cp.run(main(), threads=2, backend={backend!r}))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]


def test_exit_abandons_a_function_still_running(backend: str) -> None:
    """An abandoned call still running at exit: helper threads are daemon
    threads, so the interpreter exits without waiting for it (documented in
    to_thread) -- even for a function that would never return."""
    done = _python(
        f"""
        import threading
        import corosio_py as cp

        entered = threading.Event()

        def stuck():
            entered.set()
            threading.Event().wait()  # never returns
            print("finished", flush=True)

        async def main():
            try:
                await cp.wait_for(cp.to_thread(stuck), 0.01)
            except TimeoutError:
                print("timed out", flush=True)
            assert entered.wait(10)  # it runs on its helper thread at exit

        cp.run(main(), backend={backend!r})
        print("exiting", flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["timed", "out", "exiting"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")
def test_a_forked_child_gets_a_pool_of_its_own(backend: str) -> None:
    done = _python(
        f"""
        import os, signal, warnings
        import corosio_py as cp

        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads

        async def main():
            return await cp.to_thread(os.getpid)

        parent = cp.run(main(), backend={backend!r})
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)  # a hang kills the child, never the test run
            os._exit(0 if cp.run(main(), backend={backend!r}) == os.getpid() else 1)
        _, status = os.waitpid(pid, 0)
        print(parent == os.getpid(), os.waitstatus_to_exitcode(status))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0"]
