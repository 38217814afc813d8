"""What TCPSocket and TCPAcceptor share: a context and an optional descriptor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import IOContext

if TYPE_CHECKING:
    from ._descriptor import Descriptor


class DescriptorHandle:
    """Base of the public objects that own one descriptor.

    ``_desc`` is replaced only by the owner's ``open()``; other threads
    (``cancel``, ``close``) read it once and act on that descriptor, whose
    own lock makes the operation safe from any thread.
    """

    __slots__ = ("__weakref__", "_ctx", "_desc")

    def __init__(self, ctx: IOContext) -> None:
        if not isinstance(ctx, IOContext):
            raise TypeError(f"{type(self).__name__} needs an IOContext, got {type(ctx).__name__}")
        self._ctx = ctx
        self._desc: Descriptor | None = None

    @property
    def context(self) -> IOContext:
        """The context whose reactor serves this object."""
        return self._ctx

    @property
    def is_open(self) -> bool:
        """Whether it has an open fd."""
        desc = self._desc
        return desc is not None and desc.is_open

    def fileno(self) -> int:
        """The fd, or -1 when closed."""
        desc = self._desc
        return -1 if desc is None else desc.fileno()

    def cancel(self) -> None:
        """Complete every pending operation with ``Cancelled``.  Any thread.

        An operation whose initiation started before ``cancel()`` returned is
        cancelled even if it had not parked yet.  No-op when closed.
        """
        desc = self._desc
        if desc is not None:
            desc.cancel_all()

    def close(self) -> None:
        """Close; pending operations complete with ``Cancelled``.

        Idempotent; any thread.
        """
        desc = self._desc
        if desc is not None:
            desc.close()
