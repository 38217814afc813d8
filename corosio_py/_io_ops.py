"""The stream operations that park on a :class:`~corosio_py._descriptor.Descriptor`.

``read_some`` (:class:`ReadOp`), ``write_some`` (:class:`WriteOp`),
``connect`` (:class:`ConnectOp`) and ``accept`` (:class:`AcceptOp`): each
supplies the one system call (:meth:`DescriptorOp.attempt`) that the
descriptor runs under its lock, speculatively and again on readiness.
:class:`FailedOp` carries an argument error to the ``await``.  The state
machine that parks, claims and completes them is in
:mod:`corosio_py._descriptor`.

Every operation's ``__init__`` sets all of its fields itself (``stop_token``,
``desc``, ``task``, then its own) instead of calling a shared base
initialiser: one is built per I/O call, and a ``super().__init__`` call
would cost that much on every one.  The siblings follow the same rule:
``_local``'s fd-passing ops, ``_datagram``'s, ``_wait._WaitOp``,
``_fileio.FileOp``, ``_timer._TimerWait`` and ``_tls_role.RoleWait``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._descriptor import (
    MSG_NOSIGNAL,
    WOULD_BLOCK,
    Descriptor,
    DescriptorOp,
    os_error,
    socket_error,
)
from ._endpoint import from_sockaddr
from ._ops import Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("AcceptOp", "ConnectOp", "FailedOp", "ReadOp", "WriteOp")

#: Unix-domain sockets (absent on some non-POSIX builds).
_AF_UNIX: Final = getattr(socket, "AF_UNIX", -1)


class ReadOp(DescriptorOp):
    """``read_some``: ``recv_into`` the caller's buffer; 0 means EOF."""

    __slots__ = ("buf", "size")

    def __init__(
        self, desc: Descriptor, buf: Any, size: int, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.buf = buf
        self.size = size

    def attempt(self) -> object:
        desc = self.desc
        try:
            n = desc.sock.recv_into(self.buf)
        except BlockingIOError:
            desc.drained = False
            return WOULD_BLOCK
        desc.drained = 0 < n < self.size  # see "When a read may park ..."
        return n

    def may_skip_attempt(self) -> bool:
        desc = self.desc
        return desc.drained and desc.edge and not desc.reads.ready and not desc.hup


class WriteOp(DescriptorOp):
    """``write_some``: one ``send``, or one gathered ``sendmsg`` for a list."""

    __slots__ = ("data", "gather")

    write_direction = True

    def __init__(
        self, desc: Descriptor, data: Any, gather: bool, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.data = data
        self.gather = gather

    def attempt(self) -> object:
        try:
            # A send that returns 0 is a successful 0-byte write.
            if self.gather:
                return self.desc.sock.sendmsg(self.data, (), MSG_NOSIGNAL)
            return self.desc.sock.send(self.data, MSG_NOSIGNAL)
        except BlockingIOError:
            return WOULD_BLOCK


class WriteAllOp(DescriptorOp):
    """``write_all`` of one buffer: one operation that sends until nothing
    is left, parked in the write slot whenever the socket buffer is full.

    Each attempt sends what remains (the descriptor lock is held, so the
    progress in ``sent`` has one writer at a time) and reports
    :data:`WOULD_BLOCK` until the last byte is gone.  A cancel or an error
    ends it with some bytes sent, as ``write_all`` documents.  One
    operation instead of a coroutine looping over ``write_some`` saves a
    frame and a task step per call: an HTTP reply is one ``write_all``.
    """

    __slots__ = ("data", "view", "sent")

    write_direction = True

    def __init__(
        self, desc: Descriptor, data: Any, view: memoryview, stop_token: StopToken | None
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.data = data
        self.view = view  # our own view of ``data``: slices never touch the caller's
        self.sent = 0

    def attempt(self) -> object:
        view = self.view
        total = view.nbytes
        sent = self.sent
        send = self.desc.sock.send
        try:
            # The first send takes ``data`` itself (no slice made).
            sent += send(self.data if not sent else view[sent:], MSG_NOSIGNAL)
            while sent < total:
                sent += send(view[sent:], MSG_NOSIGNAL)
        except BlockingIOError:
            return WOULD_BLOCK
        finally:
            self.sent = sent
        return total


class ConnectOp(DescriptorOp):
    """``connect``: a non-blocking connect completed through ``SO_ERROR``.

    The first attempt calls ``connect``; later attempts (a readiness report
    or a cached ``writes.ready``) check whether it finished.  The check must
    not trust writability alone: the edge reported when the fd was
    registered (an unconnected socket is "writable" and "hung up") may be
    delivered after the connect started, so a finished connect is one with
    a non-zero ``SO_ERROR`` (failed) or a peer name (succeeded).
    """

    __slots__ = ("sockaddr", "endpoint", "initiated", "decode")

    write_direction = True

    def __init__(
        self,
        desc: Descriptor,
        endpoint: Any,
        sockaddr: Any,
        stop_token: StopToken | None,
        decode: Callable[[Any], Any] = from_sockaddr,
    ) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.endpoint = endpoint
        self.sockaddr = sockaddr
        self.initiated = False
        self.decode = decode

    def attempt(self) -> object:
        desc = self.desc
        sock = desc.sock
        if not self.initiated:
            self.initiated = True
            code = sock.connect_ex(self.sockaddr)
            if code == errno.EAGAIN and sock.family == _AF_UNIX:
                # A local listener with a full backlog: the connect did not
                # start, and no readiness edge will say when to retry it.
                raise BlockingIOError(errno.EAGAIN, "the local listener's backlog is full")
            # EINTR: the connect goes on asynchronously (CPython issue 23618).
            if code in (errno.EINPROGRESS, errno.EINTR, errno.EWOULDBLOCK):
                return WOULD_BLOCK
            if code:
                raise os_error(code)
        else:
            code = socket_error(sock)
            if code:
                raise os_error(code)
            try:
                sock.getpeername()
            except OSError as exc:
                if exc.errno in (errno.ENOTCONN, errno.EINVAL):
                    return WOULD_BLOCK  # still connecting
                raise
        # Connected: cache both endpoints, under desc.lock.
        desc.local = self.decode(sock.getsockname())
        desc.remote = self.endpoint
        return None


class AcceptOp(DescriptorOp):
    """``accept``: the result is the raw ``(socket, address)`` pair.

    The caller (``TCPAcceptor.accept``) turns it into a registered
    ``TCPSocket`` after resuming; if the context is closed before that, the
    driver calls :meth:`discard`, which closes the accepted socket.
    """

    __slots__ = ()

    def attempt(self) -> object:
        while True:
            try:
                return self.desc.sock.accept()
            except BlockingIOError:
                return WOULD_BLOCK
            except ConnectionAbortedError:
                continue  # the peer gave up before we accepted: try the next one

    def discard(self, value: object) -> None:
        if isinstance(value, tuple):
            conn = value[0]
            if isinstance(conn, socket.socket):
                conn.close()


class FailedOp(Operation):
    """An awaitable that raises ``error`` at the ``await``.

    Coroutine methods report bad arguments at the ``await``, not the call
    (the API contract, conventions); this carries the error there.
    """

    __slots__ = ("error",)

    def __init__(self, error: BaseException, stop_token: StopToken | None = None) -> None:
        self.stop_token = stop_token
        self.error = error

    def start(self, task: Task[Any]) -> object:
        raise self.error
