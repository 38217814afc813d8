"""Completing a parked operation from a thread outside the context.

Helper threads (the file workers, the signal watcher) finish operations that
a task awaits.  How such a thread queues the task's resumption depends on
the scheduler:

* the default scheduler is thread-safe: ``post_counted`` from any thread;
* the ``concurrency_hint=1`` scheduler takes no locks, so no other thread may
  touch it.  Its context gets one :class:`_Channel` instead: the helper
  thread appends the resumption to the channel's deque and sends one byte on
  a socket pair whose read end the context's reactor watches; the context's
  own thread moves the resumptions to its queue from the readiness report
  (:meth:`_Channel.on_ready`).  A socket pair rather than a pipe: the send
  passes MSG_NOSIGNAL, so a wake-up after the channel closed can never raise
  SIGPIPE.

Either way the resumption carries the operation's unit of outstanding work,
counted when the operation parked; once the context is closed it is dropped
(the close already dropped every unit and abandons the tasks).
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._descriptor import MSG_NOSIGNAL
from ._socket import configure_socket

if TYPE_CHECKING:
    from ._context import IOContext
    from ._scheduler import Handler, Scheduler

__all__ = ("completion_poster",)


class _Channel:
    """The hand-off of one ``concurrency_hint=1`` context (see the module doc).

    ``_closed``, ``_armed`` and the sockets are guarded by ``_lock``;
    ``_pending`` is a deque (atomic appends and pops): helper threads append
    under the lock, the context's thread pops without it.
    """

    __slots__ = ("__weakref__", "_lock", "_pending", "_armed", "_closed", "_reader", "_writer",
                 "_reactor")

    def __init__(self, sched: Scheduler) -> None:
        reader, writer = socket.socketpair()  # close-on-exec (PEP 446)
        try:
            reader.setblocking(False)
            writer.setblocking(False)
            configure_socket(writer)  # SO_NOSIGPIPE where MSG_NOSIGNAL is missing
            sched.reactor.register(reader.fileno(), self)
        except BaseException:
            reader.close()
            writer.close()
            raise
        self._lock = threading.Lock()
        self._pending: deque[Handler] = deque()
        self._armed = False  # a wake byte is on its way (lock)
        self._closed = False  # (lock)
        self._reader = reader
        self._writer = writer
        self._reactor = sched.reactor

    def post(self, handler: Handler) -> None:
        """Queue an already-counted ``handler`` from any thread."""
        with self._lock:
            if self._closed:
                return  # the context is closed: dropped, as post_counted does
            self._pending.append(handler)
            if self._armed:
                return  # the byte already sent wakes the reactor for this one too
            self._armed = True
            try:
                self._writer.send(b"\0", MSG_NOSIGNAL)
            except BlockingIOError:
                pass  # the buffer is full of unread wake bytes: one is enough

    # ------------------------------------------------------------ reactor target

    def wants_read(self) -> bool:
        """Level-triggered backends: always watch the wake socket."""
        return True

    def wants_write(self) -> bool:
        """Never: only the read end is registered."""
        return False

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        """The context's thread: move the posted resumptions to ``out``."""
        with self._lock:
            if self._closed:
                return
            # Disarm before draining: a post after this point sends a new
            # byte; one before it appended its handler, which the loop below sees.
            self._armed = False
            try:
                while self._reader.recv(4096):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        pending = self._pending
        while pending:
            out.append(pending.popleft())

    def _shutdown(self) -> None:
        """The context is closing: deregister, close, drop what is queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending.clear()
        self._reactor.deregister(self._reader.fileno())
        self._reader.close()
        self._writer.close()


#: One channel per ``concurrency_hint=1`` scheduler that needed one.
_channels: weakref.WeakKeyDictionary[Scheduler, _Channel] = weakref.WeakKeyDictionary()
#: Guards ``_channels``.
_channels_lock = threading.Lock()


def completion_poster(ctx: IOContext) -> Callable[[Handler], None]:
    """How a thread outside ``ctx`` queues an already-counted resumption.

    Call it on a thread that may touch ``ctx`` (with ``concurrency_hint=1``,
    its one thread), before the helper thread exists.

    :raises RuntimeError: when the context is closed.
    :raises OSError: when the channel's sockets cannot be made.
    """
    sched = ctx._sched
    if sched.closed:
        raise RuntimeError("the IOContext is closed")
    if not sched.single_threaded:
        return sched.post_counted
    with _channels_lock:
        channel = _channels.get(sched)
        if channel is None:
            channel = _Channel(sched)
            ctx._track(channel)
            _channels[sched] = channel
    return channel.post
