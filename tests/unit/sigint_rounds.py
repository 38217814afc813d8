"""Ctrl-C against a running IOContext: the program the Ctrl-C tests run in a
subprocess (a SIGINT in the pytest process itself would end the session).

Usage: ``python sigint_rounds.py MODE BACKEND ROUNDS SEED [HINT]``, with MODE
one of

* ``busy``: the main thread and 3 other threads run one context whose
  handlers never run out (pure-Python handlers that re-post themselves, short
  and long ones, handlers that block in ``time.sleep``, tasks doing socket
  I/O and sleeps).  A helper thread sends SIGINT to the main thread at a
  random moment of each round.  Each round the main thread's ``run()`` must
  raise ``KeyboardInterrupt`` (never another exception, never return) while
  the other runners go on untouched; then ``restart()`` and the next round.
  At the end ``close()`` must return promptly and every runner must leave.
* ``idle``: two of the other threads run a handler that spins for the whole
  run, the third is free (the reactor); SIGINT is sent once the main thread
  waits for work (asleep or watching over the busy ones: its stack shows
  the wait).
* ``reactor``: the main thread alone in ``run()`` (kept there by a work
  guard), SIGINT once it is blocked in the reactor's OS wait; HINT=1 runs it
  on a ``concurrency_hint=1`` context.

In every mode ``KeyboardInterrupt`` must arrive within ``PROMPT`` seconds
of the signal.  The last line of output is a JSON summary; the exit status is
0 on success, 1 on a failed check (the reason is printed).
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import corosio_py as cio
from corosio_py.testing import socket_pair

#: KeyboardInterrupt must reach the main thread this soon after the signal.
PROMPT = 1.0
#: close() and the runners' exit must take less than this.
CLOSE_LIMIT = 5.0
#: A run that takes longer dumps every thread's stack and exits: the
#: parent's timeout is longer, so a hang is reported with its stacks (the
#: environment variable overrides it for long runs).
HANG_LIMIT = float(os.environ.get("SIGINT_ROUNDS_HANG_LIMIT", "40"))
#: A handshake that never happens fails the run after this.
PATIENCE = 10.0
#: How long the killer waits for the main thread to show the awaited wait.
STACK_PATIENCE = 3.0
#: Runner threads besides the main thread.
HELPERS = 3
#: Functions whose presence on the main thread's stack means "waiting for
#: work" (idle mode) or "in the reactor's OS wait" (reactor mode).
IDLE_WAITS = frozenset({"_sleep_locked"})
REACTOR_WAITS = frozenset({"_reactor_pass"})

MAIN_IDENT = threading.get_ident()


class CheckFailedError(Exception):
    """A check of this program failed."""


def spin(n: int) -> int:
    """Pure-Python work that holds the GIL."""
    x = 0
    for i in range(n):
        x += i * i
    return x


class Load:
    """Handlers and tasks that keep the context busy until ``quit`` is set."""

    def __init__(self, ctx: cio.IOContext, rng: random.Random) -> None:
        self.ctx = ctx
        self.rng = rng  # main thread only (seeding the load)
        self.quit = threading.Event()
        self.stuck_running = threading.Semaphore(0)  # released as each stuck() starts
        self.pairs: list[tuple[cio.TCPSocket, cio.TCPSocket]] = []

    def repost(self, fn: Callable[[], None]) -> None:
        if self.quit.is_set():
            return
        try:
            self.ctx.post(fn)
        except RuntimeError:  # closed by the end of the run: expected
            pass

    def short(self) -> None:
        try:
            spin(200)
        finally:
            self.repost(self.short)

    def long(self) -> None:
        try:
            spin(20000)  # several ms: the watcher licenses another thread
        finally:
            self.repost(self.long)

    def blocking(self) -> None:
        try:
            time.sleep(0.002)  # releases the GIL
        finally:
            self.repost(self.blocking)

    async def sleeper(self, delay: float) -> None:
        while not self.quit.is_set():
            await cio.sleep(delay)
            spin(100)

    async def pinger(self, sock: cio.TCPSocket) -> None:
        buf = bytearray(64)
        try:
            while not self.quit.is_set():
                await sock.write_some(b"ping")
                if await sock.read_some(buf) == 0:
                    return
        except OSError:
            return  # the context closed the socket

    async def echoer(self, sock: cio.TCPSocket) -> None:
        buf = bytearray(64)
        try:
            while not self.quit.is_set():
                n = await sock.read_some(buf)
                if n == 0:
                    return
                await sock.write_some(bytes(buf[:n]))
        except OSError:
            return

    def stuck(self) -> None:
        """Busy for the whole run: one handler that never returns until quit."""
        self.stuck_running.release()
        while not self.quit.is_set():
            spin(1000)

    def seed(self, chains: int) -> None:
        """Start ``chains`` handler chains of each kind, sleepers, and an
        echo pair.  Called from outside ``run*`` (so posts take the lock)."""
        for _ in range(chains):
            self.ctx.post(self.short)
            self.ctx.post(self.long)
            self.ctx.post(self.blocking)
            cio.spawn(self.ctx, self.sleeper(self.rng.uniform(0.0, 0.003)))
        a, b = socket_pair(self.ctx)
        self.pairs.append((a, b))
        cio.spawn(self.ctx, self.pinger(a))
        cio.spawn(self.ctx, self.echoer(b))


class Runners:
    """``HELPERS`` threads in ``ctx.run()``; an exception there is recorded."""

    def __init__(self, ctx: cio.IOContext) -> None:
        self.ctx = ctx
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.serve, name=f"runner-{i}", daemon=True)
            for i in range(HELPERS)
        ]
        for thread in self.threads:
            thread.start()

    def serve(self) -> None:
        try:
            self.ctx.run()
        except BaseException as exc:
            with self.lock:
                self.errors.append("".join(traceback.format_exception(exc)))

    def check(self, when: str, running: bool = True) -> None:
        """No runner raised; with ``running``, none has left ``run()``."""
        with self.lock:
            if self.errors:
                raise CheckFailedError(f"a helper runner raised {when}:\n{self.errors[0]}")
        if not running:
            return
        ended = [t.name for t in self.threads if not t.is_alive()]
        if ended:
            raise CheckFailedError(f"helper runners left run() {when}: {ended}")


class Killer:
    """Sends SIGINT to the main thread once per round, on request."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, frozenset[str]]] = []
        self.cond = threading.Condition()
        self.sent_at = 0.0  # written before the signal, read by the main thread after
        self.missed = False  # the awaited stack never showed (written before the signal)
        self.thread = threading.Thread(target=self.loop, name="killer", daemon=True)
        self.thread.start()

    def request(self, delay: float, wait_for: frozenset[str] = frozenset()) -> None:
        """Signal the main thread ``delay`` seconds from now, or, with
        ``wait_for``, as soon as one of those functions is on its stack."""
        with self.cond:
            self.requests.append((delay, wait_for))
            self.cond.notify()

    def loop(self) -> None:
        while True:
            with self.cond:
                while not self.requests:
                    self.cond.wait()
                delay, wait_for = self.requests.pop(0)
            if delay < 0:
                return
            if wait_for and not _wait_for_stack(wait_for):
                self.missed = True
            else:
                time.sleep(delay)
            self.sent_at = time.monotonic()
            signal.pthread_kill(MAIN_IDENT, signal.SIGINT)

    def stop(self) -> None:
        self.request(-1.0)
        self.thread.join(PATIENCE)


def _main_stack_names() -> set[str]:
    frame = sys._current_frames().get(MAIN_IDENT)
    names = set()
    while frame is not None:
        names.add(frame.f_code.co_name)
        frame = frame.f_back
    return names


def _wait_for_stack(names: frozenset[str]) -> bool:
    """Until the main thread's stack shows one of ``names``; False if that
    did not happen within ``STACK_PATIENCE``."""
    deadline = time.monotonic() + STACK_PATIENCE
    while not names & _main_stack_names():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def one_round(ctx: cio.IOContext, killer: Killer, delay: float, wait_for: frozenset[str]) -> float:
    """Run until the round's SIGINT; return its latency."""
    ctx.restart()
    try:
        killer.request(delay, wait_for)
        n = ctx.run()
    except KeyboardInterrupt:
        return time.monotonic() - killer.sent_at
    except BaseException as exc:
        raise CheckFailedError(
            "main run() raised instead of KeyboardInterrupt:\n"
            + "".join(traceback.format_exception(exc))
        ) from None
    raise CheckFailedError(f"main run() returned {n} instead of raising KeyboardInterrupt")


def main() -> int:
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    # A shell starts a background job with SIGINT ignored, and Python then
    # leaves it ignored: make Ctrl-C raise KeyboardInterrupt however the
    # test run was launched (`make test-ft &` failed every round otherwise).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode, backend, rounds, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    hint = int(sys.argv[5]) if len(sys.argv) > 5 else None
    if hint is not None and mode != "reactor":
        raise SystemExit("only the reactor mode runs a single thread (concurrency_hint=1)")
    rng = random.Random(seed)
    ctx = cio.IOContext(concurrency_hint=hint, backend=backend)
    guard = ctx.work_guard()
    load = Load(ctx, rng)
    killer = Killer()
    runners: Runners | None = None
    latencies: list[float] = []
    summary: dict[str, Any] = {"mode": mode, "backend": backend, "seed": seed}
    try:
        if mode == "busy":
            load.seed(2)
        elif mode == "idle":
            # Two runners busy for good, one free (it becomes the reactor):
            # the main thread has nothing to take and waits, as the watcher.
            ctx.post(load.stuck)
            ctx.post(load.stuck)
        if mode != "reactor":
            runners = Runners(ctx)
        if mode == "idle":
            # The helpers, not the main thread, must be the ones stuck: a
            # main thread that entered run() first (a loaded machine starts
            # threads late) would take a stuck handler and never wait.
            for _ in range(2):
                if not load.stuck_running.acquire(timeout=PATIENCE):
                    raise CheckFailedError("the helper runners never started the stuck handlers")
        for i in range(rounds):
            if mode == "busy":
                latency = one_round(ctx, killer, rng.uniform(0.0005, 0.02), frozenset())
            elif mode == "idle":
                latency = one_round(ctx, killer, 0.0, IDLE_WAITS)
            else:
                latency = one_round(ctx, killer, 0.0, REACTOR_WAITS)
            latencies.append(latency)
            if killer.missed:
                raise CheckFailedError(
                    f"round {i}: the main thread never showed {mode} wait on its stack"
                )
            if latency > PROMPT:
                raise CheckFailedError(
                    f"round {i}: KeyboardInterrupt came {latency:.3f}s after SIGINT"
                )
            if runners is not None:
                runners.check(f"in round {i}")
        load.quit.set()
        guard.reset()
        started = time.monotonic()
        ctx.close()
        summary["close_seconds"] = round(time.monotonic() - started, 3)
        if runners is not None:
            for thread in runners.threads:
                thread.join(max(0.0, started + CLOSE_LIMIT - time.monotonic()))
            alive = [t.name for t in runners.threads if t.is_alive()]
            if alive:
                raise CheckFailedError(f"runners still in run() after close(): {alive}")
            runners.check("at close()", running=False)
        if time.monotonic() - started > CLOSE_LIMIT:
            raise CheckFailedError(
                f"close() and the runners' exit took {time.monotonic() - started:.1f}s"
            )
    except CheckFailedError as failure:
        print(f"FAILED: {failure}", flush=True)
        summary["ok"] = False
        print(json.dumps(summary), flush=True)
        os._exit(1)  # runners may be stuck: do not wait for them
    finally:
        killer.stop()
    summary.update(
        ok=True,
        rounds=len(latencies),
        max_latency=round(max(latencies, default=0.0), 4),
    )
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
