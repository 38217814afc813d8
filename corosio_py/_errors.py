"""Exceptions of corosio_py."""

from __future__ import annotations


class Cancelled(BaseException):
    """A pending operation was cancelled.

    Raised at the ``await`` of an operation completed by ``cancel()``,
    ``close()``, ``Task.cancel()``, a stop token or a ``timeout``.  It derives
    from ``BaseException`` (like ``asyncio.CancelledError``) so that
    ``except Exception`` does not swallow it.
    """
