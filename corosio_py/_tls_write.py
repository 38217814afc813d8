"""The last step of a TLS write: encrypt the plaintext, then send the records.

:class:`SealedWrite` is the operation a ``TLSStream`` write awaits once it
holds the send role.  Its ``start`` runs only once the write is certain to
start (the task driver checks a pending cancel and a stopped token first),
so a write that raises ``Cancelled`` encrypted nothing; once its records
exist they cannot be taken back, so a cancel that arrives while they are
being sent completes the write with its count (the rest stays queued, to go
out first) and lands at the task's next suspension.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Final

from ._buffers import byte_view as _byte_view
from ._descriptor import MSG_NOSIGNAL, WOULD_BLOCK, Descriptor, closed_error
from ._io_ops import WriteOp

if TYPE_CHECKING:
    from ._tasks import Task
    from ._tls_engine import TLSEngine

__all__ = ("WANT_READ", "SealedWrite", "plaintext")


class _WantRead:
    """The type of :data:`WANT_READ`."""

    __slots__ = ()


#: ``SealedWrite``'s result when the TLS layer needs input first (a
#: handshake or a renegotiation in progress): nothing was encrypted.
WANT_READ: Final = _WantRead()


class SealedWrite(WriteOp):
    """Encrypt ``payload`` and send the records (the send role is held).

    ``start`` encrypts under the stream lock, puts the records behind any
    ciphertext already queued (it goes out first, in the same system call)
    and sends from an offset, parking on the wrapped socket's write slot
    until everything is out.  ``sent`` tells what left; :meth:`unsent_locked`
    gives the rest back to the queue when the sending stops early.
    """

    __slots__ = ("stream", "payload", "count", "sealed", "seen", "sent")

    def __init__(
        self, stream: TLSEngine, desc: Descriptor, payload: Any, stop_token: Any
    ) -> None:
        self.stop_token = stop_token
        self._awaited = True
        self.desc = desc
        self.task = None
        self.gather = False
        self.data: Any = None  # the ciphertext to send (bytes)
        self.stream = stream
        self.payload = payload
        self.count = 0
        self.sealed = False  # records were made (lock of the task running it)
        self.seen = 0
        self.sent = 0  # bytes of ``data`` on the wire (desc.lock while parked)

    def start(self, task: Task[Any]) -> object:
        stream = self.stream
        lock = stream._lock
        lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
        try:
            if stream._closed:
                raise closed_error()
            try:
                self.count = stream._ssl.write(self.payload)
            except ssl.SSLWantReadError:
                self.seen = stream._recv_count
                stream._dry = False
                return WANT_READ
            self.sealed = True
            records = stream._outgoing.read()
            queued = stream._out
            if queued:
                queued.append(records)
                records = b"".join(queued)
                stream._out = []
        finally:
            lock.release()
        self.data = records
        return super().start(task)

    def attempt(self) -> object:
        data = self.data
        sock = self.desc.sock
        sent = self.sent
        total = len(data)
        try:
            while sent < total:
                sent += sock.send(memoryview(data)[sent:] if sent else data, MSG_NOSIGNAL)
        except BlockingIOError:
            return WOULD_BLOCK
        finally:
            self.sent = sent
        return self.count

    def cancel(self, task: Task[Any]) -> bool:
        if self.task is not task or not self.desc.claim_op(self, task):
            return False
        # The records exist: the write happened.  Its count is delivered
        # and the cancel stays pending for the task's next suspension.
        task._sched.post_counted(task.wakeup(self.count, None))
        return False

    def unsent_locked(self) -> None:
        """Put what did not leave back at the front of the queue (the
        sending is over: finished, cancelled or failed; stream lock held)."""
        data = self.data
        if data is not None and self.sent < len(data) and not self.stream._closed:
            self.stream._out.insert(0, bytes(memoryview(data)[self.sent :]))


def plaintext(data: Any, limit: int) -> memoryview:
    """``data`` as one byte view, at most ``limit`` bytes of it (a list is
    joined: its buffers become shared records); ``TypeError`` if it is not
    bytes-like."""
    if type(data) is list or type(data) is tuple:
        try:
            views = [_byte_view(item) for item in data]
        except TypeError:
            raise TypeError("write_some needs bytes-like objects in the list") from None
        if len(views) == 1:
            return views[0][:limit]
        taken: list[memoryview] = []
        room = limit
        for view in views:
            if room <= 0:
                break
            taken.append(view[:room] if view.nbytes > room else view)
            room -= view.nbytes
        return memoryview(b"".join(taken))
    try:
        view = _byte_view(data)
    except TypeError:
        raise TypeError(
            f"write_some needs a bytes-like object, not {type(data).__name__}"
        ) from None
    return view if view.nbytes <= limit else view[:limit]
