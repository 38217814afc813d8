"""Model-based tests of Queue and Semaphore against sequential models.

A hypothesis state machine drives a real :class:`Queue` (or
:class:`Semaphore`) from tasks on one context plus plain calls, settling the
context after every step, and mirrors each step in a small reference model:

* the queue's items in FIFO order; parked getters and putters in FIFO order
  (a getter parks only while the queue is empty, a putter only while full);
* a put with a getter parked hands the item to the oldest getter; a get
  with a putter parked refills the queue from the oldest putter;
* a cancelled parked waiter leaves its FIFO and takes or gives nothing; a
  cancel that comes after the grant changes nothing (the grant is kept);
* for the semaphore: the count, and the FIFO of parked acquirers.

At the end every item is accounted for exactly once: taken by exactly one
getter (task or ``get_nowait``) or still in the queue.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import corosio_py as cp
from tests.unit.sync_helpers import outcome, settle

pytestmark = pytest.mark.timeout(120)

MACHINE_SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)


class QueueModel(RuleBasedStateMachine):
    """A real Queue driven by tasks, mirrored by deques."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = cp.IOContext()
        self.maxsize = 2
        self.queue: cp.Queue[int] = cp.Queue(self.maxsize)
        self.next_item = 0
        # The model.
        self.items: deque[int] = deque()
        self.getters: deque[cp.Task[Any]] = deque()  # parked, oldest first
        self.putters: deque[tuple[cp.Task[Any], int]] = deque()
        self.expected: dict[int, object] = {}  # id(task) -> its outcome
        self.tasks: list[cp.Task[Any]] = []
        self.taken_nowait: list[int] = []
        self.accepted: list[int] = []  # items the queue took in

    def _full(self) -> bool:
        return len(self.items) >= self.maxsize

    def _spawn(self, coro: Any) -> cp.Task[Any]:
        task = cp.spawn(self.ctx, coro)
        self.tasks.append(task)
        return task

    def _offer(self, item: int) -> bool:
        """The model's put: to the oldest getter, else appended, else False."""
        if self.getters:
            self.expected[id(self.getters.popleft())] = item
        elif self._full():
            return False
        else:
            self.items.append(item)
        self.accepted.append(item)
        return True

    def _take(self) -> int | None:
        """The model's get: the front item, refilled from the oldest putter."""
        if not self.items:
            return None
        item = self.items.popleft()
        if self.putters:
            putter, pitem = self.putters.popleft()
            self.items.append(pitem)
            self.accepted.append(pitem)
            self.expected[id(putter)] = None
        return item

    @rule()
    def get_task(self) -> None:
        task = self._spawn(self.queue.get())
        item = self._take()
        if item is None:
            self.getters.append(task)
        else:
            self.expected[id(task)] = item
        settle(self.ctx)

    @rule()
    def put_task(self) -> None:
        item, self.next_item = self.next_item, self.next_item + 1
        task = self._spawn(self.queue.put(item))
        if self._offer(item):
            self.expected[id(task)] = None
        else:
            self.putters.append((task, item))
        settle(self.ctx)

    @rule()
    def put_nowait(self) -> None:
        item, self.next_item = self.next_item, self.next_item + 1
        try:
            self.queue.put_nowait(item)
            took = True
        except cp.QueueFull:
            took = False
        assert took == self._offer(item)
        settle(self.ctx)

    @rule()
    def get_nowait(self) -> None:
        try:
            got: int | None = self.queue.get_nowait()
        except cp.QueueEmpty:
            got = None
        assert got == self._take()
        if got is not None:
            self.taken_nowait.append(got)
        settle(self.ctx)

    @precondition(lambda self: bool(self.getters) or bool(self.putters))
    @rule(data=st.data())
    def cancel_parked(self, data: st.DataObject) -> None:
        parked = list(self.getters) + [t for t, _ in self.putters]
        task = data.draw(st.sampled_from(parked))
        task.cancel()
        if task in self.getters:
            self.getters.remove(task)
        else:
            self.putters = deque((t, i) for t, i in self.putters if t is not task)
        self.expected[id(task)] = "cancelled"
        settle(self.ctx)

    @rule(data=st.data())
    def cancel_after_grant(self, data: st.DataObject) -> None:
        """Grant a parked getter with a put and cancel it before it resumes."""
        if not self.getters:
            return
        task = self.getters[0]
        item, self.next_item = self.next_item, self.next_item + 1
        self.queue.put_nowait(item)
        assert self._offer(item)
        task.cancel()  # too late: it already has the item
        settle(self.ctx)

    @invariant()
    def matches(self) -> None:
        assert self.queue.qsize() == len(self.items)
        for task in self.tasks:
            want = self.expected.get(id(task), "pending")
            got = outcome(task) if task.done() else "pending"
            assert got == want, f"{task!r}: got {got!r}, model says {want!r}"

    def teardown(self) -> None:
        try:
            delivered = [outcome(t) for t in self.tasks if t.done()]
            got = [v for v in delivered if isinstance(v, int)] + self.taken_nowait
            got += list(self.items)
            assert sorted(got) == sorted(self.accepted), "an item was lost or duplicated"
        finally:
            self.ctx.close()


class SemaphoreModel(RuleBasedStateMachine):
    """A real Semaphore driven by tasks, mirrored by a count and a FIFO."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = cp.IOContext()
        self.sem = cp.Semaphore(1)
        self.value = 1
        self.waiting: deque[cp.Task[Any]] = deque()
        self.expected: dict[int, object] = {}
        self.tasks: list[cp.Task[Any]] = []
        self.holders = 0  # permits granted and not yet released

    @rule()
    def acquire(self) -> None:
        task = cp.spawn(self.ctx, self.sem.acquire())
        self.tasks.append(task)
        if self.value > 0:
            self.value -= 1
            self.holders += 1
            self.expected[id(task)] = True
        else:
            self.waiting.append(task)
        settle(self.ctx)

    @rule()
    def release(self) -> None:
        self.sem.release()
        if self.waiting:
            self.expected[id(self.waiting.popleft())] = True
        else:
            self.value += 1
            self.holders -= 1
        settle(self.ctx)

    @precondition(lambda self: bool(self.waiting))
    @rule(data=st.data())
    def cancel_waiting(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(list(self.waiting)))
        task.cancel()
        self.waiting.remove(task)
        self.expected[id(task)] = "cancelled"
        settle(self.ctx)

    @invariant()
    def matches(self) -> None:
        assert self.sem.value == self.value
        assert self.sem.locked() == (self.value == 0)
        for task in self.tasks:
            want = self.expected.get(id(task), "pending")
            got = outcome(task) if task.done() else "pending"
            assert got == want, f"{task!r}: got {got!r}, model says {want!r}"

    def teardown(self) -> None:
        self.ctx.close()


TestQueueModel = QueueModel.TestCase
TestQueueModel.settings = MACHINE_SETTINGS
TestSemaphoreModel = SemaphoreModel.TestCase
TestSemaphoreModel.settings = MACHINE_SETTINGS
