"""Queue: FIFO, back-pressure, plain-thread producers, cancellation-safe."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import corosio_py as cp
from corosio_py.testing import wait_all_tasks_blocked
from tests.unit.sync_helpers import outcome, settle
from tests.unit.task_helpers import served, wait_done
from tests.unit.thread_helpers import start

THREADS = 4


def test_arguments_and_nowait() -> None:
    with pytest.raises(TypeError):
        cp.Queue("3")  # type: ignore[arg-type]
    q: cp.Queue[int] = cp.Queue(2)
    assert q.maxsize == 2 and q.empty() and not q.full() and q.qsize() == 0
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(cp.QueueFull):
        q.put_nowait(3)
    assert q.get_nowait() == 1 and q.get_nowait() == 2
    with pytest.raises(cp.QueueEmpty):
        q.get_nowait()
    unbounded: cp.Queue[int] = cp.Queue()
    for i in range(1000):
        unbounded.put_nowait(i)
    assert not unbounded.full() and unbounded.qsize() == 1000


def test_fifo_with_back_pressure(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[int] = cp.Queue(3)
    got: list[int] = []
    most = [0]

    async def producer() -> None:
        for i in range(500):
            await q.put(i)
            most[0] = max(most[0], q.qsize())

    async def consumer() -> None:
        for _ in range(500):
            got.append(await q.get())
            if len(got) % 7 == 0:
                await cp.yield_now()

    tasks = [cp.spawn(ctx, producer()), cp.spawn(ctx, consumer())]
    ctx.run()
    for task in tasks:
        task.result()
    assert got == list(range(500)) and most[0] <= 3


def test_many_producers_and_consumers_on_four_threads(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    q: cp.Queue[tuple[int, int]] = cp.Queue(8)
    per = 400
    got: list[list[tuple[int, int]]] = [[] for _ in range(THREADS)]

    async def producer(k: int) -> None:
        for i in range(per):
            await q.put((k, i))

    async def consumer(k: int) -> None:
        while True:
            item = await q.get()
            if item[0] < 0:
                return
            got[k].append(item)

    async def main() -> None:
        async with cp.TaskGroup() as tg:
            for k in range(THREADS):
                tg.spawn(producer(k))
        for _ in range(THREADS):
            await q.put((-1, -1))

    tasks = [cp.spawn(ctx, consumer(k)) for k in range(THREADS)] + [cp.spawn(ctx, main())]
    runners = [start(ctx.run) for _ in range(THREADS)]
    for runner in runners:
        runner.finish()
    for task in tasks:
        task.result()
    everything = sorted(item for mine in got for item in mine)
    assert everything == sorted((k, i) for k in range(THREADS) for i in range(per))
    for mine in got:  # one producer's items reach one consumer in order
        for k in range(THREADS):
            seq = [i for (p, i) in mine if p == k]
            assert seq == sorted(seq)


def test_put_nowait_from_plain_threads_wakes_getters(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    q: cp.Queue[int] = cp.Queue()
    n = 200

    async def consumer() -> list[int]:
        return [await q.get() for _ in range(n)]

    def put_quarter(k: int) -> None:
        for i in range(n // 4):
            q.put_nowait(k * n + i)

    task = cp.spawn(ctx, consumer())
    with served(ctx, THREADS):
        wait_all_tasks_blocked(ctx)
        threads = [start(put_quarter, k) for k in range(4)]
        for thread in threads:
            thread.finish()
        wait_done(task)
    assert sorted(task.result()) == sorted(k * n + i for k in range(4) for i in range(n // 4))


def test_put_nowait_outside_run_wakes_a_parked_getter(
    make_ctx: Callable[..., cp.IOContext],
) -> None:
    ctx = make_ctx()
    q: cp.Queue[str] = cp.Queue()
    task = cp.spawn(ctx, q.get())
    feeder = threading.Timer(0.05, q.put_nowait, ("hello",))
    feeder.start()
    ctx.run()
    feeder.join()
    assert task.result() == "hello"


def test_cancelled_getter_loses_no_item(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[str] = cp.Queue()
    source = cp.StopSource()

    async def main() -> list[object]:
        a = cp.spawn(ctx, q.get())
        b = cp.spawn(ctx, q.get(stop_token=source.token))
        c = cp.spawn(ctx, q.get())
        await cp.yield_now()
        a.cancel()  # parked: withdrawn, takes nothing
        source.request_stop()
        await cp.yield_now()
        q.put_nowait("x")  # goes to c, the only getter left
        c.cancel()  # too late: c already has "x"
        await cp.yield_now()
        await cp.yield_now()
        return [outcome(a), outcome(b), outcome(c), q.qsize()]

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == ["cancelled", "cancelled", "x", 0]


def test_cancelled_putter_never_puts(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[str] = cp.Queue(1)

    async def main() -> list[object]:
        await q.put("first")
        a = cp.spawn(ctx, q.put("cancelled"))
        b = cp.spawn(ctx, q.put("second"))
        await cp.yield_now()
        a.cancel()
        await cp.yield_now()
        items = [await q.get(), await q.get()]
        await b
        return [outcome(a), outcome(b), items, q.empty()]

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == ["cancelled", None, ["first", "second"], True]


def test_stopped_token_refuses_at_once(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[int] = cp.Queue()
    q.put_nowait(1)
    source = cp.StopSource()
    source.request_stop()

    async def main() -> list[str]:
        seen = []
        token = source.token
        for call in (lambda: q.get(stop_token=token), lambda: q.put(2, stop_token=token)):
            try:
                await call()
                seen.append("ran")
            except cp.Cancelled:
                seen.append("refused")
        return seen

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == ["refused", "refused"] and q.qsize() == 1


def test_get_with_timeout(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[int] = cp.Queue()

    async def main() -> str:
        try:
            with cp.timeout(0.01):
                await q.get()
        except TimeoutError:
            q.put_nowait(5)
            return f"timeout then {await q.get()}"
        return "got"

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == "timeout then 5"


def test_task_done_and_join(make_ctx: Callable[..., cp.IOContext]) -> None:
    ctx = make_ctx()
    q: cp.Queue[int] = cp.Queue()
    with pytest.raises(ValueError):
        q.task_done()
    handled: list[int] = []

    async def worker() -> None:
        while True:
            item = await q.get()
            await cp.sleep(0.001)
            handled.append(item)
            q.task_done()

    async def main() -> int:
        workers = [cp.spawn(ctx, worker()) for _ in range(3)]
        for i in range(20):
            await q.put(i)
        await q.join()
        count = len(handled)
        for w in workers:
            w.cancel()
        return count

    task = cp.spawn(ctx, main())
    ctx.run()
    assert task.result() == 20


@pytest.mark.leaves_work_for_close("close() cancels a parked getter")
def test_getter_of_closed_context_loses_no_item(make_ctx: Callable[..., cp.IOContext]) -> None:
    doomed, live = make_ctx(), make_ctx()
    q: cp.Queue[str] = cp.Queue()
    lost = cp.spawn(doomed, q.get())
    settle(doomed)
    doomed.close()
    assert lost.cancelled()
    q.put_nowait("kept")
    task = cp.spawn(live, q.get())
    live.run()
    assert task.result() == "kept"
