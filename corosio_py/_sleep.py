"""How an idle runner thread sleeps until another thread wakes it.

Under the GIL a ``threading.Lock`` held by the sleeper and released by the
waker is the cheapest one-shot signal.  Without the GIL (free-threaded
CPython 3.13t) a blocking ``Lock.acquire`` first *spins*: up to 40
``sched_yield`` calls before the thread parks.  An idle runner sleeping
that way burned CPU and forced context switches on every idle period --
measured on the HTTP example with 2 threads, about two ``sched_yield``
calls per request, taken from the core the load generator needed.  So on
a free-threaded build an idle thread sleeps in ``poll()`` on a wake-up fd
instead (the reactor's own :class:`~corosio_py._reactor._wake.Waker`), which
blocks in the kernel at once.

Both kinds offer the same two calls, with ``threading.Lock``'s meaning:
``acquire(blocking, timeout)`` waits for a wake-up (True) or times out
(False) and consumes it; ``release()`` wakes the sleeper (a wake-up that
nobody waits for stays pending for the next ``acquire``).
"""

from __future__ import annotations

import math
import select
import sys
import threading
from typing import Protocol

from ._reactor._wake import PipeWaker, Waker

__all__ = ("SleepSignal", "new_sleep_signal")


class SleepSignal(Protocol):
    """A one-shot wake-up for one sleeping thread (see the module docstring)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...


class FdSleepSignal:
    """A :class:`SleepSignal` over a wake-up fd: sleeps in ``poll()``.

    ``close()`` releases the fd; the owner calls it once no waker can
    reach the signal any more.
    """

    __slots__ = ("_waker", "_poll")

    def __init__(self) -> None:
        self._waker: Waker = FdWaker()
        self._poll = select.poll()
        self._poll.register(self._waker.fd, select.POLLIN)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Wait for a wake-up (at most ``timeout`` seconds; -1: forever)."""
        if not blocking:
            ms = 0
        elif timeout < 0:
            ms = -1
        else:
            ms = math.ceil(timeout * 1000.0)  # never round a short wait to a spin
        if not self._poll.poll(ms):
            return False
        self._waker.consume()
        return True

    def release(self) -> None:
        """Wake the sleeper (idempotent until it has woken)."""
        self._waker.signal()

    def close(self) -> None:
        """Release the fd (later wake-ups are ignored)."""
        self._waker.close()


if sys.platform == "linux":
    from ._reactor._wake import EventFdWaker as FdWaker
else:
    FdWaker = PipeWaker


def new_sleep_signal(gil: bool) -> threading.Lock | FdSleepSignal:
    """A sleep signal, not yet signalled: a lock under the GIL, else an fd."""
    if gil:
        lock = threading.Lock()
        lock.acquire()
        return lock
    return FdSleepSignal()
