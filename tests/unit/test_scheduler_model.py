"""Model-based tests of the scheduler's single-thread semantics.

A hypothesis state machine drives one :class:`IOContext` (per backend, with
the default and the ``concurrency_hint=1`` scheduler) with posts, the run
variants, stop/restart and work guards, and checks every step against a
small reference model:

* ``queue``: posted-but-not-run handlers, run in FIFO order by one thread;
* outstanding work = queued handlers + held guards;
* ``stopped``: set by ``stop()`` and whenever the count is zero in a
  ``run*``/``poll*`` call (every run variant first checks the counter: zero
  -> stop, return 0; the call that runs the last handler leaves the context
  stopped), and by releasing the last guard; ``restart()`` clears it.

The model never asks for a call that would block (a guard outstanding,
nothing queued, not stopped): there it uses ``poll``/``run_for(0)``.

A second, ``@given`` test runs one random sequence on a default context and
on a ``concurrency_hint=1`` context and checks that both report the same.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from corosio_py import IOContext, WorkGuard

pytestmark = pytest.mark.timeout(60)

MACHINE_SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None)


class SchedulerModel(RuleBasedStateMachine):
    """Drive one IOContext and mirror it in a reference model."""

    backend: str = ""
    hint: int | None = None
    #: Whether handlers may post handlers (the post_parent rule).
    nested: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.ctx = IOContext(concurrency_hint=self.hint, backend=self.backend)
        self.ran: list[int] = []  # handler ids in the order the context ran them
        self.expected: list[int] = []  # ... and in the order the model ran them
        self.queue: deque[int] = deque()  # the model's posted-but-not-run handlers
        self.children: dict[int, int] = {}  # parent id -> id of the handler it posts
        self.guards: list[WorkGuard] = []
        self.stopped = False
        self.next_id = 0

    # ------------------------------------------------------------ model

    @property
    def outstanding(self) -> int:
        return len(self.queue) + len(self.guards)

    def would_block_one(self) -> bool:
        """run_one() would wait: a guard outstanding and nothing queued."""
        return not self.stopped and not self.queue and bool(self.guards)

    def would_block_all(self) -> bool:
        """run() would wait once the queue is drained."""
        return not self.stopped and bool(self.guards)

    def model_enter(self) -> bool:
        """The checks at the top of every step: False means "return 0"."""
        if self.stopped:
            return False
        if self.outstanding == 0:
            self.stopped = True
            return False
        return True

    def model_run_one(self) -> None:
        """Run the head of the queue (a parent queues its child at the tail)."""
        hid = self.queue.popleft()
        self.expected.append(hid)
        child = self.children.get(hid)
        if child is not None:
            self.queue.append(child)
        if self.outstanding == 0:
            self.stopped = True  # the transition to zero stops the context

    def model_run(self, limit: int) -> int:
        """run / run_one / poll / poll_one on a non-blocking state."""
        n = 0
        while n < limit and self.model_enter() and self.queue:
            self.model_run_one()
            n += 1
        return n

    # ------------------------------------------------------------ the SUT

    def new_id(self) -> int:
        hid = self.next_id
        self.next_id += 1
        return hid

    def handler(self, hid: int) -> None:
        self.ran.append(hid)

    def parent(self, hid: int, child: int) -> None:
        self.ran.append(hid)
        self.ctx.post(self.handler, child)

    # ------------------------------------------------------------ rules

    @rule(k=st.integers(min_value=1, max_value=4))
    def post(self, k: int) -> None:
        for _ in range(k):
            hid = self.new_id()
            self.ctx.post(self.handler, hid)
            self.queue.append(hid)

    @precondition(lambda self: self.nested)
    @rule()
    def post_parent(self) -> None:
        """A handler that posts one more handler when it runs."""
        hid = self.new_id()
        child = self.new_id()
        self.children[hid] = child
        self.ctx.post(self.parent, hid, child)
        self.queue.append(hid)

    @precondition(lambda self: not self.would_block_one())
    @rule()
    def run_one(self) -> None:
        expected = self.model_run(1)
        assert self.ctx.run_one() == expected

    @precondition(lambda self: not self.would_block_all())
    @rule()
    def run(self) -> None:
        expected = self.model_run(1 << 62)
        assert self.ctx.run() == expected

    @rule()
    def poll_one(self) -> None:
        expected = self.model_run(1)
        assert self.ctx.poll_one() == expected

    @rule()
    def poll(self) -> None:
        expected = self.model_run(1 << 62)
        assert self.ctx.poll() == expected

    @rule()
    def run_for_zero(self) -> None:
        """A zero timeout runs some prefix of the ready handlers.

        How many depends on where the reactor's turn falls in the queue, so
        the model accepts any count up to the whole queue and follows it.
        """
        got = self.ctx.run_for(0)
        if not self.model_enter():
            assert got == 0
            return
        assert got >= 0
        n = 0
        while n < got:
            assert self.queue, f"run_for(0) ran {got} handlers, more than were queued"
            self.model_run_one()
            n += 1

    @rule()
    def stop(self) -> None:
        self.ctx.stop()
        self.stopped = True

    @rule()
    def restart(self) -> None:
        self.ctx.restart()
        self.stopped = False

    @rule()
    def acquire_guard(self) -> None:
        self.guards.append(self.ctx.work_guard())

    @precondition(lambda self: bool(self.guards))
    @rule(data=st.data())
    def release_guard(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.guards) - 1), label="guard")
        guard = self.guards.pop(index)
        guard.reset()
        if self.outstanding == 0:
            self.stopped = True

    # ------------------------------------------------------------ checks

    @invariant()
    def handlers_ran_in_fifo_order_exactly_once(self) -> None:
        assert self.ran == self.expected
        assert len(set(self.ran)) == len(self.ran)

    @invariant()
    def stopped_matches(self) -> None:
        assert self.ctx.stopped() == self.stopped

    def teardown(self) -> None:
        for guard in self.guards:
            guard.reset()
        self.ctx.close()


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("hint", [None, 1], ids=["default", "hint1"])
def test_scheduler_matches_model(backend: str, hint: int | None, nested: bool) -> None:
    """``nested`` adds handlers that post a handler when they run: the child
    goes to the tail of the queue, behind everything posted before it."""
    machine = type(
        f"SchedulerModel_{backend}_{'hint1' if hint == 1 else 'default'}",
        (SchedulerModel,),
        {"backend": backend, "hint": hint, "nested": nested},
    )
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


# --------------------------------------------------------------------------
# concurrency_hint=1 behaves like the default scheduler


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(min_value=1, max_value=4)),
        st.tuples(
            st.sampled_from(
                [
                    "post_parent",
                    "poll",
                    "poll_one",
                    "run_one",
                    "run",
                    "run_for0",
                    "stop",
                    "restart",
                    "guard",
                    "release",
                ]
            ),
            st.just(0),
        ),
    ),
    max_size=40,
)


def replay(ctx: IOContext, ops: list[tuple[str, int]]) -> list[Any]:
    """Apply ``ops`` to ``ctx``; return everything observable, step by step."""
    ran: list[int] = []
    trace: list[Any] = []
    guards: list[WorkGuard] = []
    next_id = 0

    def parent(hid: int, child: int) -> None:
        ran.append(hid)
        ctx.post(ran.append, child)

    for op, k in ops:
        result: object = None
        if op == "post":
            for _ in range(k):
                ctx.post(ran.append, next_id)
                next_id += 1
        elif op == "post_parent":
            ctx.post(parent, next_id, next_id + 1)
            next_id += 2
        elif op == "poll":
            result = ctx.poll()
        elif op == "poll_one":
            result = ctx.poll_one()
        elif op in ("run_one", "run"):
            # Without a guard neither can block: no handler here waits.
            result = "skipped" if guards else getattr(ctx, op)()
        elif op == "run_for0":
            result = ctx.run_for(0)
        elif op == "stop":
            ctx.stop()
        elif op == "restart":
            ctx.restart()
        elif op == "guard":
            guards.append(ctx.work_guard())
        elif op == "release" and guards:
            guards.pop().reset()
        trace.append((op, result, ctx.stopped(), list(ran)))
    for guard in guards:
        guard.reset()
    return trace


@pytest.mark.timeout(120)
def test_single_threaded_hint_matches_default(backend: str) -> None:
    @settings(max_examples=200, deadline=None)
    @given(ops=OPS)
    # A handler posted by a handler queues behind work posted before it.
    @example(ops=[("post_parent", 0), ("post_parent", 0), ("run_one", 0), ("poll", 0)])
    def check(ops: list[tuple[str, int]]) -> None:
        with (
            IOContext(backend=backend) as default,
            IOContext(concurrency_hint=1, backend=backend) as single,
        ):
            assert replay(single, ops) == replay(default, ops)

    check()
