"""cross_thread_post: P producer threads x K posts into a context run by one thread.

The run starts when every producer and the running thread have passed one
barrier (the running thread passes it inside a handler, so the loop is
already running) and ends when the last callback ran.  Every callback
increments a counter owned by the running thread; the one that reaches
P*K ends the run, and the count is checked afterwards.

impls:
  corosio_py        ``ctx.post(cb)`` from the producers (thread-safe path);
                    a work guard keeps ``run()`` alive until the last one.
  asyncio / uvloop  ``loop.call_soon_threadsafe(cb)`` (asyncio: one self-pipe
                    write per call; uvloop: coalesced ``uv_async_send``).
  trio              ``TrioToken.run_sync_soon(cb)`` (one wake-up per call).
  floor_deque       producers ``deque.append``; the consumer drains and, when
                    empty, yields with ``time.sleep(0)``: no wake-up at all,
                    an upper bound rather than a design.
  floor_eventfd     deque + an eventfd written only when the consumer has
                    announced that it is about to sleep (coalesced wake-ups).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main


class _Run:
    """Shared state: the callback, its count and the timestamps."""

    def __init__(self, total: int, on_last: Callable[[], object]) -> None:
        self.total = total
        self.count = 0
        self.t0 = 0.0
        self.t1 = 0.0

        def cb() -> None:
            self.count += 1
            if self.count == total:
                self.t1 = now()
                on_last()

        self.cb = cb

    def start_mark(self, barrier: threading.Barrier) -> None:
        barrier.wait()
        self.t0 = now()


def _start_producers(
    post: Callable[[Callable[[], None]], object], cb: Callable[[], None],
    producers: int, per_producer: int, barrier: threading.Barrier,
) -> list[threading.Thread]:
    def produce() -> None:
        barrier.wait()
        for _ in range(per_producer):
            post(cb)

    threads = [threading.Thread(target=produce, daemon=True) for _ in range(producers)]
    for t in threads:
        t.start()
    return threads


def _corosio(args: RunArgs, p: int, k: int) -> _Run:
    with corosio_context(args) as ctx:
        guard = ctx.work_guard()
        state = _Run(p * k, guard.reset)
        barrier = threading.Barrier(p + 1)
        producers = _start_producers(ctx.post, state.cb, p, k, barrier)
        ctx.post(state.start_mark, barrier)
        ran = ctx.run()
        for t in producers:
            t.join()
    check(ran == p * k + 1, f"run() returned {ran}, expected {p * k + 1}")
    return state


def _asyncio(args: RunArgs, p: int, k: int) -> _Run:
    loop = new_event_loop(args)
    try:
        state = _Run(p * k, loop.stop)
        barrier = threading.Barrier(p + 1)
        producers = _start_producers(loop.call_soon_threadsafe, state.cb, p, k, barrier)
        loop.call_soon(state.start_mark, barrier)
        loop.run_forever()
        for t in producers:
            t.join()
    finally:
        loop.close()
    return state


def _trio(args: RunArgs, p: int, k: int) -> _Run:
    import trio

    holder: dict[str, Any] = {}

    async def main() -> None:
        done = trio.Event()
        state = _Run(p * k, done.set)
        holder["state"] = state
        token = trio.lowlevel.current_trio_token()
        barrier = threading.Barrier(p + 1)
        producers = _start_producers(token.run_sync_soon, state.cb, p, k, barrier)
        state.start_mark(barrier)
        await done.wait()
        for t in producers:
            t.join()

    trio.run(main)
    state: _Run = holder["state"]
    return state


def _floor_deque(args: RunArgs, p: int, k: int) -> _Run:
    queue: deque[Callable[[], None]] = deque()
    state = _Run(p * k, lambda: None)
    barrier = threading.Barrier(p + 1)
    producers = _start_producers(queue.append, state.cb, p, k, barrier)
    state.start_mark(barrier)
    popleft = queue.popleft
    sleep = time.sleep
    total = p * k
    while state.count < total:
        try:
            handler = popleft()
        except IndexError:
            sleep(0)
            continue
        handler()
    for t in producers:
        t.join()
    return state


def _floor_eventfd(args: RunArgs, p: int, k: int) -> _Run:
    queue: deque[Callable[[], None]] = deque()
    efd = os.eventfd(0)
    sleeping = [False]
    state = _Run(p * k, lambda: None)
    append = queue.append

    def post(cb: Callable[[], None]) -> None:
        append(cb)
        if sleeping[0]:
            os.eventfd_write(efd, 1)

    barrier = threading.Barrier(p + 1)
    producers = _start_producers(post, state.cb, p, k, barrier)
    state.start_mark(barrier)
    popleft = queue.popleft
    total = p * k
    try:
        while state.count < total:
            try:
                handler = popleft()
            except IndexError:
                sleeping[0] = True
                if not queue:
                    os.eventfd_read(efd)
                sleeping[0] = False
                continue
            handler()
    finally:
        for t in producers:
            t.join()
        os.close(efd)
    return state


def measure(args: RunArgs, run: Runner) -> Measurement:
    p, k = args.params["producers"], args.params["per_producer"]
    state: _Run = run(args, p, k)
    check(state.count == p * k, f"{state.count} callbacks ran, expected {p * k}")
    elapsed = state.t1 - state.t0
    check(elapsed > 0, "no time elapsed")
    return Measurement(
        figures={"callbacks_per_s": p * k / elapsed},
        extra={"elapsed_s": elapsed, "ran": state.count},
    )


WORKLOAD = Workload(
    name="cross_thread_post",
    title="P producer threads x K posts while one thread runs the loop",
    figures=(Figure("callbacks_per_s", "callbacks/s", "callbacks/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("asyncio", "asyncio", _asyncio),
        Impl("uvloop", "uvloop", _asyncio),
        Impl("trio", "trio", _trio, quick=False),
        Impl("floor_deque", "floor", _floor_deque),
        Impl("floor_eventfd", "floor", _floor_eventfd, backend="eventfd"),
    ),
    sizes={
        "full": {"producers": 4, "per_producer": 100_000},
        "quick": {"producers": 4, "per_producer": 25_000},
    },
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
