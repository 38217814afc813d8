"""Scheduler stress: many threads in run(), foreign posts, stop/restart,
work guards, handler exceptions, exceptions in the reactor pass.

Each test runs once per reactor backend (the scheduler's reactor pass and
its interrupts are part of every path), part of its iterations on a
COROSIO_DEBUG=1 context.  See _util.py for seed, scale and deadlines.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import pytest

import corosio_py
from corosio_py import IOContext
from corosio_py._scheduler import REACTOR_SENTINEL
from corosio_py._threaded import ThreadedScheduler
from tests.stress._util import (
    SWITCH_INTERVALS,
    Stress,
    Threads,
    close_context,
    make_context,
    scaled,
    switch_interval,
    timeout_for,
    wait_for,
)

pytestmark = pytest.mark.stress

#: A round normally takes milliseconds; a stuck one fails after this long.
ROUND_TIMEOUT = 20.0
#: The nested-posts rounds favour short GIL slices: a window between two
#: statements of one thread is only seen by another one at a GIL switch.
NESTED_SWITCH_INTERVALS = (0.005, 0.0001, 0.00001)
#: How a runner thread serves the context.
RUN_MODES = ("run", "run_one", "run_for", "run_until", "poll")


def _serve(ctx: IOContext, mode: str, slice_seconds: float = 0.02) -> int:
    """Serve ``ctx`` in ``mode`` until it is stopped; return handlers run.

    The context must not be restarted while this runs (the loops end at
    the first stop they see).
    """
    if mode == "run":
        return ctx.run()
    total = 0
    if mode == "run_one":
        while True:
            n = ctx.run_one()
            if not n:
                return total
            total += n
    while not ctx.stopped():
        if mode == "run_for":
            total += ctx.run_for(slice_seconds)
        elif mode == "run_until":
            total += ctx.run_until(time.monotonic() + slice_seconds)
        else:
            n = ctx.poll()
            total += n
            if not n:
                time.sleep(0.0002)
    return total


# ---------------------------------------------------------------- foreign posts

POSTS = 1_000_000


@pytest.mark.timeout(timeout_for(300))
def test_foreign_posts_each_run_exactly_once(backend: str, stress: Stress) -> None:
    """8 threads run one context while 4 other threads post 1,000,000
    handlers; every handler runs exactly once; run() returns after the last."""
    st = stress
    total = scaled(POSTS)
    st.begin(total, 300, runners=8, posters=4)
    modes_used: Counter[str] = Counter()
    per_runner: list[int] = []
    done = 0
    for debug, n in st.phases(total):
        interval = st.rng.choice(SWITCH_INTERVALS)
        with switch_interval(interval):
            ran = _post_phase(st, backend, debug, n, done, modes_used)
        per_runner.extend(ran)
        done += n
    st.summary(
        backend=backend,
        handlers=total,
        runner_modes=dict(modes_used),
        busiest_runner=max(per_runner),
        idlest_runner=min(per_runner),
    )


def _post_phase(
    st: Stress, backend: str, debug: bool, n: int, done_before: int, modes_used: Counter[str]
) -> list[int]:
    ctx = make_context(backend, debug=debug)
    try:
        hits = bytearray(n)

        def handler(i: int) -> None:
            hits[i] += 1

        guard = ctx.work_guard()
        modes = ["run"] * 4 + [st.rng.choice(RUN_MODES) for _ in range(4)]
        modes_used.update(modes)
        runners = Threads(st, "runner")
        for mode in modes:
            runners.start(_serve, ctx, mode)
        posters = Threads(st, "poster")
        ex = ctx.executor
        for k in range(4):
            seed = st.rng.randrange(1 << 32)

            def poster(k: int = k, seed: int = seed) -> None:
                import random

                rng = random.Random(seed)
                # Foreign threads: dispatch and defer post as well.
                ways = (ctx.post, ex.post, ex.dispatch, ex.defer)
                i = k
                while i < n:
                    way = ways[rng.randrange(4)]
                    stop = min(n, i + 4 * rng.randrange(1, 64))
                    while i < stop:
                        way(handler, i)
                        i += 4

            posters.start(poster)
        while posters.alive():
            posters.join(0.5)
            st.check_deadline(f"while posting ({hits.count(1)} of {n} ran, debug={debug})")
            st.progress(done_before + hits.count(1), debug=debug)
        posters.check_errors()
        # The last unit goes away from a random thread.
        extra = 0
        if st.rng.random() < 0.5:
            ctx.post(guard.reset)
            extra = 1
        else:
            guard.reset()
        runners.join_or_fail(f"run() after {n} posts (debug={debug})", ctx=ctx)
        ran = [int(runners.results[name]) for name in sorted(runners.results)]
        bad = [i for i in range(n) if hits[i] != 1] if hits.count(1) != n else []
        st.check(
            not bad,
            lambda: (
                f"{len(bad)} of {n} handlers did not run exactly once "
                f"(debug={debug}); first ids and counts: {[(i, hits[i]) for i in bad[:10]]}"
            ),
        )
        st.check(
            sum(ran) == n + extra,
            f"run() calls reported {sum(ran)} handlers, {n + extra} were posted",
        )
        st.check(ctx.stopped(), "the context is not stopped after its last handler")
        st.check(ctx._sched.outstanding() == 0, "outstanding work left after the last handler")
        return ran
    finally:
        close_context(ctx)


# ---------------------------------------------------------------- nested posts

NESTED_NODES = 400_000


@pytest.mark.timeout(timeout_for(120))
def test_nested_posts_stop_exactly_when_done(backend: str, stress: Stress) -> None:
    """Handlers post children from inside handlers (private queues); with no
    guard the context stops by itself exactly when the last one ran.  A
    premature stop (work made visible before it is counted)
    leaves handlers unrun when every run() has returned."""
    st = stress
    total = scaled(NESTED_NODES)
    per_round = min(4000, total)
    st.begin(total, 120, nodes_per_round=per_round)
    rounds = 0
    threads_used: Counter[int] = Counter()
    shapes: Counter[str] = Counter()
    ways: Counter[str] = Counter()
    done = 0
    for debug, n in st.phases(total):
        left = n
        while left > 0:
            m = min(per_round, left)
            nthreads = st.rng.choice((1, 2, 3, 4, 8, 8))
            threads_used[nthreads] += 1
            shape = st.rng.choice(("wide", "ladder"))
            shapes[shape] += 1
            with switch_interval(st.rng.choice(NESTED_SWITCH_INTERVALS)):
                _nested_round(st, backend, debug, m, nthreads, shape, ways)
            left -= m
            done += m
            rounds += 1
            st.check_deadline(f"after {done} of {total} nodes")
            st.progress(done, rounds=rounds)
    st.summary(
        backend=backend,
        rounds=rounds,
        shapes=dict(shapes),
        runner_threads=dict(threads_used),
        posts=dict(ways),
    )


def _nested_round(
    st: Stress,
    backend: str,
    debug: bool,
    m: int,
    nthreads: int,
    shape: str,
    ways: Counter[str],
) -> None:
    rng = st.rng
    children: list[list[int]] = [[] for _ in range(m)]
    # How each node is posted by its parent (post, dispatch, defer,
    # executor.post), and whether it blocks a moment after posting (its
    # children then sit in its private queue).
    how = [rng.randrange(4) for _ in range(m)]
    if shape == "wide":
        # A random tree: many handlers queued at once.
        roots = min(m, rng.randint(1, 16))
        for i in range(roots, m):
            children[rng.randrange(i)].append(i)  # parent precedes child
    else:
        # A ladder: each spine node posts 1-3 leaves and the next spine
        # node, so only a handful of handlers exist at any time and the
        # global count keeps coming back to 1 -- where publishing the
        # children before their count lets another thread stop the
        # context early (docs/scheduler.md, "Outstanding work").
        roots = 1
        spine = 0
        nxt = 1
        while nxt < m:
            kids = list(range(nxt, min(m, nxt + rng.randint(1, 3))))
            nxt += len(kids)
            if nxt < m:
                kids.append(nxt)
                how[nxt] = rng.choice((0, 2, 3))  # never inline: no deep recursion
                children[spine] = kids
                spine = nxt
                nxt += 1
            else:
                children[spine] = kids
            rng.shuffle(children[spine])
    naps = {i for i in range(m) if rng.random() < 0.01}
    ways.update(("post", "dispatch", "defer", "executor.post")[h] for h in how[roots:])
    ctx = make_context(backend, debug=debug)
    try:
        hits = bytearray(m)
        ex = ctx.executor
        post_ways = (ctx.post, ex.dispatch, ex.defer, ex.post)

        def node(i: int) -> None:
            hits[i] += 1
            for c in children[i]:
                post_ways[how[c]](node, c)
            if i in naps:
                time.sleep(0.0001)

        for r in range(roots):
            ctx.post(node, r)  # counted before any runner starts
        runners = Threads(st, "runner")
        for _ in range(nthreads):
            runners.start(ctx.run)
        runners.join_or_fail(
            f"run() in a nested round (debug={debug})", timeout=ROUND_TIMEOUT, ctx=ctx
        )
        ran = sum(int(v) for v in runners.results.values())
        missing = m - hits.count(1)
        if missing:
            unrun = [i for i in range(m) if hits[i] == 0]
            twice = [i for i in range(m) if hits[i] > 1]
            st.fail(
                f"every run() returned with {len(unrun)} of {m} handlers never run and "
                f"{len(twice)} run more than once (premature stop?); debug={debug} "
                f"threads={nthreads} outstanding={ctx._sched.outstanding()} "
                f"first unrun={unrun[:10]}"
            )
        # dispatch runs inline inside its parent: not counted by run().
        inline = sum(1 for c in range(roots, m) if how[c] == 1)
        st.check(
            ran == m - inline,
            f"run() calls reported {ran} handlers for {m} nodes ({inline} dispatched inline)",
        )
        st.check(ctx._sched.outstanding() == 0, "outstanding work after the round")
    finally:
        close_context(ctx)


# ---------------------------------------------------------------- stop / restart

CYCLES = 10_000
SCENARIOS = (
    "stop_foreign",
    "stop_in_handler",
    "stop_before_run",
    "stop_idle",
    "stop_timer",
    "autostop",
)
CYCLE_MODES = ("run", "run_for", "run_until", "run_one", "poll")


@pytest.mark.timeout(timeout_for(150))
def test_run_stop_restart_cycles(backend: str, stress: Stress) -> None:
    """10,000 run/stop/restart cycles served by 4 threads: every run() call
    returns in every cycle, whoever stops the context (a foreign thread
    before or during the run, a handler, a task after a timer, or the work
    count reaching zero), and queued work survives the stops."""
    st = stress
    total = scaled(CYCLES)
    st.begin(total, 150, threads=4)
    scenarios: Counter[str] = Counter()
    runs_returned = 0
    done = 0
    for debug, n in st.phases(total):
        with switch_interval(st.rng.choice(SWITCH_INTERVALS)):
            runs_returned += _cycles_phase(st, backend, debug, n, done, scenarios)
        done += n
    st.summary(backend=backend, run_calls_returned=runs_returned, scenarios=dict(scenarios))


def _cycles_phase(
    st: Stress, backend: str, debug: bool, n: int, done_before: int, scenarios: Counter[str]
) -> int:
    rng = st.rng
    ctx = make_context(backend, debug=debug)
    workers = Threads(st, "cycler")
    barrier = threading.Barrier(5)
    plan = [[rng.choice(CYCLE_MODES) for _ in range(4)] for _ in range(n)]
    returned = [0] * n
    count_lock = threading.Lock()
    max_posts = 8 * n
    hits = bytearray(max_posts)
    posted = 0
    tasks: list[corosio_py.Task[None]] = []
    barrier_timeout = 20.0

    def handler(i: int) -> None:
        hits[i] += 1

    def worker(idx: int) -> int:
        ran = 0
        for c in range(n):
            barrier.wait(barrier_timeout)
            ran += _serve(ctx, plan[c][idx], slice_seconds=30.0)
            with count_lock:
                returned[c] += 1
            barrier.wait(barrier_timeout)
        return ran

    async def stop_after(delay: float) -> None:
        await corosio_py.sleep(delay)
        ctx.stop()

    try:
        for idx in range(4):
            workers.start(worker, idx)
        for c in range(n):
            ctx.restart()
            scenario = rng.choice(SCENARIOS)
            scenarios[scenario] += 1
            guard = None if scenario == "autostop" else ctx.work_guard()
            if scenario == "stop_before_run":
                ctx.stop()
            k = 0 if scenario == "stop_idle" else rng.randrange(1, 9)
            for _ in range(k):
                ctx.post(handler, posted)
                posted += 1
            if scenario == "stop_in_handler":
                ctx.post(ctx.stop)
            elif scenario == "stop_timer":
                tasks.append(corosio_py.spawn(ctx, stop_after(rng.choice((0.0, 0.0001, 0.001)))))
            try:
                barrier.wait(barrier_timeout)
                if scenario in ("stop_foreign", "stop_idle"):
                    delay = rng.randrange(4)
                    if delay == 1:
                        time.sleep(0)
                    elif delay == 2:
                        time.sleep(0.0001)
                    elif delay == 3:
                        for _ in range(rng.randrange(200)):
                            pass
                    ctx.stop()
                barrier.wait(barrier_timeout)
            except threading.BrokenBarrierError:
                alive = workers.alive()
                ctx.stop()
                barrier.abort()
                workers.join(5.0)
                workers.check_errors()
                st.fail(
                    f"cycle {c} ({scenario}, modes {plan[c]}, debug={debug}): only "
                    f"{returned[c]} of 4 run calls returned within {barrier_timeout}s "
                    f"(threads alive: {alive})"
                )
            if guard is not None:
                guard.reset()
            st.check(returned[c] == 4, f"cycle {c}: {returned[c]} of 4 run calls returned")
            if c % 256 == 0:
                st.check_deadline(f"at cycle {c} of {n} (debug={debug})")
                st.progress(done_before + c, scenario=scenario)
        workers.join_or_fail("cycler threads at the end", ctx=ctx)
        # Queued work survived the stops: run what is left until no work.
        ctx.restart()
        ctx.run()
        bad = [i for i in range(posted) if hits[i] != 1]
        st.check(
            not bad,
            lambda: (
                f"{len(bad)} of {posted} handlers did not run exactly once across "
                f"the stops (debug={debug}); first: {[(i, hits[i]) for i in bad[:10]]}"
            ),
        )
        st.check(all(t.done() for t in tasks), "a stopping task never finished")
        st.check(ctx._sched.outstanding() == 0, "outstanding work after the cycles")
        return sum(returned)
    finally:
        ctx.stop()
        barrier.abort()
        workers.join(5.0)
        close_context(ctx)


# ---------------------------------------------------------------- work guards

GUARD_OPS = 100_000
GUARD_ACTIONS = (
    "create",
    "reset",
    "double_reset",
    "with",
    "executor_pair",
    "handoff",
    "post_action",
    "take_handoff",
)
#: What a posted action may do on a runner thread (anything but post again).
INNER_ACTIONS = tuple(a for a in GUARD_ACTIONS if a != "post_action")


@pytest.mark.timeout(timeout_for(120))
def test_work_guards_from_random_threads(backend: str, stress: Stress) -> None:
    """Work guards (and executor work counts) taken and released from random
    threads -- foreign threads and handlers -- while 4 threads run():
    no run() returns while a guard is held, a double reset releases once,
    and the final outstanding count is exactly zero."""
    st = stress
    total = scaled(GUARD_OPS)
    st.begin(total, 120, runners=4, actors=2)
    actions: Counter[str] = Counter()
    done = 0
    for debug, n in st.phases(total):
        with switch_interval(st.rng.choice(SWITCH_INTERVALS)):
            _guard_phase(st, backend, debug, n, done, actions)
        done += n
    st.summary(backend=backend, actions=dict(actions))


def _guard_phase(
    st: Stress, backend: str, debug: bool, n: int, done_before: int, actions: Counter[str]
) -> None:
    ctx = make_context(backend, debug=debug)
    try:
        anchor = ctx.work_guard()
        live: deque[Any] = deque()  # guards nobody has released yet
        handoff: deque[Any] = deque()  # units to be released by another thread
        posted = [0]
        executed = [0]
        count_lock = threading.Lock()
        action_lock = threading.Lock()
        ex = ctx.executor
        for _ in range(4):
            live.append(ctx.work_guard())

        def act(name: str) -> None:
            if name == "create":
                live.append(ctx.work_guard())
            elif name == "reset":
                try:
                    g = live.popleft()
                except IndexError:
                    return
                g.reset()
            elif name == "double_reset":
                try:
                    g = live.popleft()
                except IndexError:
                    return
                post_counted(g.reset)  # races the reset below on a runner
                g.reset()
            elif name == "with":
                with ctx.work_guard():
                    time.sleep(0)
            elif name == "executor_pair":
                ex.on_work_started()
                handoff.append(ex.on_work_finished)
            elif name == "handoff":
                handoff.append(ctx.work_guard().reset)
            elif name == "take_handoff":
                try:
                    release = handoff.popleft()
                except IndexError:
                    return
                release()

        def handler(name: str) -> None:
            act(name)
            with count_lock:
                executed[0] += 1

        def post_counted(fn: Callable[[], object]) -> None:
            with count_lock:
                posted[0] += 1

            def run_it() -> None:
                fn()
                with count_lock:
                    executed[0] += 1

            ctx.post(run_it)

        def actor(seed: int, count: int) -> None:
            import random

            rng = random.Random(seed)
            for _ in range(count):
                name = rng.choice(GUARD_ACTIONS)
                with action_lock:
                    actions[name] += 1
                if name == "post_action":
                    inner = rng.choice(INNER_ACTIONS)
                    with count_lock:
                        posted[0] += 1
                    ctx.post(handler, inner)
                else:
                    act(name)

        returned_early: list[str] = []

        def runner(mode: str) -> int:
            ran = _serve(ctx, mode)
            if anchor.owns_work:
                returned_early.append(mode)
            return ran

        runners = Threads(st, "runner")
        for _ in range(4):
            runners.start(runner, st.rng.choice(("run", "run", "run_for", "run_one")))
        actors = Threads(st, "actor")
        for k in range(2):
            actors.start(actor, st.rng.randrange(1 << 32), n // 2 + (n % 2 if k == 0 else 0))
        while actors.alive():
            actors.join(0.5)
            st.check_deadline(f"in the guard actors (debug={debug})")
            st.progress(done_before, debug=debug)
        actors.check_errors()
        wait_for(st, lambda: executed[0] == posted[0], "the posted guard actions to run")
        # Release what is left, half of it from runner threads.
        leftovers = list(live)
        live.clear()
        for g in leftovers:
            if st.rng.random() < 0.5:
                ctx.post(g.reset)
            else:
                g.reset()
        while handoff:
            release = handoff.popleft()
            if st.rng.random() < 0.5:
                ctx.post(release)
            else:
                release()
        time.sleep(0.01)
        st.check(
            not returned_early and not runners.errors,
            lambda: (
                f"run() returned while the anchor guard was held: {returned_early} "
                f"(debug={debug}, outstanding={ctx._sched.outstanding()}) {runners.errors[:1]}"
            ),
        )
        st.check(
            not ctx.stopped(),
            f"the context stopped while the anchor guard was held (debug={debug})",
        )
        st.check(
            ctx._sched.outstanding() >= 1,
            f"outstanding={ctx._sched.outstanding()} with the anchor guard held",
        )
        anchor.reset()
        runners.join_or_fail(f"run() after the last guard was released (debug={debug})", ctx=ctx)
        st.check(ctx.stopped(), "the context did not stop when the last guard was released")
        st.check(
            ctx._sched.outstanding() == 0,
            f"outstanding={ctx._sched.outstanding()} after every guard was released "
            f"(a reset counted twice or a creation missed; debug={debug})",
        )
    finally:
        close_context(ctx)


# ---------------------------------------------------------------- handler exceptions

THROWS = 200_000


class BoomError(Exception):
    """Raised by a posted handler on purpose."""

    def __init__(self, ident: int) -> None:
        super().__init__(ident)
        self.ident = ident


@pytest.mark.timeout(timeout_for(120))
def test_handler_exceptions_surface_once(backend: str, stress: Stress) -> None:
    """Posted handlers raise at random while 4 threads keep running: each
    exception leaves exactly one run() call, the thread runs again, and no
    other handler is lost (also the children a raising handler posted)."""
    st = stress
    total = scaled(THROWS)
    st.begin(total, 120, runners=4, posters=2)
    thrown = 0
    children = 0
    done = 0
    for debug, n in st.phases(total):
        with switch_interval(st.rng.choice(SWITCH_INTERVALS)):
            t, c = _throw_phase(st, backend, debug, n, done)
        thrown += t
        children += c
        done += n
    st.summary(
        backend=backend,
        handlers=total,
        raised=thrown,
        children_of_raisers=children,
        survived=total - thrown,
    )


def _throw_phase(
    st: Stress, backend: str, debug: bool, n: int, done_before: int
) -> tuple[int, int]:
    rng = st.rng
    raises = bytearray(1 if rng.random() < 0.1 else 0 for _ in range(n))
    # A raising handler posts a child (id n + k) first, half of the time.
    child_of: dict[int, int] = {}
    for i in range(n):
        if raises[i] and rng.random() < 0.5:
            child_of[i] = n + len(child_of)
    size = n + len(child_of)
    ctx = make_context(backend, debug=debug)
    try:
        hits = bytearray(size)
        caught: list[int] = []
        others: list[str] = []

        def handler(i: int) -> None:
            hits[i] += 1
            if i < n and raises[i]:
                child = child_of.get(i)
                if child is not None:
                    ctx.post(handler, child)  # private queue: published by _leave
                raise BoomError(i)

        def runner(mode: str) -> int:
            ran = 0
            while True:
                try:
                    ran += _serve(ctx, mode)
                    return ran
                except BoomError as exc:
                    caught.append(exc.ident)
                except BaseException as exc:
                    others.append(repr(exc))
                    raise

        guard = ctx.work_guard()
        runners = Threads(st, "runner")
        for _ in range(4):
            runners.start(runner, rng.choice(("run", "run", "run_one", "run_for")))
        posters = Threads(st, "poster")
        for k in range(2):

            def poster(k: int = k) -> None:
                for i in range(k, n, 2):
                    ctx.post(handler, i)

            posters.start(poster)
        while posters.alive():
            posters.join(0.5)
            st.check_deadline(f"while posting raising handlers (debug={debug})")
            st.progress(done_before + hits.count(1), debug=debug)
        posters.check_errors()
        guard.reset()
        runners.join_or_fail(f"run() after the raising handlers (debug={debug})", ctx=ctx)
        st.check(not others, f"unexpected exceptions from run(): {others[:3]}")
        bad = [i for i in range(size) if hits[i] != 1] if hits.count(1) != size else []
        st.check(
            not bad,
            lambda: (
                f"{len(bad)} of {size} handlers did not run exactly once "
                f"(debug={debug}); first: {[(i, hits[i]) for i in bad[:10]]}"
            ),
        )
        expected = sorted(i for i in range(n) if raises[i])
        got = sorted(caught)
        if got != expected:
            dup = [i for i, k in Counter(got).items() if k > 1]
            lost = sorted(set(expected) - set(got))
            st.fail(
                f"{len(expected)} handlers raised, {len(got)} exceptions left run(): "
                f"surfaced twice {dup[:10]}, never surfaced {lost[:10]} (debug={debug})"
            )
        st.check(ctx._sched.outstanding() == 0, "outstanding work after the raising handlers")
        return len(expected), len(child_of)
    finally:
        close_context(ctx)


# ---------------------------------------------------------------- reactor faults

FAULT_ROUNDS = 400


def _reactor_state(ctx: IOContext) -> str:
    """Diagnostics: who holds the reactor role (private scheduler state)."""
    sched = ctx._sched
    if not isinstance(sched, ThreadedScheduler):
        return f"{type(sched).__name__}: no shared reactor role"
    with sched._lock:
        queued = any(h is REACTOR_SENTINEL for h in sched._queue)
        return (
            f"reactor pass running={sched._reactor_running}, sentinel queued={queued}, "
            f"threads in run={len(sched._frames)}, idle={len(sched._idle)}"
        )


class InjectedFaultError(Exception):
    """Raised by the monkeypatched reactor wait."""


@pytest.mark.timeout(timeout_for(120))
def test_reactor_pass_exceptions_leave_context_usable(backend: str, stress: Stress) -> None:
    """The reactor's wait raises at random (an injected fault) while tasks
    sleep on timers and ping-pong on sockets: each fault leaves exactly one
    run() call, the reactor role passes on (the sentinel goes back to the
    queue; docs/scheduler.md, "A pass delivers everything before it
    raises") and every task still finishes."""
    st = stress
    total = scaled(FAULT_ROUNDS)
    st.begin(total, 120, runners=4, tasks_per_round=16)
    injected = 0
    passes = 0
    done = 0
    for debug, n in st.phases(total):
        with switch_interval(st.rng.choice(SWITCH_INTERVALS)):
            i, p = _fault_phase(st, backend, debug, n, done)
        injected += i
        passes += p
        done += n
    st.summary(
        backend=backend,
        reactor_passes=passes,
        faults_injected=injected,
        passes_ok=passes - injected,
    )


def _fault_phase(
    st: Stress, backend: str, debug: bool, rounds: int, done_before: int
) -> tuple[int, int]:
    import random

    from corosio_py.testing import socket_pair

    rng = st.rng
    ctx = make_context(backend, debug=debug)
    reactor = ctx._sched.reactor
    original = reactor.wait
    fault_rng = random.Random(rng.randrange(1 << 32))
    stats = {"injected": 0, "passes": 0}
    stats_lock = threading.Lock()
    rate = rng.choice((0.05, 0.2, 0.5))

    def faulty_wait(timeout: float | None) -> Any:
        with stats_lock:
            stats["passes"] += 1
            fault = fault_rng.random() < rate
            if fault:
                stats["injected"] += 1
        if fault:
            raise InjectedFaultError("injected into the reactor wait")
        return original(timeout)

    reactor.wait = faulty_wait  # type: ignore[method-assign]
    caught = [0]
    caught_lock = threading.Lock()
    others: list[str] = []
    finished = threading.Event()

    def runner() -> int:
        ran = 0
        while True:
            try:
                ran += ctx.run()
            except InjectedFaultError:
                with caught_lock:
                    caught[0] += 1
                continue
            except BaseException as exc:
                others.append(repr(exc))
                raise
            return ran  # stopped: the guard is gone and the work is done

    async def sleeper(k: int) -> int:
        for _ in range(k):
            await corosio_py.sleep(rng_sleep())
        return k

    def rng_sleep() -> float:
        return random.choice((0.0, 0.0001, 0.0005, 0.001))

    async def pinger(a: corosio_py.TCPSocket, b: corosio_py.TCPSocket, k: int) -> int:
        buf = bytearray(4)
        for i in range(k):
            await a.write_all(i.to_bytes(4, "big"))
            got = 0
            while got < 4:
                r = await b.read_some(memoryview(buf)[got:])
                if r == 0:
                    raise EOFError("unexpected EOF in the ping-pong")
                got += r
            if int.from_bytes(buf, "big") != i:
                raise AssertionError(f"ping-pong got {buf!r}, expected {i}")
        return k

    runners = Threads(st, "runner")
    try:
        guard = ctx.work_guard()
        for _ in range(4):
            runners.start(runner)
        for r in range(rounds):
            tasks: list[corosio_py.Task[int]] = []
            pairs = [socket_pair(ctx) for _ in range(4)]
            for a, b in pairs:
                tasks.append(corosio_py.spawn(ctx, pinger(a, b, rng.randint(1, 8))))
            tasks.extend(corosio_py.spawn(ctx, sleeper(rng.randint(1, 4))) for _ in range(12))

            def round_done(tasks: list[corosio_py.Task[int]] = tasks) -> bool:
                return all(t.done() for t in tasks)

            def round_state(r: int = r, tasks: list[corosio_py.Task[int]] = tasks) -> str:
                return (
                    f"round {r}: tasks to finish with reactor faults (debug={debug}, "
                    f"rate={rate}, injected={stats['injected']}, caught={caught[0]}, "
                    f"unfinished={sum(not t.done() for t in tasks)}, "
                    f"outstanding={ctx._sched.outstanding()}, {_reactor_state(ctx)})"
                )

            wait_for(st, round_done, round_state, timeout=ROUND_TIMEOUT, abort=runners.gone)
            for t in tasks:
                t.result()
            for a, b in pairs:
                a.close()
                b.close()
            st.progress(done_before + r, injected=stats["injected"])
        finished.set()
        guard.reset()
        runners.join_or_fail(f"run() after the fault rounds (debug={debug})", ctx=ctx)
        st.check(not others, f"unexpected exceptions from run(): {others[:3]}")
        st.check(
            caught[0] == stats["injected"],
            f"{stats['injected']} faults injected, {caught[0]} left run() (debug={debug})",
        )
        st.check(ctx._sched.outstanding() == 0, "outstanding work after the fault rounds")
        return stats["injected"], stats["passes"]
    finally:
        finished.set()
        reactor.wait = original  # type: ignore[method-assign]
        ctx.stop()
        runners.join(5.0)
        close_context(ctx)
