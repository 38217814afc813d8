"""Queue: a FIFO of items between tasks (and plain threads), thread-safe.

Items, parked getters and parked putters live under one mutex.  Getters
park only while the queue is empty, putters only while it is full, so an
item handed to a parked getter skips the deque without breaking FIFO order.
A getter's grant is the item itself: a cancel that comes after it finds the
getter gone and the item is delivered (cancellation never loses an item); a
putter cancelled while parked never put its item.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, TypeVar, final

from ._cancel import StopToken
from ._sync import refuse_if_stopped
from ._waiters import NOT_READY, Waiter, WaiterFifo, grant_first

__all__ = ("Queue", "QueueEmpty", "QueueFull")

T = TypeVar("T")


class QueueFull(Exception):  # noqa: N818 - asyncio's name
    """``Queue.put_nowait`` on a full queue."""


class QueueEmpty(Exception):  # noqa: N818 - asyncio's name
    """``Queue.get_nowait`` on an empty queue."""


class _Get(Waiter):
    __slots__ = ("_queue",)

    def __init__(self, queue: Queue[Any], stop_token: StopToken | None) -> None:
        super().__init__(queue._mutex, queue._getters, stop_token)
        self._queue = queue

    def try_now(self) -> object:
        return self._queue._take_locked()

    def discard(self, value: object) -> None:
        if value is not NOT_READY:  # an item its closed context dropped
            self._queue._give_back(value)


class _Put(Waiter):
    __slots__ = ("_queue", "item")

    def __init__(self, queue: Queue[Any], item: object, stop_token: StopToken | None) -> None:
        super().__init__(queue._mutex, queue._putters, stop_token)
        self._queue = queue
        self.item = item

    def try_now(self) -> object:
        return None if self._queue._offer_locked(self.item) else NOT_READY


@final
class Queue(Generic[T]):
    """A FIFO queue for tasks (``asyncio.Queue``'s interface).

    ``maxsize <= 0`` means unbounded.  ``await put(item)`` waits while the
    queue is full, ``await get()`` while it is empty; ``put_nowait`` and
    ``get_nowait`` raise :class:`QueueFull` / :class:`QueueEmpty` instead
    and may be called from any thread, including a plain thread outside
    every ``run()`` (a waiting task is resumed on its own context).
    ``task_done()`` and ``await join()`` track consumed items.
    """

    __slots__ = ("_mutex", "_maxsize", "_items", "_getters", "_putters", "_unfinished", "_joiners")

    def __init__(self, maxsize: int = 0) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        self._mutex = threading.Lock()
        self._maxsize = maxsize
        # Guarded by _mutex (len() of _items read unlocked as a snapshot):
        self._items: deque[T] = deque()
        self._getters: WaiterFifo[Waiter, None] = WaiterFifo()
        self._putters: WaiterFifo[Waiter, None] = WaiterFifo()
        self._unfinished = 0  # items put and not yet task_done()
        self._joiners: WaiterFifo[Waiter, None] = WaiterFifo()

    @property
    def maxsize(self) -> int:
        """The capacity given at construction (``<= 0``: unbounded)."""
        return self._maxsize

    def qsize(self) -> int:
        """Items in the queue now."""
        return len(self._items)

    def empty(self) -> bool:
        """Whether the queue holds no item now."""
        return not self._items

    def full(self) -> bool:
        """Whether a ``put`` would wait now."""
        return 0 < self._maxsize <= len(self._items)

    async def put(self, item: T, stop_token: StopToken | None = None) -> None:
        """Put ``item`` at the back, waiting while the queue is full."""
        if stop_token is not None:
            refuse_if_stopped(stop_token)
        mutex = self._mutex
        mutex.acquire()  # not ``with``: this is the hot path (docs/concurrency.md)
        try:
            if not self._getters and not 0 < self._maxsize <= len(self._items):
                self._items.append(item)  # the common case, inline
                self._unfinished += 1
                return
            taken = self._offer_locked(item)
        finally:
            mutex.release()
        if not taken:
            await _Put(self, item, stop_token)

    def put_nowait(self, item: T) -> None:
        """Put ``item`` at once.

        :raises QueueFull: when the queue is full.
        """
        mutex = self._mutex
        mutex.acquire()
        try:
            taken = self._offer_locked(item)
        finally:
            mutex.release()
        if not taken:
            raise QueueFull()

    async def get(self, stop_token: StopToken | None = None) -> T:
        """Take the front item, waiting while the queue is empty."""
        if stop_token is not None:
            refuse_if_stopped(stop_token)
        mutex = self._mutex
        mutex.acquire()
        try:
            if self._items and not self._putters:
                return self._items.popleft()  # the common case, inline
            item = self._take_locked()
        finally:
            mutex.release()
        if item is NOT_READY:
            item = await _Get(self, stop_token)
        return item  # type: ignore[return-value]

    def get_nowait(self) -> T:
        """Take the front item at once.

        :raises QueueEmpty: when the queue is empty.
        """
        mutex = self._mutex
        mutex.acquire()
        try:
            item = self._take_locked()
        finally:
            mutex.release()
        if item is NOT_READY:
            raise QueueEmpty()
        return item  # type: ignore[return-value]

    def task_done(self) -> None:
        """Mark one item taken from the queue as processed.

        :raises ValueError: when called more often than items were put.
        """
        with self._mutex:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            if self._unfinished == 0:
                while grant_first(self._joiners, None) is not None:
                    pass

    async def join(self) -> None:
        """Wait until every item put has been marked with ``task_done()``."""
        await _Join(self)

    # ------------------------------------------------------------ internals

    def _offer_locked(self, item: T) -> bool:
        """Hand ``item`` to a parked getter or append it; False when full."""
        if not self._getters or grant_first(self._getters, item) is None:
            if 0 < self._maxsize <= len(self._items):
                return False
            self._items.append(item)
        self._unfinished += 1
        return True

    def _take_locked(self) -> object:
        """The front item (refilled from a parked putter), or NOT_READY."""
        items = self._items
        if not items:
            return NOT_READY
        item = items.popleft()
        if self._putters:
            putter, _ = self._putters.popitem(last=False)
            assert isinstance(putter, _Put)
            items.append(putter.item)  # type: ignore[arg-type]
            self._unfinished += 1
            putter.grant_locked(None)
        return item

    def _give_back(self, item: object) -> None:
        """An item granted to a task whose context closed: back to the front
        (still counted as unfinished: it was never consumed)."""
        with self._mutex:
            if grant_first(self._getters, item) is None:
                self._items.appendleft(item)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        with self._mutex:
            size, getters, putters = len(self._items), len(self._getters), len(self._putters)
        return f"<Queue maxsize={self._maxsize} qsize={size} getters={getters} putters={putters}>"


class _Join(Waiter):
    __slots__ = ("_queue",)

    def __init__(self, queue: Queue[Any]) -> None:
        super().__init__(queue._mutex, queue._joiners)
        self._queue = queue

    def try_now(self) -> object:
        return None if self._queue._unfinished == 0 else NOT_READY
