"""TLSStream: TLS over a connected stream socket, on ``ssl.MemoryBIO`` and
``ssl.SSLObject`` (never a blocking ``SSLSocket``).

How the pieces fit
------------------
The stream owns one ``SSLObject`` and its two memory BIOs.  ``SSLObject`` is
not thread-safe, and one read and one write may run at once on different
threads, so every call into it (and into the BIOs) happens under
``TLSStream._lock``, a plain ``threading.Lock`` that is never held across a
wait on the socket.

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

Who flushes ``_out``: a write, before it encrypts; a read, a handshake or a
shutdown before it waits for input (it takes the send role if it is free,
else the holder sends what it finds before it lets go).  Output left when
nobody is about to send it (a read that already has plaintext in hand, a
write whose sending was cancelled) goes to a small background flusher task.

Cancellation never loses data
-----------------------------
* A read consumes plaintext only inside one lock-held stretch that cannot be
  cancelled; its only suspensions are the wrapped socket's reads (whose
  ``Cancelled`` consumed nothing: the bytes they do return go into the
  incoming BIO before anything else can happen) and flushes.  A record
  already decrypted is delivered; the cancel lands at the next suspension.
* A write encrypts inside :meth:`_SealedWrite.start`, which the task driver
  calls only once the write is certain to start (a pending cancel or a
  stopped token stops it before): a write that raises ``Cancelled``
  encrypted nothing.  Once its records exist they cannot be taken back, so
  a cancel, a stop token or a timeout that arrives while they are being
  sent completes the write with its count (the unsent records stay queued
  and go out first, before anything else) and lands at the next
  suspension.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import TYPE_CHECKING, Any, Final, cast, final

from ._buffers import byte_view as _byte_view
from ._buffers import view as _view
from ._cancel import check_token
from ._descriptor import MSG_NOSIGNAL, WOULD_BLOCK, Descriptor, WriteOp, closed_error
from ._errors import Cancelled
from ._handle import DescriptorHandle
from ._tasks import spawn, yield_now
from ._tls_role import Role, RoleWait

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("TLSStream",)

logger = logging.getLogger("corosio_py")

#: Plaintext one ``write_some`` encrypts at most (16 records of 16 KiB).
WRITE_CHUNK: Final = 256 * 1024
#: The wrapped socket's read buffer starts at this size and doubles, up to
#: ``RECV_MAX``, each time a read fills it (a bulk transfer reads big, an
#: idle connection keeps a small buffer).
RECV_FIRST: Final = 32 * 1024
RECV_MAX: Final = 256 * 1024
#: What a shutdown reads (and drops) at once while waiting for close_notify.
_DISCARD: Final = 64 * 1024


class _WantRead:
    """The type of :data:`_WANT_READ`."""

    __slots__ = ()


#: ``_SealedWrite``'s result when the TLS layer needs input first (a
#: handshake or a renegotiation in progress): nothing was encrypted.
_WANT_READ: Final = _WantRead()


def _eof_error() -> ssl.SSLEOFError:
    return ssl.SSLEOFError(
        ssl.SSL_ERROR_EOF, "the peer closed the connection without a TLS close_notify"
    )


@final
class TLSStream:
    """TLS over a connected stream socket (``TCPSocket`` or ``LocalStreamSocket``).

    Configure it with a standard :class:`ssl.SSLContext`.  ``server_side``:
    play the server (the context holds the certificate).  ``server_hostname``:
    the name sent as SNI and checked against the peer's certificate (a
    client whose context has ``check_hostname`` needs it).

    One read and one write may be pending at once, from tasks on any
    threads; a second concurrent read (or write) raises ``RuntimeError`` at
    its ``await``.  Every awaitable takes ``stop_token=``.  ``read_some``
    and ``write_some`` drive the handshake themselves if :meth:`handshake`
    was not awaited first.  Cancellation never loses data: a read that
    raises ``Cancelled`` consumed nothing, a write that raises it encrypted
    nothing (one whose records were already made completes with its count,
    and the cancel lands at the next suspension).

    Errors: ``ssl.SSLCertVerificationError`` at the handshake for a
    certificate that does not verify; ``ssl.SSLEOFError`` for a peer that
    closes without close_notify (unless the context sets
    ``ssl.OP_IGNORE_UNEXPECTED_EOF``: then a read returns 0);
    ``ssl.SSLError`` for anything that is not TLS; ``OSError(EBADF)``
    after :meth:`close`.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time.
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
        "_rbuf",
        "_reading",
        "_writing",
        "_closed",
        "_shut",
    )

    def __init__(
        self,
        stream: Any,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
    ) -> None:
        """Wrap ``stream``; nothing is sent until the first await.

        :raises TypeError: for a ``stream`` that is not a corosio_py stream
            socket, or a ``context`` that is not an ``ssl.SSLContext``.
        :raises ValueError: for a client context with ``check_hostname``
            and no ``server_hostname`` (or a server with one).
        """
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context must be an ssl.SSLContext, not {type(context).__name__}")
        if not isinstance(stream, DescriptorHandle) or not callable(
            getattr(stream, "read_some", None)
        ):
            raise TypeError(
                "TLSStream wraps a connected TCPSocket or LocalStreamSocket, "
                f"not {type(stream).__name__}"
            )
        if not server_side and server_hostname is None and context.check_hostname:
            raise ValueError("a client context with check_hostname needs server_hostname")
        incoming = ssl.MemoryBIO()
        outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            incoming, outgoing, server_side=bool(server_side), server_hostname=server_hostname
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
        # Used only by the receive role's holder (handed over under the lock).
        self._rbuf: bytearray | None = None
        self._reading = False  # a read_some is pending (lock)
        self._writing = False  # a write_some is pending (lock)
        self._closed = False  # (lock)
        self._shut = False  # shutdown() completed (lock)

    # ------------------------------------------------------------ properties

    @property
    def next_layer(self) -> Any:
        """The wrapped stream socket."""
        return self._next

    @property
    def server_hostname(self) -> str | None:
        """The host name given at construction (SNI, certificate check)."""
        return self._ssl.server_hostname

    @property
    def server_side(self) -> bool:
        """Whether this end plays the TLS server."""
        return self._ssl.server_side

    def selected_alpn_protocol(self) -> str | None:
        """The protocol ALPN agreed on, or None."""
        with self._lock:
            return self._ssl.selected_alpn_protocol()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as ``ssl.SSLSocket.getpeercert`` gives it.

        :raises ValueError: before the handshake is done.
        """
        with self._lock:
            return self._ssl.getpeercert(binary_form)

    def version(self) -> str | None:
        """The negotiated protocol (``"TLSv1.3"``), None before the handshake."""
        with self._lock:
            return self._ssl.version()

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret bits)`` of the cipher, None before the handshake."""
        with self._lock:
            return self._ssl.cipher()

    @property
    def is_open(self) -> bool:
        """Whether the stream (and the socket it wraps) is open."""
        with self._lock:
            if self._closed:
                return False
        return bool(self._next.is_open)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the stream and the wrapped socket; pending operations
        complete with ``Cancelled``.  Sends no close_notify (see
        :meth:`shutdown`).  Idempotent; any thread."""
        with self._lock:
            self._closed = True
            self._send.closed = self._recv.closed = True
            waiters = self._send.claim_waiters_locked() + self._recv.claim_waiters_locked()
            self._out = []
        for waiter in waiters:
            waiter.fail(Cancelled())
        self._next.close()

    def cancel(self) -> None:
        """Complete every pending operation with ``Cancelled``.  Any thread.

        A write whose records were already made completes with its count
        instead (they cannot be taken back; they are still sent).
        """
        with self._lock:
            waiters = self._send.claim_waiters_locked() + self._recv.claim_waiters_locked()
        for waiter in waiters:
            waiter.fail(Cancelled())
        self._next.cancel()

    # ------------------------------------------------------------ handshake

    async def handshake(self, *, stop_token: StopToken | None = None) -> None:
        """Perform the TLS handshake (a no-op once done).

        :raises ssl.SSLCertVerificationError: the peer's certificate does
            not verify (untrusted, expired, wrong host name).
        :raises ssl.SSLError: the peer does not speak TLS, or refused ours.
        :raises ssl.SSLEOFError: the peer closed the connection meanwhile.
        :raises Cancelled: when cancelled (await it again to go on).
        """
        _start_checks(stop_token)
        ssl_object = self._ssl
        while True:
            with self._lock:
                if self._closed:
                    raise closed_error()
                done = False
                error: ssl.SSLError | None = None
                try:
                    ssl_object.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    error = exc
                seen, flush = self._step_done_locked()
            await self._send_then_raise(flush, error, stop_token)
            if done:
                return
            await self._receive(seen, stop_token)

    # ------------------------------------------------------------ reading

    async def read_some(self, buffer: Any, *, stop_token: StopToken | None = None) -> int:
        """Read decrypted bytes into ``buffer``; return the count, 0 at the
        end of the stream (the peer's close_notify).

        Returns as soon as some plaintext is there, with as much as is
        already decrypted or decryptable without waiting (up to the
        buffer's size).  An empty buffer gives 0 at once.

        :raises TypeError: for a non-writable buffer or a bad ``stop_token``.
        :raises ssl.SSLEOFError: the peer closed without close_notify.
        :raises ssl.SSLError: for data that is not TLS.
        :raises RuntimeError: when another read is pending.
        :raises OSError: ``EBADF`` when closed; ``ConnectionResetError``, ...
        :raises Cancelled: when cancelled; nothing was consumed then.
        """
        check_token(stop_token)
        view = _writable(buffer)
        size = view.nbytes
        _start_checks(stop_token)
        with self._lock:
            if self._closed:
                raise closed_error()
            if self._reading:
                raise RuntimeError("another read is already pending on this TLS stream")
            if not size:
                return 0
            self._reading = True
        try:
            return await self._read(view, size, stop_token)
        finally:
            with self._lock:
                self._reading = False

    async def _read(self, view: memoryview, size: int, stop_token: StopToken | None) -> int:
        ssl_object = self._ssl
        while True:
            with self._lock:
                if self._closed:
                    raise closed_error()
                got = 0
                eof = False
                error: ssl.SSLError | None = None
                try:
                    # Everything decryptable now, in one stretch that no
                    # cancel can interrupt (see the module docstring).
                    while got < size:
                        count = cast(int, ssl_object.read(size - got, view[got:] if got else view))
                        if not count:
                            eof = True
                            break
                        got += count
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    eof = True
                except ssl.SSLError as exc:
                    error = exc
                seen, flush = self._step_done_locked()
            if got or eof or error is not None:
                if flush:
                    # Plaintext (or the outcome) is in hand: no suspension
                    # may come between it and the caller.
                    self._release_send()
                if got:
                    return got
                if error is not None:
                    raise error
                return 0
            if flush:
                await self._flush_and_release(stop_token)
            await self._receive(seen, stop_token)

    async def read_exactly(self, n: int, *, stop_token: StopToken | None = None) -> bytes:
        """Read exactly ``n`` decrypted bytes.

        :raises EOFError: when the stream ends first (the bytes read so far
            are lost with the error).
        :raises TypeError, ValueError: for a bad ``n`` or ``stop_token``.
        :raises Cancelled: when cancelled (bytes read so far are lost).
        """
        check_token(stop_token)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n < 0:
            raise ValueError("n must be >= 0")
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            count = await self.read_some(view[got:], stop_token=stop_token)
            if not count:
                raise EOFError(f"the TLS stream ended after {got} of {n} bytes")
            got += count
        view.release()
        return bytes(buf)

    # ------------------------------------------------------------ writing

    async def write_some(self, data: Any, *, stop_token: StopToken | None = None) -> int:
        """Encrypt and send some of ``data``; return how many bytes.

        ``data`` is bytes-like, or a list of them (joined into records and
        sent with one system call).  Up to :data:`WRITE_CHUNK` bytes go per
        call, as full-size records.  Returns once the records are sent.
        Empty data gives 0 at once.

        :raises TypeError: for data that is not bytes-like, or a bad
            ``stop_token``.
        :raises RuntimeError: when another write is pending.
        :raises BrokenPipeError, ConnectionResetError: the peer is gone.
        :raises OSError: ``EBADF`` when closed.
        :raises Cancelled: when cancelled; nothing was encrypted then.
        """
        check_token(stop_token)
        payload = _plaintext(data, WRITE_CHUNK)
        _start_checks(stop_token)
        with self._lock:
            if self._closed:
                raise closed_error()
            if self._writing:
                raise RuntimeError("another write is already pending on this TLS stream")
            if not payload.nbytes:
                return 0
            self._writing = True
        try:
            return await self._write(payload, stop_token)
        finally:
            with self._lock:
                self._writing = False

    async def _write(self, payload: memoryview, stop_token: StopToken | None) -> int:
        desc = self._next._desc
        if desc is None:
            raise closed_error()
        role = self._send
        while True:
            with self._lock:
                taken = role.try_take_locked()
            if not taken:
                await RoleWait(role, stop_token)
            op: _SealedWrite | None = None
            try:
                # Records queued by others go first; a cancel here costs
                # nothing (this write has not started).
                await self._flush_held(stop_token)
                op = _SealedWrite(self, desc, payload, stop_token)
                try:
                    result = await op
                except Cancelled:
                    # cancel()/close() of the stream (a task's cancel never
                    # gets here once the records exist: see _SealedWrite).
                    if not op.sealed or self._is_closed():
                        raise
                    return op.count
                except OSError:
                    op.view = None  # the connection failed: nothing to requeue
                    raise
                if result is not _WANT_READ:
                    count: int = result
                    return count
                # The handshake (or a renegotiation) needs the peer first:
                # send what it made, then wait for input without the role.
                await self._flush_held(stop_token)
                seen = op.seen
            finally:
                if op is not None:
                    op.requeue_unsent()
                self._release_send()
            await self._receive(seen, stop_token)

    async def write_all(self, data: Any, *, stop_token: StopToken | None = None) -> int:
        """Encrypt and send all of ``data`` (bytes-like or a list of them);
        return its size.

        :raises TypeError: for data that is not bytes-like, or a bad
            ``stop_token``.
        :raises Cancelled: when cancelled (some bytes may have been sent).
        :raises OSError: as :meth:`write_some`.
        """
        check_token(stop_token)
        view = _plaintext(data, 1 << 62)
        total = view.nbytes
        if not total:
            await self.write_some(b"", stop_token=stop_token)
            return 0
        sent = 0
        while sent < total:
            sent += await self.write_some(view[sent:] if sent else view, stop_token=stop_token)
        return total

    # ------------------------------------------------------------ shutdown

    async def shutdown(self, *, stop_token: StopToken | None = None) -> None:
        """Send close_notify and wait for the peer's.

        The socket stays open (:meth:`close` it).  Application data that
        arrives before the peer's close_notify is dropped unless a read is
        pending, which gets it.  A second call returns at once.

        :raises ssl.SSLEOFError: the peer closed the connection without
            close_notify.
        :raises OSError: ``EBADF`` when closed.
        :raises Cancelled: when cancelled.
        """
        _start_checks(stop_token)
        ssl_object = self._ssl
        while True:
            with self._lock:
                if self._closed:
                    raise closed_error()
                if self._shut:
                    return
                done = again = let_reader = False
                error: ssl.SSLError | None = None
                try:
                    if self._incoming.pending or ssl_object.pending():
                        # unwrap() would refuse application data; it belongs
                        # to a pending read, or is dropped.
                        if self._reading:
                            let_reader = True
                        else:
                            while ssl_object.read(_DISCARD):
                                pass
                            again = True
                    else:
                        ssl_object.unwrap()
                        done = self._shut = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    again = True  # the peer's close_notify: unwrap() completes now
                except ssl.SSLError as exc:
                    error = _eof_error() if self._raw_eof else exc
                seen, flush = self._step_done_locked()
            await self._send_then_raise(flush, error, stop_token)
            if done:
                return
            if let_reader:
                await yield_now()
            elif not again:
                await self._receive(seen, stop_token)

    # ------------------------------------------------------------ plumbing

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _take_output_locked(self) -> None:
        """Move what the SSLObject wrote to the outgoing BIO onto ``_out``."""
        outgoing = self._outgoing
        if outgoing.pending:
            self._out.append(outgoing.read())

    def _step_done_locked(self) -> tuple[int, bool]:
        """After a call into the SSLObject: queue its output; return the
        read number a wait for input starts from, and whether this party
        took the send role to flush the queue (it was free)."""
        self._take_output_locked()
        return self._recv_count, bool(self._out) and self._send.try_take_locked()

    async def _send_then_raise(
        self, flush: bool, error: BaseException | None, stop_token: StopToken | None
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
        with self._lock:
            waiter = None
            orphaned = bool(self._out) and not self._closed and not self._send.waiters
            if not orphaned:
                waiter = self._send.release_locked()
        if waiter is not None:
            waiter.granted()  # a write: it sends the queue first
        elif orphaned:
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

    async def _flush_and_release(
        self, stop_token: StopToken | None, *, best_effort: bool = False
    ) -> None:
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

    async def _flush_held(self, stop_token: StopToken | None) -> None:
        """Send ``_out`` until it is empty (the caller holds the send role).

        On any error the unsent chunks go back to the front of the queue
        (a failed system call sent nothing; ``Cancelled`` sent nothing),
        except after a connection error, which drops them: nobody can send
        them any more.
        """
        next_layer = self._next
        while True:
            with self._lock:
                self._take_output_locked()
                chunks = self._out
                if not chunks:
                    return
                self._out = []
            try:
                while chunks:
                    sent = await next_layer.write_some(
                        chunks[0] if len(chunks) == 1 else chunks, stop_token=stop_token
                    )
                    _consume(chunks, sent)
            except Cancelled:
                with self._lock:
                    if not self._closed:
                        self._out[:0] = chunks
                raise

    async def _receive(self, seen: int, stop_token: StopToken | None) -> None:
        """Feed the incoming BIO with one read of the wrapped socket, unless
        another party fed it since read number ``seen``.

        :raises ssl.SSLEOFError: the TLS layer wants input after EOF.
        """
        role = self._recv
        with self._lock:
            if self._raw_eof:
                raise _eof_error()
            taken = role.try_take_locked()
        if not taken:
            await RoleWait(role, stop_token)
        try:
            with self._lock:
                if self._recv_count != seen:
                    return  # someone else's read brought input: retry first
            buf = self._rbuf
            if buf is None:
                buf = self._rbuf = bytearray(RECV_FIRST)
            count: int = await self._next.read_some(buf, stop_token=stop_token)
            with self._lock:
                if count:
                    self._incoming.write(memoryview(buf)[:count])
                else:
                    self._incoming.write_eof()
                    self._raw_eof = True
                self._recv_count += 1
            if count == len(buf) and count < RECV_MAX:
                self._rbuf = bytearray(2 * count)
        finally:
            role.release()

    def __repr__(self) -> str:
        state = "closed" if self._is_closed() else "open"
        side = "server" if self._ssl.server_side else "client"
        return f"<TLSStream {side} {state} over {self._next!r}>"


class _SealedWrite(WriteOp):
    """The final step of a write: encrypt, then send the records.

    ``start`` encrypts (under the stream lock) and sends from an offset,
    parking on the wrapped socket's write slot until every record is out.
    A cancel while parked completes it with its count (see the module
    docstring); ``sent`` tells what left, and the rest is requeued.
    """

    __slots__ = ("stream", "payload", "count", "sealed", "seen", "view", "sent")

    def __init__(
        self, stream: TLSStream, desc: Descriptor, payload: Any, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self._awaited = True
        self.desc = desc
        self.task = None
        self.gather = False
        self.stream = stream
        self.payload = payload
        self.count = 0
        self.sealed = False  # records were made (lock of the task running it)
        self.seen = 0
        self.view: memoryview | None = None
        self.sent = 0  # bytes of ``view`` on the wire (desc.lock while parked)

    def start(self, task: Task[Any]) -> object:
        stream = self.stream
        with stream._lock:
            if stream._closed:
                raise closed_error()
            try:
                self.count = stream._ssl.write(self.payload)
            except ssl.SSLWantReadError:
                self.seen = stream._recv_count
                return _WANT_READ
            self.sealed = True
            stream._take_output_locked()
            chunks, stream._out = stream._out, []
        self.view = memoryview(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        return self.desc.start(self, task)

    def attempt(self) -> object:
        view = self.view
        assert view is not None
        sock = self.desc.sock
        sent = self.sent
        total = view.nbytes
        try:
            while sent < total:
                sent += sock.send(view[sent:], MSG_NOSIGNAL)
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

    def requeue_unsent(self) -> None:
        """Put what did not leave back at the front of the queue (the
        sending is over: finished, cancelled or failed)."""
        view = self.view
        if view is None or self.sent >= view.nbytes:
            return
        rest = bytes(view[self.sent :])
        stream = self.stream
        with stream._lock:
            if not stream._closed:
                stream._out.insert(0, rest)


# ---------------------------------------------------------------- helpers


def _start_checks(stop_token: StopToken | None) -> None:
    """A stopped token means the operation never starts."""
    token = check_token(stop_token)
    if token is not None and token.stop_requested:
        raise Cancelled()


def _writable(buffer: Any) -> memoryview:
    """A writable one-dimensional byte view of ``buffer`` (``TypeError``)."""
    try:
        view = _view(buffer)
    except TypeError:
        raise TypeError(f"read_some needs a writable buffer, not {type(buffer).__name__}") from None
    if view.readonly:
        raise TypeError("read_some needs a writable buffer")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _plaintext(data: Any, limit: int) -> memoryview:
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


def _consume(chunks: list[Any], count: int) -> None:
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

