"""Buffer arguments: the checks every read and write shares, and the
awaitable that answers an empty buffer at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._descriptor import IOV_MAX, closed_error
from ._ops import Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._descriptor import Descriptor
    from ._tasks import Task

__all__ = ("Immediate", "byte_view", "read_size", "view", "write_size")


def view(obj: Any) -> memoryview:
    """A memoryview of ``obj``: ``obj`` itself when it already is one.

    Never a view derived from the caller's memoryview: on free-threaded
    CPython 3.13, views derived from one memoryview by several threads at
    once can release it under its other users (the managed buffer's export
    count is not atomic, CPython gh-155606), and one buffer is often shared
    by writes running on several threads.

    :raises TypeError: when ``obj`` is not bytes-like.
    :raises ValueError: when it is a released memoryview.
    """
    if type(obj) is memoryview:
        return obj
    return memoryview(obj)


def byte_view(obj: Any) -> memoryview:
    """A one-dimensional unsigned-byte view of ``obj`` (see :func:`view`).

    A caller's memoryview that already has that shape is used as it is.

    :raises TypeError: when ``obj`` is not bytes-like (or not contiguous).
    :raises ValueError: when it is a released memoryview.
    """
    v = view(obj)
    if v.format == "B" and v.ndim == 1 and v.c_contiguous:
        return v
    return v.cast("B")


def read_size(buffer: Any, what: str) -> int:
    """The size of a writable buffer for ``what`` (a method name).

    :raises TypeError: for a non-buffer or a read-only one.
    :raises ValueError: for a released memoryview.
    """
    if type(buffer) is bytearray:
        return len(buffer)
    try:
        v = view(buffer)
    except TypeError:
        raise TypeError(f"{what} needs a writable buffer, not {type(buffer).__name__}") from None
    if v.readonly:
        raise TypeError(f"{what} needs a writable buffer")
    return v.nbytes


def write_size(data: Any, what: str) -> tuple[Any, int, bool]:
    """``(data, size, gather)`` for a bytes-like object or a list of them.

    A list longer than ``IOV_MAX`` is cut to that many buffers (a partial
    write is a valid result); ``gather`` says it goes out with ``sendmsg``.

    :raises TypeError: for data that is not bytes-like.
    :raises ValueError: for a released memoryview.
    """
    kind = type(data)
    if kind is bytes or kind is bytearray:
        return data, len(data), False
    if kind is list or kind is tuple:
        size = 0
        try:
            for item in data:
                size += view(item).nbytes
        except TypeError:
            raise TypeError(f"{what} needs bytes-like objects in the list") from None
        if len(data) > IOV_MAX:
            data = data[:IOV_MAX]
        return data, size, True
    try:
        return data, view(data).nbytes, False
    except TypeError:
        raise TypeError(f"{what} needs a bytes-like object, not {kind.__name__}") from None


class Immediate(Operation):
    """An awaitable with a known result (an empty buffer: 0 at once).

    It still honours a stop token (the driver checks it before start) and
    reports ``EBADF`` if the socket was closed by then.
    """

    __slots__ = ("_desc", "_value")

    def __init__(self, desc: Descriptor, value: object, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self._desc = desc
        self._value = value

    def start(self, task: Task[Any]) -> object:
        if not self._desc.is_open:
            raise closed_error()
        return self._value
