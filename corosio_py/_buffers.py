"""Buffer arguments: the checks every read and write shares (sockets, TLS
streams, files), the awaitable that answers an empty buffer at once, and the
``read_exactly`` loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._cancel import check_token
from ._descriptor import IOV_MAX, closed_error
from ._ops import Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = (
    "Immediate",
    "byte_view",
    "data_size",
    "read_exactly",
    "read_size",
    "view",
    "write_size",
)


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


def data_size(data: Any, what: str) -> int:
    """The size of one bytes-like ``data`` for ``what`` (a method name).

    :raises TypeError: for data that is not bytes-like.
    :raises ValueError: for a released memoryview.
    """
    kind = type(data)
    if kind is bytes or kind is bytearray:
        return len(data)
    try:
        return view(data).nbytes
    except TypeError:
        raise TypeError(f"{what} needs a bytes-like object, not {kind.__name__}") from None


def write_size(data: Any, what: str) -> tuple[Any, int, bool]:
    """``(data, size, gather)`` for a bytes-like object or a list of them.

    A list longer than ``IOV_MAX`` is cut to that many buffers (a partial
    write is a valid result); ``gather`` says it goes out with ``sendmsg``.

    :raises TypeError: for data that is not bytes-like.
    :raises ValueError: for a released memoryview.
    """
    # data_size's checks, inline: this runs on every write_some.
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


class _Openable(Protocol):
    @property
    def is_open(self) -> bool: ...


class Immediate(Operation):
    """An awaitable with a known result (an empty buffer: 0 at once).

    It still honours a stop token (the driver checks it before start) and
    reports ``EBADF`` if the descriptor (or file: ``_fileio.ReadyOp``) was
    closed by then.
    """

    __slots__ = ("_target", "_value")

    def __init__(self, target: _Openable, value: object, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self._target = target
        self._value = value

    def start(self, task: Task[Any]) -> object:
        if not self._target.is_open:
            raise self._closed()
        return self._value

    def _closed(self) -> OSError:
        """The error once the target is closed."""
        return closed_error()


#: ``(bytes read so far, view of the rest) -> the awaitable of one read``.
ReadStep = Callable[[int, memoryview], Awaitable[int]]


async def read_exactly(
    read: ReadStep, n: object, stop_token: StopToken | None, ended: str
) -> bytes:
    """Await ``read(done, view)`` until ``n`` bytes are in.

    :raises EOFError: ``"{ended} after {done} of {n} bytes"`` when a read
        gives 0 first.
    :raises TypeError, ValueError: for a bad ``n`` or ``stop_token``.
    """
    check_token(stop_token)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError("n must be >= 0")
    buf = bytearray(n)
    rest = memoryview(buf)
    got = 0
    while got < n:
        count = await read(got, rest[got:])
        if not count:
            raise EOFError(f"{ended} after {got} of {n} bytes")
        got += count
    rest.release()
    return bytes(buf)
