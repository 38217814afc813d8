"""Per-descriptor state and the contract of the I/O operations that park on it.

:class:`Descriptor` (one per open fd) and :class:`DescriptorOp` (what an
operation must provide to park in one of its slots).  The stream
operations themselves (read, write, connect, accept) and ``FailedOp`` are in
:mod:`corosio_py._io_ops`.

This module ports upstream's behaviour for stream
sockets and acceptors.  One :class:`Descriptor` exists per open fd; it is the
:class:`~corosio_py._reactor.ReadinessTarget` registered with the reactor once,
when the fd is opened, and deregistered just before the fd is closed.

Slots and flags
---------------
* Two :class:`Slot` objects, one per direction: ``reads`` (a read, an
  accept, a read or error wait) and ``writes`` (a write or a connect: both
  wait for writability).  Each holds at most one parked op in ``op``; a
  second op of the same direction raises ``RuntimeError`` at its ``await``
  (the API contract).
* ``Slot.ready``: a readiness edge arrived while no op of that direction was
  parked.  An op that is about to park consumes the flag and retries its
  system call first, so an edge that arrives between a failed attempt and
  the parking is never lost.
* ``Slot.watched``: the reactor reports this direction (writes on the
  edge-triggered backends only from the first write that would block:
  ``ReactorBase.watch_writes``).
* An initiation attempts, retries on a cached edge and parks in one hold of
  the lock, so a ``cancel()`` or ``close()`` either comes before it (and the
  op fails or is refused at once) or finds it parked and claims it: a cancel
  can never fall between the failed attempt and the parking (upstream's
  reactor ops could lose one there; a deliberate departure).

When a read may park without trying its system call
-----------------------------------------------------
In a request/response exchange the speculative ``recv`` of the next read
almost always fails with EAGAIN.  It is skipped (``drained``) when the last
``recv`` returned less than its buffer -- the receive queue was empty then --
no readiness was reported since, and the peer was never reported to hang up
or fail (``hup``).  This is safe on the edge-triggered backends because
every arrival after that ``recv`` (data, FIN, RST) produces a new edge, which
either completes the parked read or sets ``reads.ready``; and a FIN or error
that arrived *before* it was reported with HANGUP/ERROR when its edge was
harvested, which disables the skip for good.  (Without that flag a FIN that
came with the last data would bring no further edge and the read would park
forever.)  A local ``shutdown`` disables it too.  Level-triggered backends
watch a parked read's fd, so a skipped attempt costs them nothing.

A datagram's size says nothing about what else is queued, so a datagram
receive learns it differently: when a readiness report completes a parked
receive, :meth:`Descriptor.input_empty` polls the fd once, and an empty
queue sets ``drained``.  One cheap poll replaces the failed ``recvfrom``
(and its exception) of the next receive of an echo or request/response
exchange; a receive that completes at once (a busy queue) never polls.

Exactly once
------------
Every system call on the fd runs under ``lock`` after checking ``fd >= 0``,
so ``close()`` (which sets ``fd = -1`` under the lock before closing) never
races a call on a reused fd number.  A parked op is completed by whoever takes
it out of its slot under ``lock``: :meth:`Descriptor.on_ready` (the result,
queued on the reactor thread's own queue), ``cancel``/``close``/a task cancel
(``Cancelled``, posted with ``post_counted`` after the lock is released).
An op that never parks is delivered by its initiator, synchronously.

Lock order: task lock -> ``Descriptor.lock`` -> reactor / scheduler locks.  No
scheduler method is called while ``lock`` is held (docs/concurrency.md).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._endpoint import Endpoint
from ._errors import Cancelled
from ._fdstate import LockedFd
from ._ops import PENDING, Operation
from ._reactor import ERROR, HANGUP, READ, WRITE

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._scheduler import Scheduler
    from ._tasks import Task

__all__ = (
    "MSG_NOSIGNAL",
    "WOULD_BLOCK",
    "Descriptor",
    "DescriptorOp",
    "closed_error",
    "os_error",
    "socket_error",
)

#: Suppresses SIGPIPE per call where the platform has it (Linux, BSD); macOS
#: relies on SO_NOSIGPIPE set when the socket is opened.
MSG_NOSIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)

#: The most buffers one gathered ``sendmsg`` may carry (``IOV_MAX``).
try:
    IOV_MAX: Final = max(16, os.sysconf("SC_IOV_MAX"))
except (AttributeError, OSError, ValueError):  # pragma: no cover - exotic platforms
    IOV_MAX = 1024  # type: ignore[misc]


#: What a second concurrent operation of one direction is told, by
#: ``Slot.write`` (read slot first).
_BUSY: Final = (
    "another read or accept is already pending on this socket",
    "another write or connect is already pending on this socket",
)


class _WouldBlock:
    """The type of :data:`WOULD_BLOCK`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WOULD_BLOCK"


#: Returned by :meth:`DescriptorOp.attempt` when the system call would block.
WOULD_BLOCK: Final = _WouldBlock()


def closed_error() -> OSError:
    """The error for I/O on a closed (or never opened) object: ``EBADF``."""
    return OSError(errno.EBADF, "the socket is closed")


def socket_error(sock: socket.socket) -> int:
    """``SO_ERROR`` of ``sock`` (clears it), or the errno of the failed query."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError as exc:
        return exc.errno or errno.EIO


def os_error(code: int) -> OSError:
    """An ``OSError`` for ``code``; the constructor picks the subclass
    (``ConnectionRefusedError`` for ``ECONNREFUSED``, ...)."""
    return OSError(code, os.strerror(code))


class DescriptorOp(Operation):
    """An operation that may park in one slot of a :class:`Descriptor`.

    A fresh op object is made per ``await``: the task driver reads the op's
    ``stop_token`` (and may call :meth:`discard`) when the task *resumes*,
    which can be after another task already started the next op of the same
    direction, and the arguments (the buffer) must be bound to one await.
    The per-socket state that is reused lives in the :class:`Descriptor`.

    ``task`` is written when the op parks, under the descriptor lock.
    """

    __slots__ = ("desc", "task")

    #: Which slot the op uses: the write slot (write, connect) or the read
    #: slot (read, accept).
    write_direction: ClassVar[bool] = False
    #: Whether the op waits for an error or hang-up only (``wait(ERROR)``):
    #: level-triggered backends then watch the fd for errors, not reads.
    errors_only: ClassVar[bool] = False
    #: Whether a socket error reported while the op is parked completes it
    #: with that error.  Readiness waits say no: they complete normally and
    #: leave the error pending for the operation that follows.
    takes_error: ClassVar[bool] = True

    def __init__(self, desc: Descriptor, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task: Task[Any] | None = None

    def attempt(self) -> object:
        """Perform the system call once; called with ``desc.lock`` held.

        Return the result, or :data:`WOULD_BLOCK`; raise the error.
        """
        raise NotImplementedError

    def may_skip_attempt(self) -> bool:
        """Whether the first attempt is known to block (``desc.lock`` held)."""
        return False

    def start(self, task: Task[Any]) -> object:
        """Initiate the op for ``task`` on ``desc`` (the task driver holds
        the task lock).

        Speculative system call first; on would-block, a readiness edge
        cached meanwhile gets one retry, else the op parks -- all in one
        hold of the lock, so no cancel or close can slip in between.  The
        op's unit of work is counted before the op becomes visible (a
        reactor on another thread may complete it at once); that usually
        draws on the running frame's reserve, and when it takes the
        scheduler lock the order (descriptor, then scheduler) is the
        documented one.
        """
        desc = self.desc
        slot = desc.writes if self.write_direction else desc.reads
        consumed = False
        lock = desc.lock
        lock.acquire()  # not ``with``: a hot path (docs/concurrency.md)
        try:
            if desc.fd < 0:
                raise closed_error()
            if slot.op is not None:
                raise RuntimeError(_BUSY[slot.write])
            result = WOULD_BLOCK if self.may_skip_attempt() else self.attempt()
            if result is WOULD_BLOCK:
                if slot.ready:
                    slot.ready = False
                    consumed = True
                    result = self.attempt()
            elif desc.edge:
                # Edge-triggered: the cached edge is stale now (the next park
                # would retry in vain).  Level-triggered: keep it, clearing
                # it would have to wake the reactor to watch the fd again.
                slot.ready = False
            if result is WOULD_BLOCK:
                if not slot.watched:
                    # Before parking: a refusal fails the op, nothing parked.
                    desc.reactor.watch_writes(desc.fd)
                    slot.watched = True
                desc.sched.work_started()
                self.task = task
                slot.op = self
        finally:
            lock.release()
        if desc.edge:
            return PENDING if result is WOULD_BLOCK else result
        if result is WOULD_BLOCK:
            if slot.write or consumed:
                # poll/select watch a direction only on demand: a parked write
                # always adds WRITE; a read adds READ back only when the cached
                # flag was consumed (the fd was left out of the pass until now).
                desc.reactor.interest_changed()
            return PENDING
        if consumed and not slot.write:
            desc.reactor.interest_changed()  # reads.ready went False: watch again
        return result

    def cancel(self, task: Task[Any]) -> bool:
        # ``task`` is written when the op parks, under the task lock that the
        # caller holds now: an op that never parked (or never learnt its
        # descriptor) is rejected before ``desc`` is touched.
        if self.task is not task:
            return False
        return self.desc.cancel_op(self, task)


class Slot:
    """One direction of a :class:`Descriptor` (fields guarded by its lock).

    ``op`` is the parked operation (None when the direction is free),
    ``ready`` the cached readiness edge, ``watched`` whether the reactor
    reports this direction, ``write`` which direction it is (set once).
    """

    __slots__ = ("op", "ready", "watched", "write")

    def __init__(self, write: bool, watched: bool) -> None:
        self.op: DescriptorOp | None = None
        self.ready = False
        self.watched = watched
        self.write = write


class Descriptor(LockedFd):
    """The reactor-facing state of one open fd (socket or acceptor).

    Thread safety: every field below, and the fields of its two slots, is
    guarded by :attr:`lock`, except ``sock``, ``sched``, ``reactor``,
    ``edge``, ``reads`` and ``writes``, which are set once in ``__init__``.
    Any method may be called from any thread.
    """

    __slots__ = (
        "__weakref__",
        "lock",
        "fd",
        "sock",
        "sched",
        "reactor",
        "edge",
        "reads",
        "writes",
        "drained",
        "probe",
        "hup",
        "local",
        "remote",
    )

    def __init__(self, sched: Scheduler, sock: socket.socket) -> None:
        self.lock = threading.Lock()
        self.sock = sock
        self.fd = sock.fileno()  # -1 once closed (lock)
        self.sched = sched
        self.reactor = sched.reactor
        self.edge = type(sched.reactor).edge_triggered
        self.reads = Slot(write=False, watched=True)
        # Edge backends watch writes from the first write that would block.
        self.writes = Slot(write=True, watched=not self.edge)
        self.drained = False  # the last recv came back short, no edge since (lock)
        self.probe: select.poll | None = None  # see input_empty (lock)
        self.hup = False  # a hang-up or error was ever reported, or shut down (lock)
        self.local: Endpoint | None = None  # cached endpoints (lock)
        self.remote: Endpoint | None = None

    def register(self) -> None:
        """Register with the reactor (once, right after construction)."""
        self.reactor.register(self.fd, self)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(sock, *args)`` under the lock; ``EBADF`` once closed.

        Option and name queries go through here so they never touch a
        reused fd number after a concurrent ``close()``.
        """
        with self.lock:
            if self.fd < 0:
                raise closed_error()
            return fn(self.sock, *args)

    def shutdown(self, how: int) -> None:
        """``shutdown(how)`` on the socket; a no-op once closed.

        It also ends the skipped first attempt of reads (``hup``): a local
        shutdown brings no readiness edge.
        """
        with self.lock:
            if self.fd < 0:
                return
            self.hup = True
            self.sock.shutdown(how)

    def input_empty(self) -> bool:
        """Whether nothing is queued to read right now (``lock`` held, fd open).

        A zero-timeout ``poll`` of this one fd: datagram receives use it to
        learn that the queue is empty, which a datagram's size cannot tell
        (``FIONREAD`` cannot either: it reports 0 for a queued empty
        datagram).  The poll object is made on first use and kept.
        """
        probe = self.probe
        if probe is None:
            probe = self.probe = select.poll()
            probe.register(self.fd, select.POLLIN)
        return not probe.poll(0)

    # ---------------------------------------------------------- initiation

    # ---------------------------------------------------------- cancellation

    def cancel_op(self, op: DescriptorOp, task: Task[Any]) -> bool:
        """Complete ``op`` with ``Cancelled`` if it is parked for ``task``."""
        if not self.claim_op(op, task):
            return False
        self.sched.post_counted(task.wakeup(None, Cancelled()))
        return True

    def claim_op(self, op: DescriptorOp, task: Task[Any]) -> bool:
        """Take ``op`` out of its slot if it is parked for ``task``; the
        caller then completes it exactly once (``post_counted``)."""
        with self.lock:
            if op.task is not task:
                return False
            slot = self.writes if op.write_direction else self.reads
            if slot.op is not op:
                return False
            slot.op = None
        return True

    def cancel_all(self) -> None:
        """``cancel()``: every parked op completes with ``Cancelled`` (an
        initiation in progress on another thread holds the lock until it has
        parked, so it is claimed here too)."""
        with self.lock:
            if self.fd < 0:
                return
            claimed = self._claim_all_locked()
        self._post_cancelled(claimed)

    def close(self) -> None:
        """``close()``: cancel parked ops, deregister, close the fd.  Idempotent."""
        fd, claimed = self._detach()
        if fd < 0:
            return
        # fd is -1 under the lock, so no system call can start on it any
        # more; deregister before the number can be reused by another open.
        self.reactor.deregister(fd)
        self.sock.close()
        self._post_cancelled(claimed)

    def _shutdown(self) -> None:
        """``IOContext.close()``: close without posting; parked ops are abandoned."""
        fd, _ = self._detach()
        if fd < 0:
            return
        try:
            self.reactor.deregister(fd)
        finally:
            self.sock.close()

    def _detach(self) -> tuple[int, list[DescriptorOp]]:
        """Mark closed under the lock and take the parked ops out; the fd
        (-1 when it was closed already) and the ops to complete."""
        with self.lock:
            fd = self.fd
            if fd < 0:
                return fd, []
            self.fd = -1
            claimed = self._claim_all_locked()
            self.reads.ready = self.writes.ready = False
            self.local = self.remote = None
            self.probe = None
        return fd, claimed

    def _claim_all_locked(self) -> list[DescriptorOp]:
        claimed = []
        for slot in (self.reads, self.writes):
            op = slot.op
            if op is not None:
                slot.op = None
                claimed.append(op)
        return claimed

    # ---------------------------------------------------------- readiness

    def wants_read(self) -> bool:
        """Level-triggered backends: watch READ while a read op is parked or
        no readiness is cached."""
        with self.lock:
            reads = self.reads
            if self.fd < 0:
                return False
            op = reads.op
            return not reads.ready if op is None else not op.errors_only

    def wants_error(self) -> bool:
        """Level-triggered backends: an error wait is parked (it wants
        errors and hang-ups reported, not readability: see ``_level``)."""
        with self.lock:
            op = self.reads.op
            return self.fd >= 0 and op is not None and op.errors_only

    def wants_write(self) -> bool:
        """Level-triggered backends: watch WRITE only while a write or connect
        op is parked (level writability would otherwise spin)."""
        with self.lock:
            return self.writes.op is not None

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        """A readiness report (reactor thread, no scheduler lock held).

        Performs the parked ops' system calls under the lock and
        appends their resumptions to ``out``; the op's unit of work moves to
        the queued resumption.  A report for a closed descriptor, or one that
        turns out to be spurious, only caches readiness.
        """
        self.lock.acquire()  # not ``with``: a hot path (docs/concurrency.md)
        try:
            if self.fd < 0:
                return
            if bits & (HANGUP | ERROR):
                self.hup = True
            self.drained = False
            reads = self.reads
            writes = self.writes
            if bits & ERROR and any(
                slot.op is not None and slot.op.takes_error for slot in (reads, writes)
            ):
                code = socket_error(self.sock)
                if code:
                    # The socket error completes every parked op; an
                    # empty slot caches the readiness so the next op's own
                    # system call reports what is left (EOF, EPIPE).  A
                    # readiness wait completes normally: the fd is ready.
                    exc = os_error(code)
                    for slot in (reads, writes):
                        op = slot.op
                        if op is None:
                            slot.ready = True
                            continue
                        slot.op = None
                        out.append(op.task.wakeup(None, exc if op.takes_error else None))  # type: ignore[union-attr]
                    return
                # No error pending: a concurrent system call in the other
                # direction already reported (and cleared) it.  Let each op
                # retry its own call, which reports EOF or the new state,
                # instead of inventing EIO (the backends add READ|WRITE to
                # every ERROR report).
                bits |= READ | WRITE
            if bits & READ:
                self._ready_locked(reads, out)
            if bits & WRITE:
                self._ready_locked(writes, out)
        finally:
            self.lock.release()

    def _ready_locked(self, slot: Slot, out: deque[Callable[[], object]]) -> None:
        """One direction reported ready: retry its parked op's system call
        and complete the op unless it would still block (its resumption goes
        to ``out``); with no op parked, cache the edge."""
        op = slot.op
        if op is None:
            slot.ready = True
            return
        error: BaseException | None = None
        try:
            result = op.attempt()
        except Exception as exc:
            result, error = None, exc
        else:
            if result is WOULD_BLOCK:
                return
        slot.op = None
        out.append(op.task.wakeup(result, error))  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"<Descriptor fd={self.fd}>"
