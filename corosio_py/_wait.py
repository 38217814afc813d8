"""Readiness waits: ``await sock.wait(WaitType.READ)`` without reading.

A wait is an operation like any other on the descriptor: it tries first (a
zero-timeout ``poll`` of the fd), parks in the read slot (``READ``,
``ERROR``) or the write slot (``WRITE``) when the fd is not ready, and the
reactor's readiness report retries the probe.  Probing instead of trusting a
cached edge matters: an edge left behind by data that a read already drained
must not complete a wait on an empty socket.

``ERROR`` waits park in the read slot because every backend reports a socket
error as readability too.  poll and select do not watch such an fd for
reading (unread data would wake every pass) but for errors only
(``Descriptor.wants_error``; select reports it every
``ERROR_POLL_INTERVAL``, poll when POLLERR/POLLHUP arrives).  A wait never consumes the pending
error (``SO_ERROR``): the operation after it reports it.
"""

from __future__ import annotations

import enum
import select
from typing import TYPE_CHECKING, Final, final

from ._descriptor import WOULD_BLOCK, Descriptor, DescriptorOp

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("WaitType", "wait_op")


@final
class WaitType(enum.Enum):
    """What :meth:`wait` waits for on a socket or acceptor."""

    #: Readable: data, a datagram, a connection to accept, EOF or an error.
    READ = "read"
    #: Writable: a non-blocking write (or a connect's completion) can proceed.
    WRITE = "write"
    #: An error or hang-up condition is pending on the descriptor.
    ERROR = "error"


_HAS_POLL: Final = hasattr(select, "poll")
_POLLIN: Final = getattr(select, "POLLIN", 1)
_POLLOUT: Final = getattr(select, "POLLOUT", 4)
_POLLERR: Final = getattr(select, "POLLERR", 8)
_POLLHUP: Final = getattr(select, "POLLHUP", 16)
#: The poll events that satisfy each kind (an error or hang-up satisfies
#: every kind: the next operation will not block, it fails or sees EOF).
_SATISFIED: Final = {
    WaitType.READ: _POLLIN | _POLLERR | _POLLHUP,
    WaitType.WRITE: _POLLOUT | _POLLERR | _POLLHUP,
    WaitType.ERROR: _POLLERR | _POLLHUP,
}
_REQUESTED: Final = {WaitType.READ: _POLLIN, WaitType.WRITE: _POLLOUT, WaitType.ERROR: 0}


def _ready(fd: int, kind: WaitType) -> bool:
    """Whether ``fd`` satisfies ``kind`` now (a zero-timeout probe)."""
    if _HAS_POLL:
        poller = select.poll()
        poller.register(fd, _REQUESTED[kind])
        events = poller.poll(0)
        return bool(events) and bool(events[0][1] & _SATISFIED[kind])
    # pragma: no cover - every POSIX platform has poll
    r, w, x = select.select(
        [fd] if kind is WaitType.READ else [],
        [fd] if kind is WaitType.WRITE else [],
        [fd],
        0,
    )
    return bool(r or w or x)


class _WaitOp(DescriptorOp):
    """A readiness wait parked in the read slot (``READ``, ``ERROR``);
    ``__init__`` written out, as every I/O operation's (see ``_io_ops``)."""

    __slots__ = ("kind",)

    takes_error = False

    def __init__(self, desc: Descriptor, kind: WaitType, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self.desc = desc
        self.task = None
        self.kind = kind

    def attempt(self) -> object:
        desc = self.desc
        if not _ready(desc.fd, self.kind):
            return WOULD_BLOCK
        # Data is waiting: the next read must try its system call rather
        # than trust an old "the queue was empty" note.
        desc.drained = False
        return None


class _WriteWaitOp(_WaitOp):
    """A writability wait, parked in the write slot."""

    __slots__ = ()

    write_direction = True


class _ErrorWaitOp(_WaitOp):
    """An error wait, parked in the read slot but watched for errors only."""

    __slots__ = ()

    errors_only = True


def wait_op(desc: Descriptor, kind: object, stop_token: StopToken | None) -> DescriptorOp:
    """The operation for ``await obj.wait(kind)`` on ``desc``.

    :raises TypeError: when ``kind`` is not a :class:`WaitType`.
    """
    if not isinstance(kind, WaitType):
        raise TypeError(f"kind must be a corosio_py.WaitType, not {type(kind).__name__}")
    if kind is WaitType.WRITE:
        return _WriteWaitOp(desc, kind, stop_token)
    if kind is WaitType.ERROR:
        return _ErrorWaitOp(desc, kind, stop_token)
    return _WaitOp(desc, kind, stop_token)
