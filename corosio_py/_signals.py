"""SignalSet: a task awaits POSIX signals.

How a signal reaches a waiting task
-----------------------------------
Python runs signal handlers only in the main thread, between two bytecodes.
A handler can therefore be late by as long as the main thread is busy in a
long call, or blocked in a wait that the signal did not interrupt because
the OS delivered it to another thread (a lock, ``join``, or ``epoll_wait``
of a reactor).  So delivery does not depend on the main thread.  CPython's
C-level handler runs at once, in whichever thread the OS picked, and writes
the signal number to the *wake-up fd* (``signal.set_wakeup_fd``).  While any
set holds a signal, that fd is one end of a socket pair; a daemon thread,
the *watcher*, reads the other end and hands each number to every set that
holds it.  A set completes its waiting tasks (their resumptions queued with
``post_counted``, which any thread may call), or remembers the signal
for its next ``wait()`` when none is waiting.

The Python-level handler installed for a held signal (:func:`_on_signal`)
delivers nothing: it never raises, and it takes no lock, since it may run
while the main thread holds any of them.  It only repairs the wake-up fd
when other code replaced it, and plays the previous handler for a signal no
set holds any more (see below).

Handlers are process-wide; sets are not
---------------------------------------
One :class:`_Hub` per process keeps which sets hold which signal and the
Python handler each signal had before the first set took it.  When the last
set lets a signal go, that handler is put back.  Python allows
``signal.signal`` only in the main thread, so a set that lets go on another
thread (``close()`` from a worker, ``IOContext.close()`` finishing on a
runner) leaves the signal *orphaned*: it is restored by the next set
operation on the main thread, or by :func:`_on_signal` itself when the
signal next arrives, which then does what the previous handler would have
done.  Taking a signal that no set holds from another thread raises
``RuntimeError``, as Python would.

SIGINT and Ctrl-C: :mod:`corosio_py._interrupt` installs its deferring
handler only over Python's default one, so while a set holds SIGINT a Ctrl-C
is delivered to the set, never raised as ``KeyboardInterrupt``.  When the
last set lets SIGINT go while the main thread is inside ``run*``, the
deferring handler is put back in place of Python's default one, so the
scheduler stays protected.

Lock order: hub lock -> set lock -> scheduler locks.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, final

from . import _interrupt
from ._context import IOContext
from ._errors import Cancelled
from ._ops import PENDING, Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("SignalSet",)

_PyHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

#: Signals no process can catch.
_UNCATCHABLE: Final = frozenset(
    int(s) for s in (getattr(signal, "SIGKILL", None), getattr(signal, "SIGSTOP", None)) if s
)
_VALID: Final = frozenset(int(s) for s in signal.valid_signals())


def _on_main_thread() -> bool:
    return threading.get_ident() == threading.main_thread().ident


def _closed_set() -> OSError:
    return OSError(errno.EBADF, "the signal set is closed")


def _check_signum(signum: object) -> int:
    """``signum`` as a catchable signal number.

    :raises TypeError: for a non-int (``bool`` included).
    :raises ValueError: for a number that is no signal here, or SIGKILL/SIGSTOP.
    """
    if isinstance(signum, bool) or not isinstance(signum, int):
        raise TypeError(f"a signal number must be an int, not {type(signum).__name__}")
    number = int(signum)
    if number not in _VALID:
        raise ValueError(f"{number} is not a valid signal number")
    if number in _UNCATCHABLE:
        raise ValueError(f"{signal.Signals(number).name} cannot be caught")
    return number


def _restore_value(signum: int, previous: _PyHandler) -> _PyHandler:
    """What to put back for ``signum`` when the last set lets it go."""
    if previous is None:
        # Installed outside Python (or never): the best Python can do.
        return signal.SIG_DFL
    if (
        signum == signal.SIGINT
        and previous is signal.default_int_handler
        and _interrupt.MAIN.depth
    ):
        # The main thread is inside run*: it must stay protected from a
        # KeyboardInterrupt in the middle of the scheduler's bookkeeping.
        return _interrupt._on_sigint
    return previous


class _Hub:
    """Which sets hold which signal, process-wide.

    Guarded by ``lock``: ``holders``, ``saved``, ``writer``, ``forward``.
    :func:`_on_signal` reads ``holders``, ``saved`` and ``writer`` without it
    (hints: it runs on the main thread, which may hold the lock); ``holders``
    values are replaced, never mutated, so such a read sees a whole list.
    """

    __slots__ = ("lock", "holders", "saved", "writer", "forward")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: dict[int, list[SignalSet]] = {}
        #: The handler each signal had before ours, while ours is installed.
        self.saved: dict[int, _PyHandler] = {}
        #: The wake-up fd's socket while ours is installed (the watcher reads
        #: its peer).
        self.writer: socket.socket | None = None
        #: The wake-up fd that was installed before ours: bytes are passed on.
        self.forward = -1

    # ------------------------------------------------------------ membership

    def hold_locked(self, signum: int, owner: SignalSet) -> None:
        """``owner`` takes ``signum``; install our handler if it is the first.

        :raises RuntimeError: when it must be installed off the main thread.
        :raises OSError: when the OS refuses the handler.
        """
        holders = self.holders.get(signum)
        if holders:
            if owner not in holders:
                self.holders[signum] = [*holders, owner]
            return
        if signum in self.saved and signal.getsignal(signum) is not _on_signal:
            del self.saved[signum]  # an orphan that _on_signal already restored
        if signum not in self.saved:
            self._install_locked(signum)
        self.holders[signum] = [owner]

    def let_go_locked(self, signum: int, owner: SignalSet) -> None:
        """``owner`` lets ``signum`` go; the last one restores the handler
        (or leaves an orphan off the main thread)."""
        holders = self.holders.get(signum)
        if not holders or owner not in holders:
            return
        rest = [h for h in holders if h is not owner]
        if rest:
            self.holders[signum] = rest
            return
        del self.holders[signum]
        if _on_main_thread():
            self._restore_locked(signum)

    def sweep_locked(self) -> None:
        """Settle the orphans: restore them (main thread) or forget the ones
        :func:`_on_signal` restored; stop the watcher when nothing is held."""
        main = _on_main_thread()
        for signum in [s for s in self.saved if s not in self.holders]:
            if main:
                self._restore_locked(signum)
            elif signal.getsignal(signum) is not _on_signal:
                del self.saved[signum]
        if main and not self.saved and self.writer is not None:
            self._stop_locked()

    # ------------------------------------------------------------ handlers

    def _install_locked(self, signum: int) -> None:
        if not _on_main_thread():
            raise RuntimeError(
                f"{signal.Signals(signum).name} has no signal set yet: Python lets only "
                "the main thread install a signal handler"
            )
        started = self.writer is None
        if started:
            self._start_locked()
        try:
            previous = signal.signal(signum, _on_signal)
        except (OSError, ValueError, RuntimeError):
            if started and not self.saved:
                self._stop_locked()
            raise
        self.saved[signum] = previous

    def _restore_locked(self, signum: int) -> None:
        previous = self.saved.pop(signum)
        # A handler that replaced ours meanwhile (the user's) stays.
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, _restore_value(signum, previous))
        if not self.saved and self.writer is not None:
            self._stop_locked()

    # ------------------------------------------------------------ the watcher

    def _start_locked(self) -> None:
        """Make our socket the wake-up fd and start the watcher (main thread)."""
        reader, writer = socket.socketpair()  # close-on-exec (PEP 446)
        try:
            writer.setblocking(False)  # set_wakeup_fd demands it
            self.forward = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            thread = threading.Thread(
                target=_watch, args=(reader, self.forward), name="corosio-signals", daemon=True
            )
            thread.start()
        except BaseException:
            if signal.set_wakeup_fd(self.forward) != writer.fileno():
                signal.set_wakeup_fd(writer.fileno())  # pragma: no cover - never ours
            reader.close()
            writer.close()
            raise
        self.writer = writer

    def _stop_locked(self) -> None:
        """Put the previous wake-up fd back; the watcher then sees EOF and exits."""
        writer = self.writer
        assert writer is not None
        self.writer = None
        current = signal.set_wakeup_fd(self.forward)
        if current != writer.fileno():
            signal.set_wakeup_fd(current)  # someone else's replaced ours: theirs stays
        self.forward = -1
        writer.close()

    def deliver(self, signum: int) -> None:
        """The watcher: hand ``signum`` to every set that holds it."""
        with self.lock:
            holders = self.holders.get(signum, ())
        for owner in holders:
            owner._deliver(signum)


_HUB: Final = _Hub()


def _watch(reader: socket.socket, forward: int) -> None:
    """The watcher thread: one byte per signal, until the writer closes."""
    try:
        while True:
            try:
                data = reader.recv(512)
            except OSError:
                return
            if not data:
                return  # the hub stopped: our wake-up fd is no longer installed
            if forward >= 0:
                try:
                    os.write(forward, data)  # whoever had the wake-up fd before us
                except OSError:
                    pass
            for signum in data:
                _HUB.deliver(signum)
    finally:
        reader.close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Our Python-level handler (main thread, between two bytecodes).

    Delivery happened already, through the wake-up fd.  It takes no lock.
    """
    hub = _HUB
    if hub.holders.get(signum):  # unlocked hint (see _Hub)
        writer = hub.writer
        if writer is None:
            return
        try:
            ours = writer.fileno()
            current = signal.set_wakeup_fd(ours, warn_on_full_buffer=False)
            if current != ours:
                # Other code replaced our wake-up fd, so the C handler wrote
                # this signal there: keep theirs (unless it was removed) and
                # hand the signal to the watcher ourselves.
                if current >= 0:
                    signal.set_wakeup_fd(current)
                writer.send(bytes((signum,)))
        except (OSError, ValueError):
            pass
        return
    # Orphaned: no set holds it, and its handler could not be put back
    # because the last set let go off the main thread.  Restore it now and
    # do what it would have done.
    previous = hub.saved.get(signum)
    if signal.getsignal(signum) is _on_signal:
        signal.signal(signum, _restore_value(signum, previous))
    if previous is None or previous == signal.SIG_DFL:
        signal.raise_signal(signum)  # the default action, now in place
    elif callable(previous):
        previous(signum, frame)


class _WaitOp(Operation):
    """One ``wait()``; parked in its set's waiter list until claimed.

    ``task`` is written under the set's lock when it parks.
    """

    __slots__ = ("owner", "task")

    def __init__(self, owner: SignalSet, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self.owner = owner
        self.task: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        owner = self.owner
        with owner._lock:
            ready = owner._ready_locked()
        if ready is not None:
            return ready
        sched = owner._ctx._sched
        sched.work_started()  # counted before the waiter is visible
        try:
            with owner._lock:
                ready = owner._ready_locked()  # a signal may have come meanwhile
                if ready is None:
                    self.task = task
                    owner._waiters.append(self)
                    return PENDING
        except BaseException:
            sched.work_finished()
            raise
        sched.work_finished()
        return ready

    def cancel(self, task: Task[Any]) -> bool:
        owner = self.owner
        with owner._lock:
            if self.task is not task or self not in owner._waiters:
                return False
            owner._waiters.remove(self)
        owner._ctx._sched.post_counted(task.wakeup(None, Cancelled()))
        return True


@final
class SignalSet:
    """A set of POSIX signals that tasks can await.

    ``SignalSet(ctx, signal.SIGINT, signal.SIGTERM)`` holds both signals;
    ``await sset.wait()`` returns the number of the next one to arrive.  A
    signal that arrives while no task waits is remembered (once per signal
    number) and completes the next ``wait()`` at once.  Several tasks may
    wait at once: a signal completes all of them.  Several sets may hold one
    signal: each gets it.

    It works whichever thread the OS delivers the signal to, and whether the
    main thread is in ``run()``, busy in a handler, or blocked outside
    ``run()``.  While a set holds a signal, the signal's previous Python
    handler is saved; it is put back when the last set lets the signal go.
    Holding SIGINT replaces Ctrl-C's ``KeyboardInterrupt``.

    Thread safety: every method may be called from any thread, except that
    taking a signal no set holds yet must happen on the main thread (Python
    installs signal handlers only there): elsewhere it raises
    ``RuntimeError``.  A signal let go off the main thread gets its previous
    handler back at the next set operation on the main thread, or when it
    next arrives.  A waiting task counts as outstanding work of its context.
    """

    __slots__ = (
        "__weakref__",
        "_ctx",
        "_lock",
        "_signals",
        "_waiters",
        "_pending",
        "_closed",
    )

    def __init__(self, ctx: IOContext, *signums: int) -> None:
        """Hold ``signums`` (none is fine: see :meth:`add`).

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`, or a
            signal number is not an int.
        :raises ValueError: for a number that is no catchable signal.
        :raises RuntimeError: when the context is closed, or a new signal is
            taken off the main thread.
        """
        if not isinstance(ctx, IOContext):
            raise TypeError(f"SignalSet needs an IOContext, got {type(ctx).__name__}")
        numbers = [_check_signum(s) for s in signums]
        self._ctx = ctx
        if ctx._sched.closed:
            raise RuntimeError("the IOContext is closed")
        self._lock = threading.Lock()
        # Guarded by _lock (written under the hub lock too: hub lock first).
        self._signals: set[int] = set()
        self._waiters: list[_WaitOp] = []
        self._pending: dict[int, None] = {}  # remembered signals, oldest first
        self._closed = False
        ctx._track(self)  # IOContext.close() releases it
        try:
            for number in numbers:
                self.add(number)
        except BaseException:
            self.close()
            raise

    @property
    def context(self) -> IOContext:
        """The context whose tasks the set's waits resume."""
        return self._ctx

    # ------------------------------------------------------------ membership

    def add(self, signum: int) -> None:
        """Hold ``signum`` (a no-op if held already).

        :raises TypeError: for a non-int.
        :raises ValueError: for a number that is no signal here, SIGKILL or SIGSTOP.
        :raises RuntimeError: when no set holds ``signum`` yet and this is not
            the main thread.
        :raises OSError: ``EBADF`` once closed.
        """
        number = _check_signum(signum)
        hub = _HUB
        with hub.lock:
            with self._lock:
                if self._closed:
                    raise _closed_set()
                if number in self._signals:
                    return
            hub.hold_locked(number, self)  # before the sweep: an orphan is taken back as is
            with self._lock:
                self._signals.add(number)
            hub.sweep_locked()

    def remove(self, signum: int) -> None:
        """Stop holding ``signum`` and forget it if it was remembered (a
        no-op if not held).

        :raises TypeError, ValueError: as :meth:`add`.
        """
        number = _check_signum(signum)
        hub = _HUB
        with hub.lock:
            with self._lock:
                held = number in self._signals
                self._signals.discard(number)
                self._pending.pop(number, None)
            if held:
                hub.let_go_locked(number, self)
            hub.sweep_locked()

    def clear(self) -> None:
        """Stop holding every signal; forget the remembered ones."""
        self._release(close=False, post=True)

    def cancel(self) -> None:
        """Complete every pending ``wait()`` with ``Cancelled``.  Remembered
        signals stay remembered.  Any thread."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        self._post_cancelled(waiters)

    def close(self) -> None:
        """Let every signal go and cancel the pending waits; later calls
        raise ``OSError`` (``EBADF``).  Idempotent; any thread."""
        self._release(close=True, post=True)

    def _shutdown(self) -> None:
        """``IOContext.close()``: release everything; the waits are abandoned."""
        self._release(close=True, post=False)

    def _release(self, close: bool, post: bool) -> None:
        hub = _HUB
        with hub.lock:
            with self._lock:
                numbers = sorted(self._signals)
                self._signals.clear()
                self._pending.clear()
                waiters: list[_WaitOp] = []
                if close:
                    self._closed = True
                    waiters, self._waiters = self._waiters, []
            for number in numbers:
                hub.let_go_locked(number, self)
            hub.sweep_locked()
        if post:
            self._post_cancelled(waiters)

    def _post_cancelled(self, waiters: list[_WaitOp]) -> None:
        post = self._ctx._sched.post_counted
        for op in waiters:
            task = op.task
            assert task is not None
            post(task.wakeup(None, Cancelled()))

    # ------------------------------------------------------------ waiting

    def wait(self, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: the number of the next signal (a remembered one at once).

        :raises OSError: ``EBADF`` once closed (at the await).
        :raises TypeError: for a bad ``stop_token`` (at the await).
        :raises Cancelled: when cancelled (:meth:`cancel`, :meth:`close`, the
            task or its stop token); a signal that arrives afterwards is
            remembered for the next ``wait()``.
        """
        return _WaitOp(self, stop_token)

    def _ready_locked(self) -> int | None:
        """The oldest remembered signal (forgotten now), or None.

        :raises OSError: ``EBADF`` once closed.
        """
        if self._closed:
            raise _closed_set()
        if not self._pending:
            return None
        number = next(iter(self._pending))
        del self._pending[number]
        return number

    def _deliver(self, signum: int) -> None:
        """The watcher thread: complete the waiters, or remember ``signum``."""
        with self._lock:
            if self._closed or signum not in self._signals:
                return
            if not self._waiters:
                self._pending[signum] = None
                return
            waiters, self._waiters = self._waiters, []
        post = self._ctx._sched.post_counted
        for op in waiters:
            task = op.task
            assert task is not None
            post(task.wakeup(signum, None))

    def __repr__(self) -> str:
        with self._lock:
            if self._closed:
                return "<SignalSet closed>"
            names = ", ".join(signal.Signals(s).name for s in sorted(self._signals))
        return f"<SignalSet {{{names}}}>"
