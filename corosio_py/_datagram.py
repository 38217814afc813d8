"""DatagramSocket: the message surface UDP and local datagram sockets share.

A datagram socket is not a stream: every receive takes exactly one
datagram (a datagram larger than the buffer is truncated to it, and the
count says how much was stored), every send is one datagram (an empty one
is a valid, empty datagram), and there is no ``read_exactly``.

The receive and send operations park in the descriptor's read and write
slots like the stream operations do.  A short datagram says nothing about
what else is queued, so a receive skips its first system call only after a
poll found the queue empty (:meth:`Descriptor.input_empty`).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ._buffers import read_size, write_size
from ._descriptor import MSG_NOSIGNAL, WOULD_BLOCK, Descriptor, DescriptorOp, closed_error
from ._io_ops import FailedOp, WriteOp
from ._sockbase import SocketBase

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._cancel import StopToken
    from ._ops import Operation

__all__ = ("DatagramSocket",)


class _ReceiveOp(DescriptorOp):
    """What the two datagram receives share: when the first attempt may be
    skipped (see "When a read may park without trying its system call" in
    :mod:`corosio_py._descriptor`).

    The operations here write their ``__init__`` out, as every I/O
    operation does (``_io_ops`` says why: one is built per call)."""

    __slots__ = ()

    def may_skip_attempt(self) -> bool:
        desc = self.desc
        return desc.drained and not desc.reads.ready and not desc.hup

    def note_received(self) -> None:
        """After a datagram was taken (``desc.lock`` held): a receive that
        had parked (``task`` set) was completed by a readiness report, and
        an empty queue now lets the next receive park without trying."""
        desc = self.desc
        if self.task is not None and desc.edge:
            desc.drained = desc.input_empty()


class _RecvFromOp(_ReceiveOp):
    """``recv_from``: one datagram into the buffer, with its sender."""

    __slots__ = ("buf", "decode")

    def __init__(
        self,
        desc: Descriptor,
        buf: Any,
        decode: Callable[[Any], Any],
        stop_token: StopToken | None,
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.buf = buf
        self.decode = decode

    def attempt(self) -> object:
        try:
            n, address = self.desc.sock.recvfrom_into(self.buf)
        except BlockingIOError:
            return WOULD_BLOCK
        self.note_received()
        return n, self.decode(address)


class _RecvOp(_ReceiveOp):
    """``recv`` on a connected socket: one datagram into the buffer."""

    __slots__ = ("buf",)

    def __init__(self, desc: Descriptor, buf: Any, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.buf = buf

    def attempt(self) -> object:
        try:
            n = self.desc.sock.recv_into(self.buf)
        except BlockingIOError:
            return WOULD_BLOCK
        self.note_received()
        return n


class _SendToOp(DescriptorOp):
    """``send_to``: one datagram to an explicit peer."""

    __slots__ = ("data", "sockaddr")

    write_direction = True

    def __init__(
        self, desc: Descriptor, data: Any, sockaddr: Any, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.data = data
        self.sockaddr = sockaddr

    def attempt(self) -> object:
        try:
            return self.desc.sock.sendto(self.data, MSG_NOSIGNAL, self.sockaddr)
        except BlockingIOError:
            return WOULD_BLOCK


def _not_connected() -> OSError:
    return OSError(errno.ENOTCONN, "the datagram socket is not connected (use send_to/recv_from)")


class DatagramSocket(SocketBase):
    """A datagram socket on an :class:`IOContext`.

    One receive and one send may be pending at once; a second concurrent one
    raises ``RuntimeError`` at its ``await``.  Every awaitable takes
    ``stop_token=``.  A datagram received before a cancel lands is
    delivered; the cancel lands at the task's next suspension.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    def _receiving(self, buffer: Any, what: str, *, connected: bool) -> Descriptor:
        """The descriptor a receive into ``buffer`` uses (checks the buffer,
        that the socket is open, and when asked that it is connected)."""
        if type(buffer) is not bytearray:
            read_size(buffer, what)
        desc = self._desc
        if desc is None:
            raise closed_error()
        if connected and desc.remote is None:  # unlocked hint: the OS has the last word
            raise _not_connected()
        return desc

    def local_endpoint(self) -> Any:
        """The local endpoint, as the OS reports it now (a datagram socket is
        bound implicitly by its first send).

        :raises OSError: ``EBADF`` when closed.
        """
        sockaddr = self._require_desc().call(lambda sock: sock.getsockname())
        return self._addressing.from_sockaddr(sockaddr)

    def send_to(
        self, data: Any, endpoint: Any, *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: send ``data`` as one datagram to ``endpoint``; returns
        the byte count.  Opens a socket of the endpoint's family if needed.

        :raises TypeError, ValueError: for bad data, endpoint or
            ``stop_token`` (at the await).
        :raises OSError: ``EBADF`` when closed; ``EMSGSIZE`` for a datagram
            too large; what the OS reports.
        :raises RuntimeError: when another send is pending.
        :raises Cancelled: when cancelled (nothing was sent).
        """
        try:
            if type(data) is not bytes:
                data, _, gather = write_size(data, "send_to")
                if gather:
                    raise TypeError("send_to needs one bytes-like object, not a list")
            addressing = self._addressing
            desc = self._desc
            # ``fd`` read unlocked: a hint, the start re-checks it under the lock.
            if desc is None or desc.fd < 0:
                desc = self._open(addressing.family(addressing.check(endpoint)))
            return _SendToOp(desc, data, addressing.sockaddr_of(endpoint), stop_token)
        except (TypeError, ValueError, OSError, RuntimeError) as error:
            return FailedOp(error, stop_token)

    def recv_from(self, buffer: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: receive one datagram into ``buffer``; returns
        ``(count, sender)``.

        A datagram larger than ``buffer`` is truncated to it: ``count`` is
        how much was stored, the rest is discarded.

        :raises TypeError, ValueError: for a non-writable buffer or a bad
            ``stop_token`` (at the await).
        :raises OSError: ``EBADF`` when closed; ``ConnectionRefusedError``
            for an ICMP error reported to a connected socket.
        :raises RuntimeError: when another receive is pending.
        :raises Cancelled: when cancelled (no datagram was taken).
        """
        try:
            desc = self._receiving(buffer, "recv_from", connected=False)
        except (TypeError, ValueError, OSError) as error:
            return FailedOp(error, stop_token)
        return _RecvFromOp(desc, buffer, self._addressing.from_sockaddr, stop_token)

    def send(self, data: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: send ``data`` as one datagram to the connected peer.

        :raises OSError: ``ENOTCONN`` when not connected, ``EBADF`` when
            closed; ``ConnectionRefusedError`` for an earlier ICMP error.
        :raises TypeError, ValueError: for bad data or ``stop_token``.
        :raises RuntimeError: when another send is pending.
        :raises Cancelled: when cancelled (nothing was sent).
        """
        desc = self._desc
        try:
            data, _, gather = write_size(data, "send")
            if desc is None:
                raise closed_error()
            if desc.remote is None:  # unlocked hint: the OS has the last word
                raise _not_connected()
        except (TypeError, ValueError, OSError) as error:
            return FailedOp(error, stop_token)
        return WriteOp(desc, data, gather, stop_token)

    def recv(self, buffer: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: receive one datagram from the connected peer into
        ``buffer``; returns the count stored (truncated to the buffer).

        :raises OSError: ``ENOTCONN`` when not connected, ``EBADF`` when
            closed; ``ConnectionRefusedError`` for an ICMP error.
        :raises TypeError, ValueError: for a bad buffer or ``stop_token``.
        :raises RuntimeError: when another receive is pending.
        :raises Cancelled: when cancelled (no datagram was taken).
        """
        try:
            desc = self._receiving(buffer, "recv", connected=True)
        except (TypeError, ValueError, OSError) as error:
            return FailedOp(error, stop_token)
        return _RecvOp(desc, buffer, stop_token)
