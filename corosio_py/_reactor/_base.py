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
direction, so a socket with unread data and no parked reader never
makes the reactor spin.

:class:`ReactorBase` is what every backend shares: the ``fd -> target`` map,
the closed flag and the lock that guards both, the wake-up
(:mod:`._wake`) and the lookup of harvested events.  A backend adds only
its OS object: how to watch and unwatch an fd, how to release the object,
and its own ``wait``.  The known limits of each backend are listed in
``docs/backends.md``.
"""

from __future__ import annotations

import select
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar, Final, Protocol

from ._wake import Waker

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

    Only the level-triggered backends call the ``wants_*`` methods, at the
    start of every pass and without any scheduler lock held; the answers are hints that
    must err on the side of "yes" (a spurious report is harmless, a missed one
    is a lost wake-up).
    """

    def wants_read(self) -> bool:
        """Whether the reactor should watch this descriptor for reading."""
        ...

    def wants_write(self) -> bool:
        """Whether the reactor should watch this descriptor for writing."""
        ...

    def wants_error(self) -> bool:
        """Whether, wanting neither direction, it should still be watched
        for errors and hang-ups (a parked ``wait(WaitType.ERROR)``)."""
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

    def watch_writes(self, fd: int) -> None:
        """Edge-triggered backends report writability only from this call
        on (a no-op for poll/select, which ask ``wants_write``)."""
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


class ReactorBase:
    """The shared body of every backend (see the module docstring).

    A subclass sets :attr:`name` and :attr:`edge_triggered`, hands its wake-up
    to ``__init__`` and implements :meth:`wait` plus three hooks on its OS
    object: :meth:`_watch`, :meth:`_unwatch` and :meth:`_release`.

    Lock discipline: ``_lock`` (the map lock) guards changes to the map and
    the closed flag; ``_watch`` and ``_unwatch`` run under it.  A target
    enters the map *before* its fd is watched, so it is there by the time
    the OS can report the fd (epoll reports a ready fd at registration), and
    :meth:`_lookup` reads the map without the lock: one ``dict.get`` is
    atomic (also without the GIL), and a lookup racing a deregistration
    either finds the target, whose ``on_ready`` then sees it closed, or
    drops the report -- both harmless.  The wake-up
    has its own lock; the two are never held together.  Both are leaves: no
    other lock is taken while either is held.

    Thread safety: :meth:`Reactor.wait` is called by one thread at a time;
    every other method may be called from any thread.  :meth:`close` must
    not race a ``wait`` in progress.
    """

    name: ClassVar[str]
    edge_triggered: ClassVar[bool]

    def __init__(self, waker: Waker) -> None:
        """Take ownership of ``waker`` (closed by :meth:`close`)."""
        self._waker = waker
        self._lock = threading.Lock()
        # Changed under _lock; read without it by _lookup (see above).
        self._targets: dict[int, ReadinessTarget] = {}
        self._closed = False  # guarded by _lock

    def _watch(self, fd: int) -> None:
        """Start watching ``fd`` in the OS object (map lock held)."""

    def _unwatch(self, fd: int) -> bool:
        """Stop watching ``fd`` (map lock held); errors are swallowed.

        :return: whether a pass in progress may still hold the fd, so that
            it must be interrupted to let go of it.
        """
        return False

    def _release(self) -> None:
        """Close the OS object (called once, after the wake-up is closed)."""

    def register(self, fd: int, target: ReadinessTarget) -> None:
        """Watch ``fd`` for read and write readiness, reported to ``target``.

        :raises OSError: when the OS refuses the fd.
        :raises ValueError: when the reactor is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.name} reactor is closed")
            targets = self._targets
            previous = targets.get(fd)
            targets[fd] = target  # before the OS may report it
            try:
                self._watch(fd)
            except BaseException:
                if previous is None:
                    del targets[fd]
                else:  # EEXIST: the fd's registration stands
                    targets[fd] = previous
                raise

    def deregister(self, fd: int) -> None:
        """Stop watching ``fd``; unknown fds and errors are ignored."""
        with self._lock:
            self._targets.pop(fd, None)
            interrupt = not self._closed and self._unwatch(fd)
        if interrupt:
            self._waker.signal()

    def interest_changed(self) -> None:
        """Do nothing: the edge-triggered backends watch reads from the start
        and writes from :meth:`watch_writes` on."""

    def watch_writes(self, fd: int) -> None:
        """Edge-triggered backends: report ``fd``'s writability from now on.

        A descriptor is registered for reads only, and asks for writes the
        first time a write (or connect) would block.  Every send frees
        buffer space when its data is acknowledged, so a socket watched for
        writes from the start reports an edge after most sends, which costs
        a wake-up and a lookup per request for nothing where writes never
        block.  Adding the interest reports the fd at once if it is
        writable already, so a state that changed since the failed attempt
        is not lost.  Level-triggered backends ask for writes per pass
        instead (``wants_write``): nothing to do here.

        :raises OSError: when the OS refuses the change.
        """

    def interrupt(self) -> None:
        """Make the current or next ``wait`` return; a no-op once closed.

        :raises OSError: when the OS refuses the wake-up; it is disarmed
            first, so the next interrupt tries again.
        """
        self._waker.signal()

    def _lookup(
        self, events: Iterable[tuple[int, int]], to_bits: Mapping[int, int]
    ) -> list[tuple[ReadinessTarget, int]]:
        """Turn a harvest of ``(fd, native mask)`` pairs into target reports.

        The wake-up's fd is consumed rather than reported; an fd no longer
        in the map is dropped (deregistered since the OS harvested it); a
        mask that translates to no bits is dropped.  An event harvested just
        before an fd number was reused may reach the new target, which is
        harmless because readiness is only a hint.
        """
        ready: list[tuple[ReadinessTarget, int]] = []
        woken = False
        wake_fd = self._waker.fd
        get = self._targets.get  # never rebound; read unlocked (class docstring)
        for fd, mask in events:
            if fd == wake_fd:
                woken = True
                continue
            target = get(fd)
            if target is not None and (bits := to_bits[mask]):
                ready.append((target, bits))
        if woken:
            self._waker.consume()
        return ready

    def close(self) -> None:
        """Forget every target, close the wake-up and the OS object.

        Idempotent.  The wake-up is closed first, so an interrupt racing
        this call finds it closed rather than triggering a closed OS object.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._targets.clear()
        self._waker.close()
        self._release()
