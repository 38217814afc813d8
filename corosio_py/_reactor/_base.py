"""The small interface every reactor backend implements.

A reactor is the OS readiness API of one context (epoll, kqueue, poll or
select).  The scheduler owns exactly one; whichever thread holds the reactor
sentinel calls :meth:`Reactor.wait` with the scheduler lock *released*.  Every
other method may be called from any thread at any time.

Descriptors are registered once, for read and write, when they are opened and
stay registered until just before they are closed (no per-operation re-arming,
upstream behaviour).  Edge-triggered backends (epoll, kqueue) report a
readiness edge once; the level-triggered ones (poll, select) emulate that by
asking each target, at every pass, whether it still wants to hear about a
direction (3.4.6), so a socket with unread data and no parked reader never
makes the reactor spin.
"""

from __future__ import annotations

import select
import sys
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final, Protocol

#: Readiness bits handed to a target (upstream uses the epoll values).
READ = 0x1
WRITE = 0x4
ERROR = 0x8
#: The peer hung up (or half-closed): readable without any further edge.
HANGUP = 0x10

#: The longest single OS wait, in seconds.  epoll_wait and poll take an int
#: of milliseconds (about 24.8 days at most) and select a timeval; a longer
#: or infinite timeout would raise ``OverflowError``.  A pass cut short by
#: this bound returns no events and the scheduler simply waits again.
MAX_OS_WAIT: Final = 86400.0


def os_wait_timeout(timeout: float | None) -> float | None:
    """Clamp a pass timeout to what every backend's OS wait accepts.

    :param timeout: seconds; ``None`` blocks (kept as ``None``).
    :return: ``None``, or a value in ``[0, MAX_OS_WAIT]``: negative (a
        deadline already past) and NaN give 0, anything longer than
        :data:`MAX_OS_WAIT` (``math.inf`` included) gives that bound.
    """
    if timeout is None:
        return None
    if not timeout > 0.0:  # negative, zero or NaN
        return 0.0
    return timeout if timeout < MAX_OS_WAIT else MAX_OS_WAIT


def has_epoll() -> bool:
    """Whether the epoll backend, and the kqueue emulation over it, can run.

    Linux only: the two modules are written against typeshed's Linux view
    of ``select`` and ``os`` (and tell mypy so), and are never imported
    where this is false, so macOS and the BSDs import cleanly.
    """
    return sys.platform == "linux" and hasattr(select, "epoll")


class ReadinessTarget(Protocol):
    """What a reactor reports readiness to: one per registered descriptor.

    Only the level-triggered backends call these two methods, at the start of
    every pass and without any scheduler lock held; the answers are hints that
    must err on the side of "yes" (a spurious report is harmless, a missed one
    is a lost wake-up).
    """

    def wants_read(self) -> bool:
        """Whether the reactor should watch this descriptor for reading."""
        ...

    def wants_write(self) -> bool:
        """Whether the reactor should watch this descriptor for writing."""
        ...

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        """Take a readiness report (called by the scheduler, never a backend).

        Runs on the reactor thread after the OS wait, without the scheduler
        lock.  Operations it completes are appended to ``out`` (the reactor
        thread's own queue) as zero-argument callables that already hold
        their unit of outstanding work.
        """
        ...


class Reactor(Protocol):
    """One backend: epoll, kqueue, poll or select."""

    #: The name users pass as ``IOContext(backend=...)``.
    name: ClassVar[str]
    #: False for poll/select: they consult ``wants_read``/``wants_write`` at
    #: every pass, so a target whose interest grows must call
    #: :meth:`interest_changed` (which interrupts a blocked pass).
    edge_triggered: ClassVar[bool]

    def register(self, fd: int, target: ReadinessTarget) -> None:
        """Watch ``fd`` for read and write readiness, reported to ``target``.

        Raises ``OSError`` if the OS refuses, or with ``EINVAL`` for an
        ``fd`` the backend cannot watch (select: ``fd >= FD_SETSIZE``), so
        callers treat it like any per-socket I/O error; ``ValueError`` for a
        negative ``fd`` or a closed reactor.
        """
        ...

    def deregister(self, fd: int) -> None:
        """Stop watching ``fd``; call before closing it.  Errors are ignored."""
        ...

    def interest_changed(self) -> None:
        """A target now wants a direction it did not want at the last pass.

        A no-op for edge-triggered backends; poll/select interrupt the
        current pass so it rebuilds its interest set.
        """
        ...

    def interrupt(self) -> None:
        """Make the current or the next :meth:`wait` return at once.

        Thread-safe and sticky: an interrupt issued before the waiting thread
        enters the OS call still makes that call return immediately.  If the
        OS refuses the wake-up the armed flag is reset and ``OSError`` raised,
        so no later interrupt is ever suppressed by a wake that never came.
        """
        ...

    def wait(self, timeout: float | None) -> list[tuple[ReadinessTarget, int]]:
        """One reactor pass: block up to ``timeout`` seconds for readiness.

        ``None`` blocks until an event or an interrupt, ``0`` (or a negative
        value: a deadline already past) never blocks.  Any positive value is
        valid, ``math.inf`` included: the OS wait is clamped to
        :data:`MAX_OS_WAIT` (:func:`os_wait_timeout`), so a very long
        timeout may end early with nothing to report.
        Returns ``(target, bits)`` pairs with bits from READ/WRITE/ERROR; a
        hang-up is reported as ``READ | WRITE`` so parked operations retry
        their system call and see EOF or the error.  Interrupts are consumed
        here and never returned.  ``EINTR`` yields an empty list.

        The pairs are harvested in full before returning: a list, never a
        lazy iterator, so nothing the OS handed over is lost if the caller
        fails on one pair.  On the edge-triggered backends each pair is an
        edge reported once: the caller must hand every pair to its target
        even when an earlier target's ``on_ready`` raised.
        """
        ...

    def close(self) -> None:
        """Release the OS objects.  Idempotent."""
        ...
