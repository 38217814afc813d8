"""Ctrl-C without corrupting the scheduler.

Python runs signal handlers in the main thread, between two bytecodes of
whatever that thread is executing.  ``KeyboardInterrupt`` raised in the
middle of the scheduler's bookkeeping (a sentinel popped but the reactor flag
not yet set, a frame added to the idle list but not yet waiting, a lock
released but not re-acquired) would leave the context unusable for every
thread.  So while the main thread is inside ``run*`` we replace Python's
default SIGINT handler (only that one: a handler the user installed is left
alone) with :func:`_on_sigint`, which decides by where the signal landed:

* in user code (a handler, a coroutine body): raise ``KeyboardInterrupt``
  there, exactly as the default handler would;
* anywhere in this package: remember it and return; the scheduler raises it
  at its next safe point (:func:`raise_pending`), at the latest when
  ``run*`` returns.  If the main thread is blocked in a wait that the
  scheduler entered through :func:`blocking` (the reactor's OS call, an idle
  thread's wait), the handler also "pokes" that wait so it returns at once:
  raising out of it instead could lose readiness the OS call had already
  returned.

This is the approach trio takes ("KeyboardInterrupt protection"), done by
looking at the interrupted frame's file instead of a frame-local marker.
"""

from __future__ import annotations

import _thread
import functools
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, TypeVar

T = TypeVar("T")

_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep
_EXAMPLES_DIR: Final = _PACKAGE_DIR + "examples" + os.sep
_MAIN_IDENT: Final = threading.main_thread().ident


class _MainThreadState:
    """Written and read only by the main thread (its own signal handler
    included), so no lock is needed."""

    __slots__ = ("poke", "pending", "deferred", "depth")

    def __init__(self) -> None:
        self.poke: Callable[[], object] | None = None  # ends the wait in progress
        self.pending = False  # a deferred Ctrl-C, raised at the next safe point
        self.deferred: BaseException | None = None  # a user handler's exception, kept
        self.depth = 0  # run* calls of the main thread in progress


_main = _MainThreadState()
#: For the run loops: between two handlers the main thread's loop reads
#: ``MAIN.pending`` (a slot read, cheaper than a call), so that a Ctrl-C
#: deferred while a handler was in this package's code is raised when that
#: handler returns, not after a whole streak of further handlers.
MAIN: Final = _main


def _protected(frame: FrameType | None) -> bool:
    """Whether the interrupted code is this package's own (not an example)."""
    if frame is None:
        return False
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE_DIR) and not filename.startswith(_EXAMPLES_DIR)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    state = _main
    if state.depth and _protected(frame):
        state.pending = True  # raised by raise_pending() at a safe point
        poke = state.poke
        if poke is not None:
            try:
                poke()
            except Exception:  # a wake-up already pending, or a closed reactor
                pass
        return
    signal.default_int_handler(signum, frame)


def enter_run() -> bool:
    """Called at the start of every ``run*``; True on the main thread.

    Installs the protecting handler when SIGINT still has Python's default
    one (checked each time: the user may have restored it meanwhile).
    """
    if threading.get_ident() != _MAIN_IDENT:
        return False
    if _main.depth == 0 and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            signal.signal(signal.SIGINT, _on_sigint)
        except ValueError:  # pragma: no cover - not the main interpreter
            pass
    _main.depth += 1
    return True


def leave_run() -> None:
    """The main thread's ``run*`` returns: raise a Ctrl-C still pending."""
    _main.depth -= 1
    raise_pending()


def raise_pending() -> None:
    """Raise a deferred ``KeyboardInterrupt`` (or other signal handler's
    exception) if this is the main thread and one is pending.  Call only
    where an exception leaves no state half-done."""
    if _main.pending and threading.get_ident() == _MAIN_IDENT:
        _main.pending = False
        error, _main.deferred = _main.deferred, None
        raise error if error is not None else KeyboardInterrupt


def defer(error: BaseException) -> None:
    """Keep ``error``, raised by a signal handler where it could not be let
    through, for :func:`raise_pending` (signal handlers run only in the main
    thread, so only the main thread ever calls this)."""
    _main.deferred = error
    _main.pending = True


def _poke_quietly(poke: Callable[[], object]) -> None:
    try:
        poke()
    except Exception:  # a closed reactor: its wait is over anyway
        pass


def _poke_on_new_thread(poke: Callable[[], object]) -> None:
    # _thread, not threading: no Python-level lock is taken here, so this
    # is safe wherever the signal handler interrupted the main thread.
    _thread.start_new_thread(_poke_quietly, (poke,))


def off_thread(poke: Callable[[], object]) -> Callable[[], None]:
    """Make ``poke`` usable by :func:`blocking` although it takes locks the
    waiting thread may hold (a reactor's ``interrupt`` takes its wake-up
    lock, which the reactor's own ``wait`` takes too): it runs on a new
    thread, which waits for that lock instead of deadlocking the signal
    handler.  ``poke`` must be thread-safe, sticky and harmless when late
    (a spurious wake-up of a later wait)."""
    return functools.partial(_poke_on_new_thread, poke)


def blocking(poke: Callable[[], object], fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)``, a wait that ``poke()`` makes return at once.

    On the main thread a Ctrl-C during the wait pokes it (and one deferred
    just before makes it return at once); the caller raises the pending
    ``KeyboardInterrupt`` once it has dealt with what ``fn`` returned.
    ``poke`` must be safe to call from a signal handler in the waiting thread
    (it takes no lock that thread may hold: see :func:`off_thread`) and sticky (a poke before ``fn``
    blocks still makes it return).  Other threads call ``fn`` directly.
    """
    if threading.get_ident() != _MAIN_IDENT:
        return fn(*args)
    state = _main
    state.poke = poke
    try:
        if state.pending:
            poke()
        return fn(*args)
    finally:
        state.poke = None
