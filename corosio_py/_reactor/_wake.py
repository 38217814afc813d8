"""The reactor's wake-up: one armed flag over an eventfd, a self-pipe or a
kqueue user event.

Every backend needs a way for another thread to make a blocked OS wait
return, and every one wants the same three properties:

* idempotent: an armed flag lets only one signal through until the reactor
  has consumed it, so a burst of interrupts costs one system call;
* sticky: a signal sent before the waiting thread enters the OS call still
  ends that call (an unread eventfd or pipe stays readable; a triggered
  ``EV_CLEAR`` user event stays pending until reported);
* never stuck: if the OS refuses the signal the flag is reset and the
  error raised, so no later signal is suppressed by a wake that never came.

:class:`Waker` implements the flag and its lock once; the three mechanisms
only say how to raise, clear and release themselves.  ``consume`` clears the
mechanism *before* disarming, in one critical section: disarming first would
let a signal raise it again just before the clear swallows that signal,
leaving the flag set with no wake-up pending.
"""

from __future__ import annotations

import abc
import os
import sys
import threading
from collections.abc import Callable
from typing import final

#: Bytes read per ``os.read`` while draining the self-pipe.
_DRAIN_CHUNK = 4096


class Waker(abc.ABC):
    """A sticky, idempotent wake-up (see the module docstring).

    The owner watches :attr:`fd` for reading (when it is not -1), calls
    :meth:`signal` to wake itself and :meth:`consume` once the wake-up was
    reported.

    Thread safety: every method may be called from any thread; the flags
    are guarded by the waker's own lock, a leaf that is never held while
    another lock is taken.  :meth:`signal` after :meth:`close` is a no-op.
    """

    #: The fd that turns readable on :meth:`signal`; -1 when the wake-up is
    #: not an fd (a kqueue user event).
    fd: int

    def __init__(self) -> None:
        """Start disarmed and open."""
        self._lock = threading.Lock()
        self._armed = False  # guarded by _lock
        self._closed = False  # guarded by _lock

    @final
    def signal(self) -> None:
        """Raise the wake-up unless one is already pending.

        :raises OSError: when the OS refuses; the armed flag is reset first.
        """
        with self._lock:
            if self._armed or self._closed:
                return
            self._armed = True
            try:
                self._raise()
            except BaseException:
                self._armed = False
                raise

    @final
    def consume(self) -> None:
        """Clear a reported wake-up and disarm, so the next signal goes out."""
        with self._lock:
            if self._closed:
                return
            self._clear()
            self._armed = False

    @final
    def close(self) -> None:
        """Release the mechanism; later signals are ignored.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    @abc.abstractmethod
    def _raise(self) -> None:
        """Make the wake-up pending (called with the lock held)."""

    @abc.abstractmethod
    def _clear(self) -> None:
        """Make it no longer pending (called with the lock held)."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Close the OS objects (called once, with the lock held)."""


@final
class PipeWaker(Waker):
    """A non-blocking, close-on-exec self-pipe: the portable wake-up.

    Used by poll and select, and by kqueue where ``EVFILT_USER`` is unknown
    or refused.  The armed flag keeps the pipe to one unread byte, so the
    write end never fills in practice.
    """

    def __init__(self) -> None:
        """Create the pipe.

        :raises OSError: when the OS refuses it (nothing leaks).
        """
        # os.pipe() fds are non-inheritable (close-on-exec) since PEP 446.
        self.fd, self._write_fd = os.pipe()
        try:
            os.set_blocking(self.fd, False)
            os.set_blocking(self._write_fd, False)
        except BaseException:
            os.close(self.fd)
            os.close(self._write_fd)
            raise
        super().__init__()

    def _raise(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:
            pass  # pipe full: unread bytes already make it readable

    def _clear(self) -> None:
        try:
            while os.read(self.fd, _DRAIN_CHUNK):
                pass
        except BlockingIOError:
            pass

    def _release(self) -> None:
        os.close(self.fd)
        os.close(self._write_fd)


@final
class UserEventWaker(Waker):
    """A kqueue ``EVFILT_USER`` event, registered ``EV_CLEAR`` by the owner.

    ``trigger`` submits the ``NOTE_TRIGGER`` change.  ``EV_CLEAR`` resets the
    event when it is reported, so there is nothing to clear, and the event
    belongs to the kqueue, which the owner closes.
    """

    fd = -1

    def __init__(self, trigger: Callable[[], object]) -> None:
        """Wrap ``trigger``, the call that makes the user event pending."""
        super().__init__()
        self._trigger = trigger

    def _raise(self) -> None:
        self._trigger()

    def _clear(self) -> None:
        pass  # EV_CLEAR already reset the event when it was reported

    def _release(self) -> None:
        pass  # the kqueue owns the event and is closed by the reactor


if sys.platform == "linux":
    # eventfd exists only on Linux; the platform check also tells mypy to
    # skip this class when it checks for macOS or the BSDs.

    @final
    class EventFdWaker(Waker):
        """A non-blocking, close-on-exec eventfd: epoll's wake-up.

        One fd instead of two, and one read clears it whatever the count.
        """

        def __init__(self) -> None:
            """Create the eventfd.

            :raises OSError: when the OS refuses it.
            """
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            super().__init__()

        def _raise(self) -> None:
            try:
                os.eventfd_write(self.fd, 1)
            except BlockingIOError:
                pass  # counter saturated: it is unread, so a wake is pending

        def _clear(self) -> None:
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:
                pass

        def _release(self) -> None:
            os.close(self.fd)
