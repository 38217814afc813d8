"""Signals arriving while 4 threads run the context, with the main thread in
``run()`` (blocked in the reactor or waiting for work), idle outside it
(joining the driver), or busy in pure-Python handlers.

Each round: a task waits on the set; a driver thread sends one signal by a
random route (``os.kill`` of the process, ``pthread_kill`` at a random
runner or at the main thread, ``signal.raise_signal`` inside a handler on a
random runner) and, in a share of the rounds, races a cancel of the wait
(``Task.cancel``, ``SignalSet.cancel``, a stop token) against it.

Checked per round: the wait completes exactly once, with the signal or with
``Cancelled`` (only when a cancel was issued); a cancelled wait leaves the
signal remembered, so the next wait returns it (nothing is lost); a wait
that got it leaves nothing remembered (nothing is delivered twice); the
signal reaches the task within ``PROMPT`` seconds whatever the main thread
does.  Per phase: every runner returns and the set lets the signal go.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext, SignalSet, StopSource
from tests.stress._util import (
    Stress,
    Threads,
    close_context,
    interleaving,
    make_context,
    scaled,
    timeout_for,
)

pytestmark = pytest.mark.stress

ROUNDS = 600  # per mode and backend, at scale 1
MODES = ("main_in_run", "main_idle", "main_busy")
ROUTES = ("kill", "pthread_runner", "pthread_main", "raise_in_handler")
CANCELS = (None, None, "task", "set", "token")
#: A signal must reach its task this soon.
PROMPT = 5.0
SIG = int(signal.SIGUSR1)


class Round:
    """One wait, its signal and maybe a racing cancel."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: object = None
        self.completions = 0


def _busy(stop: threading.Event, start: Any) -> None:
    """The main thread's handler: start the other threads, then spin in pure
    Python until the phase ends (a handler that never blocks)."""
    _main_spins.append(threading.get_ident())
    start()
    while not stop.is_set():
        for _ in range(2000):
            pass


def _drive(
    st: Stress, ctx: IOContext, sset: SignalSet, runners: list[int], rounds: int, jitter: Any
) -> dict[str, int]:
    counts = {"got": 0, "cancelled": 0, "worst_ms": 0}
    main_ident = threading.main_thread().ident
    assert main_ident is not None
    for i in range(rounds):
        rnd = Round()
        source = StopSource()

        async def waiter(r: Round = rnd, src: StopSource = source) -> None:
            try:
                r.outcome = await sset.wait(stop_token=src.token)
            except Cancelled as exc:
                r.outcome = exc
            r.completions += 1
            r.done.set()

        task = corosio_py.spawn(ctx, waiter())
        deadline = time.monotonic() + PROMPT
        while not sset._waiters:
            st.check(time.monotonic() < deadline, f"round {i}: the waiter never parked")
            time.sleep(0.0002)
        route = st.rng.choice(ROUTES)
        cancel = st.rng.choice(CANCELS)
        jitter()
        sent = time.monotonic()
        if route == "kill":
            os.kill(os.getpid(), SIG)
        elif route == "pthread_runner":
            signal.pthread_kill(st.rng.choice(runners), SIG)
        elif route == "pthread_main":
            signal.pthread_kill(main_ident, SIG)
        else:
            ctx.post(signal.raise_signal, SIG)
        if cancel is not None:
            jitter()
            if cancel == "task":
                task.cancel()
            elif cancel == "set":
                sset.cancel()
            else:
                source.request_stop()
        st.check(rnd.done.wait(PROMPT), f"round {i} ({route}): the wait never completed")
        late = time.monotonic() - sent
        counts["worst_ms"] = max(counts["worst_ms"], round(late * 1000))
        if isinstance(rnd.outcome, Cancelled):
            st.check(cancel is not None, f"round {i}: Cancelled without a cancel")
            counts["cancelled"] += 1
            # Nothing lost: the signal is (or will be) remembered.
            again = Round()

            async def second(r: Round = again) -> None:
                r.outcome = await sset.wait()
                r.done.set()

            corosio_py.spawn(ctx, second())
            st.check(again.done.wait(PROMPT), f"round {i}: a cancelled wait lost the signal")
            st.check(again.outcome == SIG, f"round {i}: the next wait got {again.outcome!r}")
        else:
            st.check(rnd.outcome == SIG, f"round {i}: the wait got {rnd.outcome!r}")
            counts["got"] += 1
        with sset._lock:
            st.check(not sset._pending, f"round {i} ({route}): a signal delivered twice")
        st.check(rnd.completions == 1, f"round {i}: completed {rnd.completions} times")
        st.progress(i + 1, **counts)
        st.check_deadline(f"in round {i}")
    return counts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(timeout_for(120))
def test_signals_during_run(stress: Stress, backend: str, mode: str) -> None:
    st = stress
    rounds = scaled(ROUNDS, minimum=20)
    st.begin(rounds, 120, backend=backend, mode=mode)
    previous = signal.signal(SIG, _unexpected)
    totals: dict[str, int] = {}
    try:
        for debug, n in st.phases(rounds):
            with interleaving(st) as jitter:
                counts = _phase(st, backend, mode, debug, n, jitter)
            for key, value in counts.items():
                totals[key] = max(totals.get(key, 0), value) if key == "worst_ms" else (
                    totals.get(key, 0) + value
                )
    finally:
        signal.signal(SIG, previous)
    st.check(not _stray, f"{len(_stray)} signal(s) reached the previous handler")
    if mode == "main_busy":
        main = threading.main_thread().ident
        st.check(_main_spins and all(t == main for t in _main_spins), "main was not busy")
        _main_spins.clear()
    st.summary(**totals)


_stray: list[int] = []
#: The thread that ran each phase's busy handler (the main thread).
_main_spins: list[int] = []


def _unexpected(signum: int, frame: FrameType | None) -> None:
    _stray.append(signum)


def _phase(
    st: Stress, backend: str, mode: str, debug: bool, rounds: int, jitter: Any
) -> dict[str, int]:
    ctx = make_context(backend, debug=debug)
    guard = ctx.work_guard()
    stop_spin = threading.Event()
    sset = SignalSet(ctx, SIG)
    runners = Threads(st, "runner")
    driver = Threads(st, "driver")
    result: dict[str, int] = {}

    def drive(idents: list[int]) -> None:
        try:
            result.update(_drive(st, ctx, sset, idents, rounds, jitter))
        finally:
            stop_spin.set()
            guard.reset()
            ctx.stop()

    def start_threads() -> None:
        for _ in range(4 if mode == "main_idle" else 3):
            runners.start(ctx.run)
        driver.start(drive, [t.ident for t in runners.threads if t.ident is not None])

    try:
        if mode == "main_idle":
            start_threads()
            driver.join_or_fail("the driver", ctx=ctx)  # the main thread blocks in join
        else:
            if mode == "main_busy":
                # Posted before any other thread runs the context, so the
                # main thread (alone in run()) is the one that runs it.
                ctx.post(_busy, stop_spin, start_threads)
            else:
                start_threads()
            while driver.alive() or not driver.threads:
                ctx.run()  # the main thread runs the context too
                if driver.alive():
                    ctx.restart()
            driver.join_or_fail("the driver", ctx=ctx)
        stop_spin.set()
        guard.reset()
        ctx.stop()
        runners.join_or_fail("the runners", ctx=ctx)
    finally:
        stop_spin.set()
        sset.close()
        close_context(ctx)
    st.check(signal.getsignal(SIG) is _unexpected, "the previous handler was not put back")
    return result
