"""TLSStream: TLS over a connected stream socket, on ``ssl.MemoryBIO`` and
``ssl.SSLObject`` (never a blocking ``SSLSocket``).

This module holds the public stream and its operations (handshake, read,
write, shutdown); :mod:`corosio_py._tls_engine` holds the state they share
and the moves of ciphertext to and from the socket (how the lock and the
roles fit together is told there), :mod:`corosio_py._tls_write` the final
step of a write.

Cancellation never loses data
-----------------------------
* A read consumes plaintext only inside one lock-held stretch that cannot be
  cancelled; its only suspensions are the wrapped socket's reads (whose
  ``Cancelled`` consumed nothing: the bytes they do return go into the
  incoming BIO before anything else can happen) and flushes.  A record
  already decrypted is delivered; the cancel lands at the next suspension.
* A write encrypts inside :meth:`SealedWrite.start`, which the task driver
  calls only once the write is certain to start: a write that raises
  ``Cancelled`` encrypted nothing, and one whose records exist completes
  with its count (see :mod:`corosio_py._tls_write`).

The fast paths
--------------
A read whose plaintext is already decryptable takes the stream lock once; a
read that has to wait takes it three times around the socket read, and a
write three times around its system call.  A read skips the ``SSLObject``
call that would only raise ``SSLWantReadError`` (see ``_dry``), and stops
decrypting when nothing more is buffered instead of calling until it does.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Final, cast, final

from ._buffers import read_exactly
from ._buffers import view as _view
from ._cancel import check_token
from ._descriptor import closed_error
from ._errors import Cancelled
from ._handle import DescriptorHandle
from ._task_ops import yield_now
from ._tls_engine import TLSEngine, eof_error
from ._tls_role import RoleWait
from ._tls_write import WANT_READ, SealedWrite, plaintext

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("TLSStream",)

#: Plaintext one ``write_some`` encrypts at most (16 records of 16 KiB).
WRITE_CHUNK: Final = 256 * 1024
#: What a shutdown reads (and drops) at once while waiting for close_notify.
_DISCARD: Final = 64 * 1024


@final
class TLSStream(TLSEngine):
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

    __slots__ = ()

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
        super().__init__(stream, context, bool(server_side), server_hostname)

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
                # (The loop head is shutdown()'s too; the bodies differ.)
                done = False
                error: ssl.SSLError | None = None
                self._dry = False
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
        if type(buffer) is memoryview and buffer.format == "B" and not buffer.readonly:
            view = buffer  # the usual case, without the calls
        else:
            view = _writable(buffer)
        size = view.nbytes
        if stop_token is not None:
            _start_checks(stop_token)
        ssl_object = self._ssl
        incoming = self._incoming
        lock = self._lock
        reading = False  # this call set ``_reading``
        after: Any = None  # what releasing the send role left to do
        held = False  # the receive role, taken in the lock stretch
        try:
            while True:
                lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
                try:
                    if self._closed:
                        raise closed_error()
                    if not reading:
                        if self._reading:
                            raise RuntimeError("another read is already pending on this TLS stream")
                        if not size:
                            return 0
                        self._reading = reading = True
                    got = 0
                    eof = False
                    error: ssl.SSLError | None = None
                    if not self._dry:
                        try:
                            # Everything decryptable now, in one stretch that
                            # no cancel can interrupt (see the module docstring).
                            while True:
                                count = cast(
                                    int, ssl_object.read(size - got, view[got:] if got else view)
                                )
                                if not count:
                                    eof = True
                                    break
                                got += count
                                if got == size:
                                    break
                                if not incoming.pending and not ssl_object.pending():
                                    self._dry = True  # a further call would want input
                                    break
                        except ssl.SSLWantReadError:
                            self._dry = True
                        except ssl.SSLZeroReturnError:
                            eof = True
                        except ssl.SSLError as exc:
                            error = exc
                    outgoing = self._outgoing
                    if outgoing.pending:
                        self._out.append(outgoing.read())
                    seen = self._recv_count
                    flush = bool(self._out) and self._send.try_take_locked()
                    if got or eof or error is not None:
                        # Plaintext (or the outcome) is in hand: no
                        # suspension may come between it and the caller.
                        self._reading = reading = False
                        after = self._release_send_locked() if flush else None
                        if after is None:
                            if got or error is None:
                                return got
                            raise error
                    else:
                        # Take the receive role now if it is free (no new
                        # input can arrive before the read: nobody else reads).
                        held = not flush and not self._raw_eof and self._recv.try_take_locked()
                finally:
                    lock.release()
                if after is not None:  # the outcome is in hand (see above)
                    self._hand_over(after)
                    if got or error is None:
                        return got
                    raise error
                if flush:
                    await self._flush_and_release(stop_token)
                await self._receive(seen, stop_token, held)
        finally:
            if reading:
                lock.acquire()
                try:
                    self._reading = False
                finally:
                    lock.release()

    async def read_exactly(self, n: int, *, stop_token: StopToken | None = None) -> bytes:
        """Read exactly ``n`` decrypted bytes.

        :raises EOFError: when the stream ends first (the bytes read so far
            are lost with the error).
        :raises TypeError, ValueError: for a bad ``n`` or ``stop_token``.
        :raises Cancelled: when cancelled (bytes read so far are lost).
        """
        return await read_exactly(
            lambda got, rest: self.read_some(rest, stop_token=stop_token),
            n,
            stop_token,
            "the TLS stream ended",
        )

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
        payload = plaintext(data, WRITE_CHUNK)
        if stop_token is not None:
            _start_checks(stop_token)
        return await self._write(payload, payload.nbytes, stop_token)

    async def write_all(self, data: Any, *, stop_token: StopToken | None = None) -> int:
        """Encrypt and send all of ``data`` (bytes-like or a list of them);
        return its size.

        :raises TypeError: for data that is not bytes-like, or a bad
            ``stop_token``.
        :raises Cancelled: when cancelled (some bytes may have been sent).
        :raises OSError: as :meth:`write_some`.
        """
        if type(data) is bytes and len(data) <= WRITE_CHUNK:
            view: Any = data  # the usual case: one write, no view
            total = len(data)
        else:
            view = plaintext(data, 1 << 62)
            total = view.nbytes
        if stop_token is not None:
            _start_checks(stop_token)
        if total <= WRITE_CHUNK:
            await self._write(view, total, stop_token)
            return total
        sent = 0
        while sent < total:
            chunk = view[sent : sent + WRITE_CHUNK]
            sent += await self._write(chunk, chunk.nbytes, stop_token)
        return total

    async def _write(self, payload: Any, size: int, stop_token: StopToken | None) -> int:
        """One write of ``payload`` (bytes or a byte view, ``size`` bytes, at
        most :data:`WRITE_CHUNK`): take the send role, then
        :class:`SealedWrite` (after the handshake, if it is not done yet)."""
        lock = self._lock
        role = self._send
        # The same closed-check as SealedWrite.start, inline: per write.
        lock.acquire()  # not ``with``: the hot path (docs/concurrency.md)
        try:
            if self._closed:
                raise closed_error()
            if self._writing:
                raise RuntimeError("another write is already pending on this TLS stream")
            if not size:
                return 0
            self._writing = True
            held = role.try_take_locked()
        finally:
            lock.release()
        op: SealedWrite | None = None
        try:
            desc = self._next._desc
            if desc is None:
                raise closed_error()
            while True:
                if not held:
                    await RoleWait(role, stop_token)
                    held = True
                op = SealedWrite(self, desc, payload, stop_token)
                try:
                    result = await op
                except Cancelled:
                    # cancel()/close() of the stream (a task's cancel never
                    # gets here once the records exist: see SealedWrite).
                    if not op.sealed or self._is_closed():
                        raise
                    return op.count
                except OSError:
                    op.data = None  # the connection failed: nothing to requeue
                    raise
                if result is not WANT_READ:
                    count: int = result
                    return count
                # The handshake (or a renegotiation) needs the peer first:
                # send what it made, then wait for input without the role.
                seen = op.seen
                op = None
                await self._flush_held(stop_token)
                held = False
                self._release_send()
                await self._receive(seen, stop_token)
        finally:
            # The write is over: requeue what it did not send, clear the
            # pending flag, give the send role up, in one lock stretch.
            after: Any = None
            lock.acquire()
            try:
                self._writing = False
                if op is not None:
                    op.unsent_locked()
                if held:
                    if self._out or role.waiters:
                        after = self._release_send_locked()
                    else:
                        role.busy = False  # free, nobody waiting: nothing to hand over
            finally:
                lock.release()
            if after is not None:
                self._hand_over(after)

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
                self._dry = False
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
                    error = eof_error() if self._raw_eof else exc
                seen, flush = self._step_done_locked()
            await self._send_then_raise(flush, error, stop_token)
            if done:
                return
            if let_reader:
                await yield_now()
            elif not again:
                await self._receive(seen, stop_token)

    def __repr__(self) -> str:
        state = "closed" if self._is_closed() else "open"
        side = "server" if self._ssl.server_side else "client"
        return f"<TLSStream {side} {state} over {self._next!r}>"


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
