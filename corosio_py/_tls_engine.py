"""The engine under a :class:`~corosio_py._tls.TLSStream`: the ``SSLObject``,
its two memory BIOs, the queue of ciphertext to send, the two roles, and
the moves of ciphertext between them and the wrapped socket.

How the pieces fit
------------------
``SSLObject`` is not thread-safe, and one read and one write may run at
once on different threads, so every call into it (and into the BIOs)
happens under ``TLSEngine._lock``, a plain ``threading.Lock`` that is never
held across a wait on the socket.  The hot paths take it with explicit
``acquire()``/``release()`` (see :mod:`corosio_py._waiters` for why).

Ciphertext the ``SSLObject`` produces is moved, under the lock, from the
outgoing BIO to ``_out`` (a list of chunks in stream order).  Only the
holder of the *send* role (:mod:`corosio_py._tls_role`) writes to the
wrapped socket, and it takes chunks from the front of ``_out``: records
leave in the order they were made, whichever party made them (a write, a
read answering a TLS 1.3 key update or a renegotiation, the handshake, the
shutdown).  Only the holder of the *receive* role reads from the wrapped
socket; ``_recv_count`` numbers the reads fed into the incoming BIO, so a
party that waited for the role while another read fed the BIO retries its
TLS call instead of reading again.

Who flushes ``_out``: a write, which sends the queue ahead of its own
records in one system call; a read, a handshake or a shutdown before it
waits for input (it takes the send role if it is free, else the holder
sends what it finds before it lets go).  Output left when nobody is about
to send it (a read that already has plaintext in hand, a write whose
sending was cancelled) goes to a small background flusher task.

``_dry`` saves a read the ``SSLObject`` call that would only raise
``SSLWantReadError``: it is set by a read that found no more input (the
call raised it, or the incoming BIO and the ``SSLObject``'s buffer are both
empty) and cleared by anything that feeds the incoming BIO or calls into
the ``SSLObject`` for the handshake or the shutdown.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any, Final, cast

from ._errors import Cancelled
from ._spawn import spawn
from ._tls_role import Role, RoleWait

__all__ = ("ORPHANED", "RECV_FIRST", "RECV_MAX", "TLSEngine", "consume", "eof_error")

logger = logging.getLogger("corosio_py")

#: The wrapped socket's read buffer starts at this size and doubles, up to
#: ``RECV_MAX``, each time a read fills it (a bulk transfer reads big, an
#: idle connection keeps a small buffer).
RECV_FIRST: Final = 32 * 1024
RECV_MAX: Final = 256 * 1024


class _Orphaned:
    """The type of :data:`ORPHANED`."""

    __slots__ = ()


#: What releasing the send role returns when queued output has nobody to
#: send it: a background flusher is to take the role over.
ORPHANED: Final = _Orphaned()


def eof_error() -> ssl.SSLEOFError:
    """The error of a peer that closed the connection without close_notify."""
    return ssl.SSLEOFError(
        ssl.SSL_ERROR_EOF, "the peer closed the connection without a TLS close_notify"
    )


class TLSEngine:
    """The state of a TLS stream and the plumbing between it and the socket.

    Every field but ``_next``, ``_ssl`` and ``_rbuf`` is guarded by ``_lock``.
    """

    __slots__ = (
        "__weakref__",
        "_next",
        "_lock",
        "_ssl",
        "_incoming",
        "_outgoing",
        "_out",
        "_send",
        "_recv",
        "_recv_count",
        "_raw_eof",
        "_dry",
        "_rbuf",
        "_reading",
        "_writing",
        "_closed",
        "_shut",
    )

    def __init__(
        self, stream: Any, context: ssl.SSLContext, server_side: bool, server_hostname: str | None
    ) -> None:
        incoming = ssl.MemoryBIO()
        outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._next: Any = stream  # a DescriptorHandle with the stream surface
        self._incoming = incoming  # (lock)
        self._outgoing = outgoing  # (lock)
        # Guards the SSLObject, both BIOs and every field below; never held
        # across a wait on the socket.  Lock order: task lock, this lock,
        # descriptor lock, scheduler lock.
        self._lock = threading.Lock()
        self._out: list[Any] = []  # ciphertext to send, in stream order (lock)
        self._send = Role(self._lock)
        self._recv = Role(self._lock)
        self._recv_count = 0  # reads fed into the incoming BIO (lock)
        self._raw_eof = False  # the wrapped socket reported EOF (lock)
        self._dry = False  # a read would only want input (lock; see the module docstring)
        # Used only by the receive role's holder (handed over under the lock).
        self._rbuf: bytearray | None = None
        self._reading = False  # a read_some is pending (lock)
        self._writing = False  # a write_some is pending (lock)
        self._closed = False  # (lock)
        self._shut = False  # shutdown() completed (lock)

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _step_done_locked(self) -> tuple[int, bool]:
        """After a call into the SSLObject (lock held): queue its output;
        return the read number a wait for input starts from, and whether
        this party took the send role to flush the queue (it was free)."""
        outgoing = self._outgoing
        if outgoing.pending:
            self._out.append(outgoing.read())
        return self._recv_count, bool(self._out) and self._send.try_take_locked()

    async def _send_then_raise(
        self, flush: bool, error: BaseException | None, stop_token: Any
    ) -> None:
        """Flush (when this party took the send role), then raise ``error``
        if there is one (the alert before it is sent on a best-effort basis)."""
        if flush:
            await self._flush_and_release(stop_token, best_effort=error is not None)
        if error is not None:
            raise error

    def _release_send(self) -> None:
        """Give the send role up; queued output nobody will send goes to a
        background flusher, which keeps the role."""
        lock = self._lock
        lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
        try:
            after = self._release_send_locked()
        finally:
            lock.release()
        if after is not None:
            self._hand_over(after)

    def _release_send_locked(self) -> RoleWait | _Orphaned | None:
        """:meth:`_release_send` with the lock held; the caller passes what
        it returns (unless None) to :meth:`_hand_over` once the lock is released."""
        send = self._send
        if self._out and not self._closed and not send.waiters:
            return ORPHANED  # the role stays taken, for the flusher
        return send.release_locked()

    def _hand_over(self, after: RoleWait | _Orphaned) -> None:
        """Complete a release of the send role (lock not held): wake the
        waiter it was handed to, or start the flusher that takes it over."""
        if after is not ORPHANED:
            cast(RoleWait, after).granted()  # a write: it sends the queue first
            return
        try:
            spawn(self._next.context, self._background_flush())
        except RuntimeError:  # the context is closed: nothing will run
            self._send.release()

    async def _background_flush(self) -> None:
        """Send queued output for nobody in particular (holds the send role)."""
        try:
            await self._flush_held(None)
        except (Cancelled, OSError) as error:
            logger.debug("TLSStream background flush on %r stopped: %r", self._next, error)
        finally:
            self._release_send()

    async def _flush_and_release(self, stop_token: Any, *, best_effort: bool = False) -> None:
        """Send the queue, then give the send role up (the caller took it).

        ``best_effort``: an alert before an error is raised; failing to
        send it is not reported.
        """
        try:
            await self._flush_held(stop_token)
        except (OSError, Cancelled):
            if not best_effort:
                raise
        finally:
            self._release_send()

    async def _flush_held(self, stop_token: Any) -> None:
        """Send ``_out`` until it is empty (the caller holds the send role).

        On ``Cancelled`` the unsent chunks go back to the front of the
        queue (it sent nothing of them); a connection error drops them:
        nobody can send them any more.
        """
        next_layer = self._next
        lock = self._lock
        while True:
            lock.acquire()
            try:
                outgoing = self._outgoing
                if outgoing.pending:
                    self._out.append(outgoing.read())
                chunks = self._out
                if not chunks:
                    return
                self._out = []
            finally:
                lock.release()
            try:
                while chunks:
                    sent = await next_layer.write_some(
                        chunks[0] if len(chunks) == 1 else chunks, stop_token=stop_token
                    )
                    consume(chunks, sent)
            except Cancelled:
                with self._lock:
                    if not self._closed:
                        self._out[:0] = chunks
                raise

    async def _receive(self, seen: int, stop_token: Any, held: bool = False) -> None:
        """Feed the incoming BIO with one read of the wrapped socket, unless
        another party fed it since read number ``seen``.

        ``held``: the caller already took the receive role (it was free),
        in the lock stretch that gave it ``seen``.

        :raises ssl.SSLEOFError: the TLS layer wants input after EOF.
        """
        role = self._recv
        lock = self._lock
        if not held:
            lock.acquire()
            try:
                if self._raw_eof:
                    raise eof_error()
                taken = role.try_take_locked()
            finally:
                lock.release()
            if not taken:
                await RoleWait(role, stop_token)
            lock.acquire()
            try:
                fed = self._recv_count != seen
            finally:
                lock.release()
            if fed:
                role.release()  # someone else's read brought input: retry first
                return
        waiter = None
        try:
            buf = self._rbuf
            if buf is None:
                buf = self._rbuf = bytearray(RECV_FIRST)
            count: int = await self._next.read_some(buf, stop_token=stop_token)
            lock.acquire()
            try:
                if count:
                    self._incoming.write(memoryview(buf)[:count])
                else:
                    self._incoming.write_eof()
                    self._raw_eof = True
                self._recv_count += 1
                self._dry = False
                if count == len(buf) and count < RECV_MAX:
                    self._rbuf = bytearray(2 * count)  # before the role is handed on
                waiter = role.release_locked()
            finally:
                lock.release()
        except BaseException:
            role.release()
            raise
        if waiter is not None:
            waiter.granted()


def consume(chunks: list[Any], count: int) -> None:
    """Drop ``count`` sent bytes from the front of ``chunks``."""
    while count:
        head = chunks[0]
        size = len(head) if not isinstance(head, memoryview) else head.nbytes
        if count >= size:
            count -= size
            del chunks[0]
        else:
            chunks[0] = memoryview(head)[count:]
            count = 0

