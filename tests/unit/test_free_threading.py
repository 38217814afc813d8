"""Correctness that must not depend on the GIL (free-threaded CPython).

These pass on a standard build too; on a free-threaded build (3.13t) the
first failed before its fix, and the others guard races that the GIL hid.

* One memoryview shared by writes running on several threads: the library
  never derives views of a caller's memoryview while sizing or sending it
  (CPython gh-155606: derived views made by several threads at once release
  the shared view under its other users).
* ``IOContext.close()`` (``Task._abandon``) while another thread is inside
  the task's step: the coroutine is closed only once the step gives it up,
  and the task's outcome is reported once.
* ``done()``/``cancelled()`` read one consistent state.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import corosio_py as cio
from corosio_py import Cancelled, IOContext, TCPSocket
from corosio_py.testing import socket_pair
from tests.unit.limits import JOIN, PROMPT
from tests.unit.task_helpers import served, wait_done
from tests.unit.tcp_helpers import context, run

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("fd_leak_check")]


def test_writes_sharing_one_memoryview_on_four_threads(backend: str) -> None:
    shared = memoryview(bytes(range(256)) * 256)  # 64 KiB, one view for all
    pairs_n = 8
    rounds = 150

    async def main() -> int:
        ctx = context()
        pairs = [socket_pair(ctx) for _ in range(pairs_n)]

        async def writer(sock: TCPSocket) -> int:
            sent = 0
            for i in range(rounds):
                if i % 2:
                    sent += await sock.write_some(shared)
                else:
                    sent += await sock.write_some([shared, shared])
            sock.shutdown(2)
            return sent

        async def reader(sock: TCPSocket) -> int:
            buf = bytearray(1 << 16)
            got = 0
            while n := await sock.read_some(buf):
                got += n
            return got

        writers = [cio.spawn(ctx, writer(a)) for a, _ in pairs]
        readers = [cio.spawn(ctx, reader(b)) for _, b in pairs]
        sent = await cio.gather(*writers)
        got = await cio.gather(*readers)
        for a, b in pairs:
            a.close()
            b.close()
        assert sent == got
        return sum(sent)

    assert run(backend, main, threads=4) > 0
    assert shared.nbytes == 1 << 16  # still usable: never released under us


@pytest.mark.parametrize("suspension", ["sleep", "yield", "read"])
def test_abandon_during_a_step_waits_for_the_step(backend: str, suspension: str) -> None:
    """``Task._abandon`` (what IOContext.close() runs) from another thread
    while the task's step is running: the coroutine is not closed under the
    running step; it is closed where the step next suspends (its finally
    blocks run), and the task reports Cancelled exactly once."""
    ctx = IOContext(backend=backend)
    a, b = socket_pair(ctx)
    entered = threading.Event()
    release = threading.Event()
    log: list[str] = []
    reported: list[bool] = []

    async def body() -> str:
        try:
            entered.set()
            assert release.wait(PROMPT)  # the step is running on the runner thread
            log.append("resumed")
            if suspension == "sleep":
                await cio.sleep(60)
            elif suspension == "yield":
                await cio.yield_now()
            else:
                await b.read_some(bytearray(1))
            log.append("after the suspension")  # pragma: no cover - must not run
            return "finished"
        finally:
            log.append("finally")

    task = cio.spawn(ctx, body())
    task.add_done_callback(lambda t: reported.append(t.cancelled()))
    runner = threading.Thread(target=ctx.run_one)
    runner.start()
    try:
        assert entered.wait(PROMPT)
        task._abandon()  # IOContext.close() from a foreign thread, mid-step
        assert not task.done()  # not reported while the step runs
        assert log == []
    finally:
        release.set()
        runner.join(JOIN)
    assert not runner.is_alive()
    assert log == ["resumed", "finally"]
    assert task.cancelled()
    assert reported == [True]  # reported once, never changed
    a.close()
    b.close()
    ctx.close()
    assert reported == [True]


def test_abandon_of_a_task_that_finishes_in_that_step_keeps_its_result(backend: str) -> None:
    ctx = IOContext(backend=backend)
    entered = threading.Event()
    release = threading.Event()

    async def body() -> str:
        entered.set()
        assert release.wait(PROMPT)
        return "finished"

    task = cio.spawn(ctx, body())
    runner = threading.Thread(target=ctx.run_one)
    runner.start()
    try:
        assert entered.wait(PROMPT)
        task._abandon()
    finally:
        release.set()
        runner.join(JOIN)
    assert task.result() == "finished"
    ctx.close()
    assert task.result() == "finished"


def test_done_and_cancelled_agree_when_read_from_another_thread(backend: str) -> None:
    """A watcher that sees ``done()`` must see the outcome with it."""
    iterations = 200
    mismatches: list[int] = []
    with IOContext(backend=backend) as ctx, served(ctx, 2):
        for i in range(iterations):
            task = cio.spawn(ctx, cio.sleep(60))
            seen = threading.Event()

            def watch(task: cio.Task[Any] = task, i: int = i, seen: threading.Event = seen) -> None:
                seen.set()
                while not task.done():
                    pass
                if not task.cancelled():
                    mismatches.append(i)

            watcher = threading.Thread(target=watch)
            watcher.start()
            assert seen.wait(PROMPT)
            task.cancel()
            wait_done(task)
            watcher.join(JOIN)
            assert not watcher.is_alive()
            with pytest.raises(Cancelled):
                task.result()
    assert mismatches == []
