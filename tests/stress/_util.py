"""Shared machinery of the stress tests (tests/stress).

Every stress test takes the ``stress`` fixture (conftest.py), a
:class:`Stress` object that owns

* the seed: ``COROSIO_STRESS_SEED`` or the clock, printed at the start and
  in every failure message (``st.fail`` / ``st.check``).  The seed fixes the
  test's random *choices* (operation kinds, delays, which thread does what);
  thread interleavings are up to the OS, so a seed reproduces a workload,
  not a schedule;
* the iteration count, scaled by ``COROSIO_STRESS_SCALE`` (float, default 1);
  ``DEBUG_FRACTION`` of it (``COROSIO_STRESS_DEBUG_FRACTION``, default 0.2)
  runs in COROSIO_DEBUG=1 mode;
* an internal wall-clock deadline (``st.check_deadline``) that fails with a
  clear message before the pytest timeout (``timeout_for``) kills the test;
* the progress and summary lines (``[stress] ...``; run with ``-s``).

Each phase of a racing test runs under :func:`interleaving`: a GIL switch
interval and a :class:`Jitter` that the test calls at its race points, so
races are exercised on free-threaded CPython too, where the switch interval
does nothing.

Part of the iterations of each test runs on contexts created with
``COROSIO_DEBUG=1`` (:func:`make_context`), so the scheduler checks its
invariants after every step and a double completion raises
``InvariantError``.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import corosio_py
from corosio_py import IOContext

_SCALE_ENV = "COROSIO_STRESS_SCALE"
_SEED_ENV = "COROSIO_STRESS_SEED"
#: Share of each test's iterations run with COROSIO_DEBUG=1 (env
#: COROSIO_STRESS_DEBUG_FRACTION overrides: 1 runs everything in debug mode).
DEBUG_FRACTION = float(os.environ.get("COROSIO_STRESS_DEBUG_FRACTION", "0.2"))
#: Seconds between progress lines of one test.
PROGRESS_EVERY = 10.0


def _scale() -> float:
    raw = os.environ.get(_SCALE_ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"{_SCALE_ENV}={raw!r} is not a number") from None
    if not value > 0:
        raise RuntimeError(f"{_SCALE_ENV} must be > 0, got {raw!r}")
    return value


SCALE = _scale()


def scaled(n: int, minimum: int = 1) -> int:
    """``n`` iterations at scale 1, scaled by COROSIO_STRESS_SCALE."""
    return max(minimum, round(n * SCALE))


def budget_for(seconds_at_scale_1: float, floor: float = 30.0) -> float:
    """The internal deadline of a test: generous (the machine is shared and
    noisy), proportional to the scale, never below ``floor``."""
    return max(floor, seconds_at_scale_1 * SCALE)


def timeout_for(seconds_at_scale_1: float, floor: float = 30.0) -> float:
    """The pytest timeout (hard kill): the internal deadline plus a margin for
    the clean-up after an internal deadline fails."""
    return budget_for(seconds_at_scale_1, floor) + 30.0


def new_seed() -> int:
    raw = os.environ.get(_SEED_ENV)
    if raw:
        return int(raw, 0)
    return time.time_ns() % 1_000_000_007


def say(line: str) -> None:
    print(f"[stress] {line}", flush=True)


class Stress:
    """Seed, scale, deadline and reporting of one stress test."""

    def __init__(self, name: str, seed: int | None = None) -> None:
        self.name = name
        self.seed = new_seed() if seed is None else seed
        self.rng = random.Random(self.seed)
        self.started = time.monotonic()
        self.deadline = self.started + 60.0
        self.budget = 60.0
        self.iterations = 0
        self._last_progress = self.started

    # -------------------------------------------------------------- setup

    def begin(self, iterations: int, seconds_at_scale_1: float, **info: object) -> None:
        """Announce the test (the progress line) and arm its deadline."""
        self.iterations = iterations
        self.budget = budget_for(seconds_at_scale_1)
        self.deadline = time.monotonic() + self.budget
        extra = "".join(f" {k}={v}" for k, v in info.items())
        say(
            f"START {self.name} seed={self.seed} scale={SCALE:g} "
            f"iterations={iterations} deadline={self.budget:.0f}s "
            f"gil={'on' if gil_enabled() else 'off'}{extra}"
        )

    def phases(self, total: int) -> list[tuple[bool, int]]:
        """Split ``total`` iterations into a normal and a COROSIO_DEBUG=1 part
        (in seeded order); the debug part gets at least one iteration."""
        debug = min(total, max(1, round(total * DEBUG_FRACTION)))
        normal = max(0, total - debug)
        parts = [(False, normal), (True, debug)]
        self.rng.shuffle(parts)
        return [(d, n) for d, n in parts if n > 0]

    # -------------------------------------------------------------- failing

    @property
    def repro(self) -> str:
        return (
            f"[{self.name} seed={self.seed}: rerun with "
            f"{_SEED_ENV}={self.seed} {_SCALE_ENV}={SCALE:g}]"
        )

    def fail(self, message: str) -> NoReturn:
        raise AssertionError(f"{message} {self.repro}")

    def check(self, condition: object, message: str | Callable[[], str]) -> None:
        if not condition:
            self.fail(message() if callable(message) else message)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            self.fail(f"internal deadline of {self.budget:.0f}s exceeded {what}")

    # -------------------------------------------------------------- reporting

    def progress(self, done: int, **info: object) -> None:
        """A progress line at most every PROGRESS_EVERY seconds."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        extra = "".join(f" {k}={v}" for k, v in info.items())
        say(f"  .. {self.name} {done}/{self.iterations} {now - self.started:.1f}s{extra}")

    def summary(self, **counts: object) -> None:
        seconds = time.monotonic() - self.started
        extra = " ".join(f"{k}={v}" for k, v in counts.items())
        say(
            f"SUMMARY {self.name} seed={self.seed} scale={SCALE:g} "
            f"iterations={self.iterations} {extra} seconds={seconds:.1f}"
        )


# ------------------------------------------------------------------ contexts

_env_lock = threading.Lock()


def make_context(backend: str, *, debug: bool) -> IOContext:
    """A context on ``backend``; ``debug`` sets COROSIO_DEBUG=1 around its
    creation (the scheduler reads the flag in its constructor)."""
    with _env_lock:
        old = os.environ.get("COROSIO_DEBUG")
        os.environ["COROSIO_DEBUG"] = "1" if debug else "0"
        try:
            ctx = IOContext(backend=backend)
        finally:
            if old is None:
                del os.environ["COROSIO_DEBUG"]
            else:
                os.environ["COROSIO_DEBUG"] = old
    if ctx._sched.debug is not debug:
        ctx.close()
        raise AssertionError(f"COROSIO_DEBUG={int(debug)} was not picked up by the scheduler")
    return ctx


@contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Run with another GIL switch interval (a shorter one interleaves the
    threads more finely, which widens the set of schedules tried).

    Without a GIL (free-threaded CPython) the interval changes nothing: use
    :func:`interleaving`, whose :class:`Jitter` works on both builds."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


#: Switch intervals a phase picks from (CPython's default is 0.005).
SWITCH_INTERVALS = (0.005, 0.0005, 0.0001)


def gil_enabled() -> bool:
    """Whether this interpreter runs with the GIL (always so before 3.13)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


#: Pause probabilities a phase's :class:`Jitter` picks from: 0 leaves the
#: race windows at their narrowest, higher ones move where the threads meet.
JITTER_LEVELS = (0.0, 0.3, 0.7)


class Jitter:
    """Random short pauses at chosen points of racing threads.

    The GIL switch interval only moves where the GIL preempts a thread;
    without a GIL (free-threaded 3.13t) it does nothing, and racing threads
    on separate cores keep meeting at much the same point of each other's
    path.  Calling a Jitter at a race point (right before a cancel, right
    before an await that the cancel races, ...) pauses that thread with
    probability ``level``: a yield (``time.sleep(0)``), a pure-Python spin of
    up to a few hundred loop iterations, or a 50-200 us sleep, so the other
    side of the race overtakes it at varying moments, on both builds.

    Callable from any thread without a lock: each thread draws from its own
    ``random.Random``, seeded from ``seed`` and the order in which threads
    first call (so a seed fixes the pause pattern of each thread, not the
    schedule).
    """

    def __init__(self, seed: int, level: float) -> None:
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"jitter level must be in [0, 1], got {level}")
        self.seed = seed
        self.level = level
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _threads
        self._threads = 0

    def _rng(self) -> random.Random:
        rng: random.Random | None = getattr(self._local, "rng", None)
        if rng is None:
            with self._lock:
                index = self._threads
                self._threads += 1
            rng = random.Random(self.seed * 1_000_003 + index)
            self._local.rng = rng
        return rng

    def __call__(self) -> None:
        """Maybe pause this thread briefly (see the class docstring)."""
        if self.level <= 0.0:
            return
        rng = self._rng()
        draw = rng.random()
        if draw >= self.level:
            return
        draw /= self.level  # uniform in [0, 1) again: picks the kind of pause
        if draw < 0.43:
            time.sleep(0)
        elif draw < 0.79:
            for _ in range(rng.randrange(400)):
                pass
        else:
            time.sleep(rng.choice((0.00005, 0.0002)))


@contextmanager
def interleaving(st: Stress, intervals: tuple[float, ...] = SWITCH_INTERVALS) -> Iterator[Jitter]:
    """One phase's interleaving, picked with the test's seed: a GIL switch
    interval (effective on GIL builds only) and a :class:`Jitter` level
    (effective on both builds) for the phase's race points."""
    interval = st.rng.choice(intervals)
    jitter = Jitter(st.rng.randrange(1 << 32), st.rng.choice(JITTER_LEVELS))
    say(f"  .. {st.name} phase: switch interval {interval:g}s, jitter level {jitter.level:g}")
    with switch_interval(interval):
        yield jitter


# ------------------------------------------------------------------ threads


class Threads:
    """Daemon threads whose exceptions are recorded, joined with a deadline.

    Daemon: a thread left blocked by a bug must not keep the interpreter
    (pytest) alive after the test failed.
    """

    def __init__(self, st: Stress, label: str) -> None:
        self.st = st
        self.label = label
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.results: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        name = name or f"{self.label}-{len(self.threads)}"

        def body() -> None:
            try:
                result = target(*args)
            except BaseException as exc:
                with self._lock:
                    self.errors.append(
                        f"{name}: {exc!r}\n" + "".join(traceback.format_exception(exc))
                    )
            else:
                with self._lock:
                    self.results[name] = result

        thread = threading.Thread(target=body, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float | None = None) -> list[str]:
        """Join all; return the names of those still alive after ``timeout``
        (default: until the test's deadline, at least 5 s)."""
        if timeout is None:
            timeout = max(5.0, self.st.remaining())
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def alive(self) -> list[str]:
        return [t.name for t in self.threads if t.is_alive()]

    def gone(self) -> str | None:
        """For ``wait_for(abort=...)``: why a thread that should still be
        running (a runner, while a guard keeps the context busy) is not."""
        if self.errors:
            return f"a {self.label} thread raised: {self.errors[0]}"
        ended = [t.name for t in self.threads if not t.is_alive()]
        if ended:
            return f"{len(ended)} {self.label} thread(s) returned early (premature stop?)"
        return None

    def check_errors(self) -> None:
        if self.errors:
            self.st.fail(
                f"{len(self.errors)} {self.label} thread(s) raised; first:\n{self.errors[0]}"
            )

    def join_or_fail(
        self, what: str, timeout: float | None = None, ctx: IOContext | None = None
    ) -> None:
        """Join; a thread still alive fails the test (after stopping ``ctx``
        so that blocked runners get a chance to leave)."""
        alive = self.join(timeout)
        if alive:
            dump = _thread_stacks(alive)
            if ctx is not None:
                ctx.stop()
                self.join(5.0)
            self.check_errors()
            self.st.fail(f"{what}: {len(alive)} thread(s) did not return: {alive}\n{dump}")
        self.check_errors()


def _thread_stacks(names: list[str]) -> str:
    frames = sys._current_frames()
    out = []
    for thread in threading.enumerate():
        if thread.name in names and thread.ident in frames:
            stack = "".join(traceback.format_stack(frames[thread.ident])[-6:])
            out.append(f"--- {thread.name}\n{stack}")
    return "\n".join(out[:4])


def wait_for(
    st: Stress,
    condition: Callable[[], bool],
    what: str | Callable[[], str],
    timeout: float | None = None,
    poll: float = 0.001,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail clearly at the deadline (the
    test's, or ``timeout`` seconds from now).  ``what`` may be a callable,
    evaluated at the failure (to report the state at that moment).
    ``abort`` returns a reason to fail at once (e.g. a runner left run()),
    or None."""
    start = time.monotonic()
    end = st.deadline if timeout is None else min(st.deadline, start + timeout)
    while not condition():
        now = time.monotonic()
        reason = abort() if abort is not None else None
        if reason is not None:
            text = what() if callable(what) else what
            st.fail(f"{reason} after {now - start:.1f}s, while waiting for {text}")
        if now > end:
            text = what() if callable(what) else what
            st.fail(f"timed out after {now - start:.1f}s waiting for {text}")
        time.sleep(poll)


def close_context(ctx: IOContext, timeout: float = 10.0) -> None:
    """``ctx.close()`` bounded in time, for the ``finally`` of a test.

    A scheduler whose reactor flag is stuck (a pass that raised without
    clearing it) makes ``close()`` wait forever for that pass to end; the
    test must then still fail with its own message, not hang until the
    pytest timeout replaces that message.
    """
    closer = threading.Thread(target=ctx.close, name="ctx-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        pending = sys.exc_info()[1]
        say(f"IOContext.close() did not return within {timeout:.0f}s (abandoned)")
        if pending is None:
            raise AssertionError(
                f"IOContext.close() did not return within {timeout:.0f}s "
                f"(outstanding={ctx._sched.outstanding()}, "
                f"reactor pass running={getattr(ctx._sched, '_reactor_running', 'n/a')})"
            )


def fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def all_done(tasks: list[corosio_py.Task[Any]]) -> bool:
    return all(t.done() for t in tasks)
