"""StreamSocket: the byte-stream surface TCP and local stream sockets share
(reads, writes, shutdown, read_exactly/write_all)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final

from ._buffers import Immediate, byte_view, read_exactly, read_size, write_size
from ._cancel import check_token
from ._descriptor import closed_error
from ._io_ops import FailedOp, ReadOp, WriteAllOp, WriteOp
from ._sockbase import SocketBase

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._ops import Operation

__all__ = ("StreamSocket",)

_SHUTDOWN_KINDS: Final = (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR)


class StreamSocket(SocketBase):
    """A connected byte stream on an :class:`IOContext`.

    One read and one write may be pending at once; a second concurrent read
    (or write/connect) raises ``RuntimeError`` at its ``await``.  Every
    awaitable method takes ``stop_token=`` to cancel just that operation;
    a token already stopped means the operation never starts.  Cancelled
    operations raise :class:`corosio_py.Cancelled`.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the socket.
    """

    __slots__ = ()

    def shutdown(self, how: int) -> None:
        """Shut down ``socket.SHUT_RD``, ``SHUT_WR`` or ``SHUT_RDWR``.

        A no-op on a closed or never-opened socket, as upstream's is.
        A parked read sees EOF after ``SHUT_RD``.

        :raises TypeError: for a ``how`` that is not an int.
        :raises ValueError: for another ``how``.
        :raises OSError: when the OS refuses (``ENOTCONN``).
        """
        if isinstance(how, bool) or not isinstance(how, int):
            raise TypeError(
                f"how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR, not {type(how).__name__}"
            )
        if how not in _SHUTDOWN_KINDS:
            raise ValueError("how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR")
        desc = self._desc
        if desc is not None:
            desc.shutdown(how)

    def read_some(self, buffer: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: read into ``buffer``; returns the byte count, 0 at EOF.

        ``buffer`` is a writable bytes-like object (``bytearray``,
        ``memoryview``); an empty one gives 0 at once.

        :raises TypeError: for a non-writable buffer, or a ``stop_token``
            that is not a :class:`StopToken` (at the await).
        :raises ValueError: for a released memoryview (at the await).
        :raises OSError: ``EBADF`` when closed; ``ConnectionResetError``, ...
        :raises RuntimeError: when another read is pending.
        :raises Cancelled: when cancelled; no data is consumed then.
        """
        desc = self._desc
        if type(buffer) is bytearray:
            size = len(buffer)
        else:
            try:
                size = read_size(buffer, "read_some")
            except (TypeError, ValueError) as error:
                return FailedOp(error, stop_token)
        if desc is None:
            return FailedOp(closed_error(), stop_token)
        if not size:
            return Immediate(desc, 0, stop_token)
        return ReadOp(desc, buffer, size, stop_token)

    def write_some(self, data: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: write some of ``data``; returns the byte count.

        ``data`` is a bytes-like object, or a list of them sent with one
        gathered system call (``sendmsg``).  Empty data gives 0 at once.
        Never raises SIGPIPE.

        :raises TypeError: for data that is not bytes-like, or a
            ``stop_token`` that is not a :class:`StopToken` (at the await).
        :raises ValueError: for a released memoryview (at the await).
        :raises BrokenPipeError, ConnectionResetError: when the peer is gone.
        :raises OSError: ``EBADF`` when closed.
        :raises RuntimeError: when another write or a connect is pending.
        :raises Cancelled: when cancelled.
        """
        # The same tail as read_some's, written out: both are the hot path.
        desc = self._desc
        try:
            data, size, gather = write_size(data, "write_some")
        except (TypeError, ValueError) as error:
            return FailedOp(error, stop_token)
        if desc is None:
            return FailedOp(closed_error(), stop_token)
        if not size:
            return Immediate(desc, 0, stop_token)
        return WriteOp(desc, data, gather, stop_token)

    async def read_exactly(self, n: int, *, stop_token: StopToken | None = None) -> bytes:
        """Read exactly ``n`` bytes.

        :raises EOFError: when the peer closes first (the bytes read so far
            are lost with the error).
        :raises TypeError, ValueError: for a bad ``n`` or ``stop_token``.
        :raises Cancelled: when cancelled (bytes read so far are lost).
        :raises OSError: as :meth:`read_some`.
        """
        return await read_exactly(
            lambda got, rest: self.read_some(rest, stop_token=stop_token),
            n,
            stop_token,
            "the peer closed the connection",
        )

    def write_all(self, data: Any, *, stop_token: StopToken | None = None) -> Awaitable[int]:
        """Awaitable: write all of ``data`` (bytes-like or a list of them);
        returns its size.

        :raises TypeError: for data that is not bytes-like, or a bad
            ``stop_token`` (at the await).
        :raises Cancelled: when cancelled (some bytes may have been sent).
        :raises OSError: as :meth:`write_some`.
        """
        if type(data) is list or type(data) is tuple:
            return self._write_all_list(data, stop_token)
        desc = self._desc
        try:
            view = byte_view(data)
        except TypeError:
            error = TypeError(f"write_all needs a bytes-like object, not {type(data).__name__}")
            return FailedOp(error, stop_token)
        if desc is None:
            return FailedOp(closed_error(), stop_token)
        if not view.nbytes:
            # Still a checkpoint: EBADF and stop tokens apply to empty writes.
            return Immediate(desc, 0, stop_token)
        return WriteAllOp(desc, data, view, stop_token)

    async def _write_all_list(self, data: Any, stop_token: StopToken | None) -> int:
        """``write_all`` of a list: gathered ``write_some`` calls until the
        last buffer is gone."""
        check_token(stop_token)
        try:
            views = [byte_view(item) for item in data]
        except TypeError:
            raise TypeError("write_all needs bytes-like objects in the list") from None
        views = [v for v in views if v.nbytes]
        total = sum(v.nbytes for v in views)
        while views:
            count: int = await self.write_some(views, stop_token=stop_token)
            while count:
                head = views[0]
                if count >= head.nbytes:
                    count -= head.nbytes
                    del views[0]
                else:
                    views[0] = head[count:]
                    count = 0
        return total
