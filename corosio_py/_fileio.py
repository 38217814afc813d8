"""One open file and the operations that run its system calls on helper threads.

The readiness APIs have nothing to say about regular files (epoll refuses
them; poll and select call them always ready), so there is nothing to park
on.  As upstream's POSIX file service does, every read and write runs on a
helper thread (:func:`corosio_py._workers.submit`) and that thread hands its
result back to the waiting task (``post_counted``, safe from any thread).  A
context's threads never block on a file read or write.

Exactly once, and cancellation never loses data
------------------------------------------------
A :class:`FileOp` is *queued* (submitted; no helper thread has started its
system call), *running* (a helper thread is in the system call) or *done*.
Every transition happens under :attr:`OpenFile.lock`, and only the thread
that makes an operation done queues the task's resumption:

* a cancel (``cancel()``, ``close()``, ``Task.cancel()``, a stop token)
  claims a queued operation: it completes with ``Cancelled`` and nothing
  happened to the file;
* a running operation cannot be interrupted: its result (the bytes read or
  written) is delivered, and the task's cancellation lands at its next
  suspension (the task driver's rule).  A cancel never waits for it.

The fd outlives ``close()`` while a system call uses it
--------------------------------------------------------
Closing an fd that a helper thread is about to use would let a later open
reuse its number under that thread.  Every system call on the fd (on a
helper thread or the caller's) first registers as a *user* under the lock,
after checking that the file is open.  ``close()`` marks the file closed at
once (every later call gets ``EBADF``) and closes the fd when no user is
left; otherwise the last user closes it.

Lock order: task lock -> ``OpenFile.lock`` -> scheduler and pool locks; no
scheduler method is called while ``OpenFile.lock`` is held.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._buffers import Immediate
from ._errors import Cancelled
from ._fdstate import LockedFd
from ._ops import PENDING, Operation
from ._workers import submit

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._scheduler import Scheduler
    from ._tasks import Task

__all__ = ("ANY", "READ", "WRITE", "FileOp", "OpenFile", "ReadyOp", "closed_file")

#: What an operation occupies on a stream file: nothing (random access), or
#: the one read or the one write that may be pending at once.
ANY: Final = 0
READ: Final = 1
WRITE: Final = 2

#: ``errno`` values of an ``RWF_NOWAIT`` attempt the file (system) cannot do.
_NOWAIT_UNSUPPORTED: Final = frozenset((errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS))
#: An attempt that would block.
_WOULD_BLOCK: Final = object()
#: First attempts are made only while the context's last reactor pass is
#: this recent (seconds).  Reads served from the page cache complete inline,
#: so a task reading a cached file never suspends, and the thread running it
#: would make no reactor pass (timers, I/O) for as long as the file lasts.
#: Past this window the read goes to a helper thread instead: the task
#: suspends, the thread makes its pass, and the next reads are inline again.
INLINE_WINDOW: Final = 0.002

_monotonic = time.monotonic

_QUEUED: Final = 0
_RUNNING: Final = 1
_DONE: Final = 2


def closed_file() -> OSError:
    """The error for I/O on a closed (or never opened) file: ``EBADF``."""
    return OSError(errno.EBADF, "the file is closed")


def _close_quietly(fd: int) -> None:
    # close() reports no error to anyone: a deferred close runs on a helper
    # thread, and durability is what sync_data()/sync_all() are for.
    try:
        os.close(fd)
    except OSError:
        pass


class OpenFile(LockedFd):
    """The state of one open fd (a fresh one per ``open``, never reused).

    Guarded by :attr:`lock`: ``fd``, ``users``, ``closing``, ``queued``,
    ``read_busy``, ``write_busy``, ``epoch``.  Set once in ``__init__``:
    ``sched``, ``readable``, ``writable``.  ``nowait`` is an
    unlocked hint (see there).
    """

    __slots__ = (
        "__weakref__",
        "lock",
        "fd",
        "users",
        "closing",
        "queued",
        "read_busy",
        "write_busy",
        "sched",
        "readable",
        "writable",
        "epoch",
        "nowait",
    )

    def __init__(
        self,
        sched: Scheduler,
        fd: int,
        readable: bool,
        writable: bool,
    ) -> None:
        self.lock = threading.Lock()
        self.fd = fd  # -1 once closed
        self.users = 0  # system calls in progress on the fd
        self.closing = -1  # the fd the last user closes (close() came meanwhile)
        self.queued: dict[FileOp, None] = {}  # queued operations, in order
        self.read_busy = False  # a stream read is queued or running
        self.write_busy = False  # a stream write is queued or running
        self.sched = sched
        self.readable = readable
        self.writable = writable
        self.epoch = 0  # bumped by cancel() and close(): an initiation in progress is cancelled
        #: Whether ``RWF_NOWAIT`` attempts may work here: an unlocked hint,
        #: only ever cleared (a stale True costs one refused attempt).
        self.nowait = True

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(fd, *args)`` on the calling thread, the fd held open meanwhile.

        :raises OSError: ``EBADF`` when closed, or what ``fn`` raises.
        """
        with self.lock:
            fd = self.fd
            if fd < 0:
                raise closed_file()
            self.users += 1
        try:
            return fn(fd, *args)
        finally:
            self._leave()

    def _leave(self) -> None:
        """A system call on the fd is over: close it if it was the last one
        and ``close()`` came meanwhile."""
        with self.lock:
            self.users -= 1
            if self.users or self.closing < 0:
                return
            fd, self.closing = self.closing, -1
        _close_quietly(fd)

    # ------------------------------------------------------------ cancel, close

    def _claim_queued_locked(self) -> list[FileOp]:
        claimed = list(self.queued)
        self.queued.clear()
        for op in claimed:
            op.state = _DONE
            op.release_locked()
        return claimed

    def cancel_all(self) -> None:
        """``cancel()``: every queued operation completes with ``Cancelled``;
        running ones deliver their results."""
        with self.lock:
            self.epoch += 1
            claimed = self._claim_queued_locked()
        self._post_cancelled(claimed)

    def close(self, post: bool = True) -> None:
        """``close()``: cancel the queued operations, close the fd (now, or
        when the last running system call returns).  Idempotent.

        ``post=False`` (the context is closing): the claimed operations are
        abandoned instead of completed.
        """
        with self.lock:
            fd = self.fd
            if fd < 0:
                return
            self.fd = -1
            self.epoch += 1
            claimed = self._claim_queued_locked()
            if self.users:
                self.closing, fd = fd, -1
        if fd >= 0:
            _close_quietly(fd)
        if post:
            self._post_cancelled(claimed)

    def _shutdown(self) -> None:
        """``IOContext.close()``: close without posting."""
        self.close(post=False)


class FileOp(Operation):
    """One read or write: ``call(fd, *args)`` on a helper thread.

    ``attempt``, when given, is a variant that never blocks (a read with
    ``RWF_NOWAIT``: data already in the page cache, else ``EAGAIN``).  It
    is tried first on the initiating thread, like a socket's speculative
    ``recv``; only when it would block does the operation go to a helper
    thread.  A cached read then costs no thread hand-off at all.

    ``state`` and ``task`` are guarded by the file's lock (``task`` is
    written once, in :meth:`start`, before the operation is visible).
    ``__init__`` sets every field itself, as the socket operations' do
    (``_io_ops`` says why); ``cancel`` claims under the file's lock the way
    every operation claims under its owner's.
    """

    __slots__ = ("file", "call", "attempt", "args", "kind", "task", "state")

    def __init__(
        self,
        file: OpenFile,
        call: Callable[..., int],
        attempt: Callable[..., int] | None,
        args: tuple[Any, ...],
        kind: int,
        stop_token: StopToken | None,
    ) -> None:
        self.stop_token = stop_token
        self.file = file
        self.call = call
        self.attempt = attempt
        self.args = args
        self.kind = kind
        self.task: Task[Any] | None = None
        self.state = _QUEUED

    def release_locked(self) -> None:
        """Free the stream direction this operation occupied (file lock held)."""
        kind = self.kind
        if kind == READ:
            self.file.read_busy = False
        elif kind == WRITE:
            self.file.write_busy = False

    def start(self, task: Task[Any]) -> object:
        file = self.file
        kind = self.kind
        attempt = self.attempt
        if attempt is not None and (
            not file.nowait  # unlocked hint, only ever cleared
            or _monotonic() - file.sched._last_pass > INLINE_WINDOW  # unlocked hint
        ):
            attempt = None
        with file.lock:
            fd = file.fd
            if fd < 0:
                raise closed_file()
            if kind == READ:
                if file.read_busy:
                    raise RuntimeError("another read is already pending on this file")
                file.read_busy = True
            elif kind == WRITE:
                if file.write_busy:
                    raise RuntimeError("another write is already pending on this file")
                file.write_busy = True
            epoch = file.epoch
            if attempt is not None:
                file.users += 1
        if attempt is not None:
            result = self._attempt(attempt, fd)
            if result is not _WOULD_BLOCK:
                return result
        sched = file.sched
        # Counted before the operation is visible to a cancel or a helper.
        sched.work_started()
        with file.lock:
            if file.fd < 0 or file.epoch != epoch:
                # close() or cancel() came during the initiation.
                self.release_locked()
                error: BaseException | None = Cancelled()
            else:
                error = None
                self.task = task
                file.queued[self] = None
        if error is not None:
            sched.work_finished()
            raise error
        try:
            submit(self._run)
        except BaseException:
            with file.lock:
                claimed = self.state == _QUEUED
                if claimed:
                    self.state = _DONE
                    del file.queued[self]
                    self.release_locked()
            if not claimed:
                return PENDING  # a cancel claimed it meanwhile and posted Cancelled
            sched.work_finished()
            raise
        return PENDING

    def _attempt(self, attempt: Callable[..., int], fd: int) -> object:
        """The non-blocking first try on the initiating thread (the fd is
        held): its result, or :data:`_WOULD_BLOCK` to go to a helper thread."""
        file = self.file
        try:
            result: object = attempt(fd, *self.args)
        except BlockingIOError:
            result = _WOULD_BLOCK  # not in the page cache (or an empty pipe)
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                file._leave()
                with file.lock:
                    self.release_locked()
                raise
            file.nowait = False  # this file system cannot: helper threads from now on
            result = _WOULD_BLOCK
        except BaseException:
            file._leave()
            with file.lock:
                self.release_locked()
            raise
        file._leave()
        if result is not _WOULD_BLOCK:
            with file.lock:
                self.release_locked()
        return result

    def _run(self) -> None:
        """A helper thread: the system call, then the result handed back once."""
        file = self.file
        with file.lock:
            if self.state != _QUEUED:
                return  # cancelled before any thread got to it
            fd = file.fd  # open: close() claims every queued operation
            self.state = _RUNNING
            del file.queued[self]
            file.users += 1
        result: int | None = None
        error: BaseException | None = None
        try:
            result = self.call(fd, *self.args)
        except BaseException as exc:
            # Whatever the call raised is the operation's outcome: the task
            # gets it, and the file's user count and the op's unit of work
            # are settled below either way.
            error = exc
        with file.lock:
            self.state = _DONE
            self.release_locked()
        file._leave()
        task = self.task
        assert task is not None
        file.sched.post_counted(task.wakeup(result, error))

    def cancel(self, task: Task[Any]) -> bool:
        file = self.file
        with file.lock:
            if self.task is not task or self.state != _QUEUED:
                return False  # not ours, done, or running: its result is delivered
            self.state = _DONE
            del file.queued[self]
            self.release_locked()
        file.sched.post_counted(task.wakeup(None, Cancelled()))
        return True


class ReadyOp(Immediate):
    """An awaitable with a known result (an empty buffer: 0 at once), as
    for sockets, but ``EBADF`` says "the file is closed"."""

    __slots__ = ()

    def _closed(self) -> OSError:
        return closed_file()
