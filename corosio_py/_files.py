"""StreamFile and RandomAccessFile: files whose reads and writes are awaitable.

Each read or write runs on a helper thread and resumes the task with its
result (:mod:`corosio_py._fileio` explains how, and why cancellation never
loses data).  On Linux a read first tries ``preadv2(RWF_NOWAIT)`` on the
initiating thread, which returns what the page cache holds and never blocks
(``EAGAIN`` sends the read to a helper thread), as a socket read tries
``recv`` before it parks.  The metadata calls (``seek``, ``size``, ``resize``) and the
syncs are plain methods, as upstream's are: they run on the calling thread.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

from ._buffers import byte_view as _byte_view
from ._buffers import data_size, read_exactly, read_size
from ._cancel import check_token
from ._context import IOContext
from ._fileio import ANY, READ, WRITE, FileOp, OpenFile, ReadyOp, closed_file
from ._io_ops import FailedOp

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._ops import Operation

__all__ = ("RandomAccessFile", "StreamFile")

#: open() modes (binary always; a ``"b"`` may be added) -> (flags, readable, writable).
_MODES: Final = {
    "r": (os.O_RDONLY, True, False),
    "w": (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False, True),
    "a": (os.O_WRONLY | os.O_CREAT | os.O_APPEND, False, True),
    "r+": (os.O_RDWR, True, True),
    "w+": (os.O_RDWR | os.O_CREAT | os.O_TRUNC, True, True),
    "x": (os.O_WRONLY | os.O_CREAT | os.O_EXCL, False, True),
}
_WHENCES: Final = frozenset(
    value
    for value in (
        os.SEEK_SET,
        os.SEEK_CUR,
        os.SEEK_END,
        getattr(os, "SEEK_DATA", None),
        getattr(os, "SEEK_HOLE", None),
    )
    if value is not None
)
#: The largest file offset or size (an off_t).
_OFF_MAX: Final = 2**63 - 1
#: fdatasync where the platform has it (not macOS), else fsync.
_fdatasync: Final = getattr(os, "fdatasync", os.fsync)


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _check_offset(value: object, name: str = "offset") -> int:
    """A file offset or size: ``TypeError`` for a non-int, ``ValueError``
    outside ``0..2**63-1``."""
    offset = _check_int(value, name)
    if not 0 <= offset <= _OFF_MAX:
        raise ValueError(f"{name} must be in 0..{_OFF_MAX}, not {offset}")
    return offset


# The system calls, run on a helper thread with the fd held open.


def _read(fd: int, buffer: Any) -> int:
    return os.readv(fd, (buffer,))


def _write(fd: int, data: Any) -> int:
    return os.write(fd, data)


if hasattr(os, "preadv"):

    def _read_at(fd: int, buffer: Any, offset: int) -> int:
        return os.preadv(fd, (buffer,), offset)

else:  # pragma: no cover - macOS before 11

    def _read_at(fd: int, buffer: Any, offset: int) -> int:
        view = _byte_view(buffer)
        data = os.pread(fd, view.nbytes, offset)
        view[: len(data)] = data
        return len(data)


def _write_at(fd: int, data: Any, offset: int) -> int:
    return os.pwrite(fd, data, offset)


# The reads' first attempts on the initiating thread: RWF_NOWAIT reads only
# what the page cache holds (``EAGAIN`` otherwise), so they never block
# (Linux 4.14+).  Offset -1 is "the current position, advanced" (preadv2).
_RWF_NOWAIT: Final[int | None] = getattr(os, "RWF_NOWAIT", None)
_read_nowait: Callable[..., int] | None = None
_read_at_nowait: Callable[..., int] | None = None
if _RWF_NOWAIT is not None and hasattr(os, "preadv"):
    _NOWAIT: Final = _RWF_NOWAIT

    def _read_nowait(fd: int, buffer: Any) -> int:
        return os.preadv(fd, (buffer,), -1, _NOWAIT)

    def _read_at_nowait(fd: int, buffer: Any, offset: int) -> int:
        return os.preadv(fd, (buffer,), offset, _NOWAIT)


class _FileHandle:
    """What both file kinds share: the context, the open file, the
    metadata calls.  ``_file`` is replaced only by the owner's ``open()``;
    other threads (``cancel``, ``close``) read it once and act on that file,
    whose own lock makes the call safe from any thread.

    ``is_open``, ``fileno``, ``cancel`` and ``close`` read as the sockets'
    (``_handle.DescriptorHandle``) do, over an ``OpenFile`` instead of a
    ``Descriptor``: the socket base's options, waits and ``bind`` do not
    apply to a file, so it is not shared."""

    __slots__ = ("__weakref__", "_ctx", "_file")

    def __init__(self, ctx: IOContext) -> None:
        """Create a closed file on ``ctx`` (see :meth:`open`).

        :raises TypeError: when ``ctx`` is not an :class:`IOContext`.
        """
        if not isinstance(ctx, IOContext):
            raise TypeError(f"{type(self).__name__} needs an IOContext, got {type(ctx).__name__}")
        self._ctx = ctx
        self._file: OpenFile | None = None

    @property
    def context(self) -> IOContext:
        """The context whose tasks the file's operations resume."""
        return self._ctx

    def open(
        self, path: str | bytes | os.PathLike[str] | os.PathLike[bytes], mode: str = "r"
    ) -> None:
        """Open ``path`` (closing the file open before, if any).

        ``mode`` is ``"r"`` (read), ``"w"`` (write, created or truncated),
        ``"a"`` (append, created if needed), ``"r+"`` (read and write),
        ``"w+"`` (read and write, created or truncated) or ``"x"`` (write,
        created; it must not exist); files are always binary, and a ``"b"``
        in the mode is accepted.  New files get mode 0o666 less the umask;
        the fd is close-on-exec.

        :raises TypeError: for a path that is not str, bytes or os.PathLike,
            or a mode that is not a str.
        :raises ValueError: for another mode.
        :raises OSError: when the OS refuses (``FileNotFoundError``,
            ``FileExistsError``, ``PermissionError``, ``IsADirectoryError``).
        :raises RuntimeError: when the context is closed.
        """
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, not {type(mode).__name__}")
        try:
            flags, readable, writable = _MODES[mode.replace("b", "", 1)]
        except KeyError:
            raise ValueError(
                f"mode must be one of 'r', 'w', 'a', 'r+', 'w+', 'x', not {mode!r}"
            ) from None
        name = os.fspath(path)  # TypeError for anything else
        if self._ctx._sched.closed:
            raise RuntimeError("the IOContext is closed")
        self.close()
        fd = os.open(name, flags, 0o666)  # non-inheritable (PEP 446)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
            file = OpenFile(self._ctx._sched, fd, readable, writable)
            # Tracked so that IOContext.close() closes it.
            self._ctx._track(file)
        except BaseException:
            os.close(fd)
            raise
        self._file = file

    @property
    def is_open(self) -> bool:
        """Whether a file is open."""
        file = self._file
        return file is not None and file.is_open

    def fileno(self) -> int:
        """The fd, or -1 when closed."""
        file = self._file
        return -1 if file is None else file.fileno()

    def cancel(self) -> None:
        """Complete every pending operation that has not started with ``Cancelled``.

        Any thread.  An operation whose system call already runs on a helper
        thread cannot be interrupted: it completes with its result (nothing
        is lost), and the task sees the cancellation at its next suspension
        if it was cancelled.  No-op when closed.
        """
        file = self._file
        if file is not None:
            file.cancel_all()

    def close(self) -> None:
        """Close; pending operations complete as with :meth:`cancel`.

        Idempotent; any thread.  The fd itself is closed once no system call
        uses it any more.
        """
        file = self._file
        if file is not None:
            file.close()

    def _open_file(self) -> OpenFile:
        file = self._file
        if file is None:
            raise closed_file()
        return file

    def size(self) -> int:
        """The file's size in bytes.  ``OSError`` (``EBADF``) when closed."""
        st: os.stat_result = self._open_file().call(os.fstat)
        return st.st_size

    def resize(self, n: int) -> None:
        """Truncate or extend the file to ``n`` bytes (extended with zeros).

        :raises TypeError: for a non-int.
        :raises ValueError: for ``n`` outside ``0..2**63-1``.
        :raises OSError: ``EBADF`` when closed or not open for writing,
            ``EFBIG`` beyond what the file system allows.
        """
        self._open_file().call(os.ftruncate, _check_offset(n, "n"))

    def sync_data(self) -> None:
        """Flush the file's data to the device (``fdatasync``; ``fsync`` where
        the platform lacks it).  Blocks the calling thread until done."""
        self._open_file().call(_fdatasync)

    def sync_all(self) -> None:
        """Flush the file's data and metadata to the device (``fsync``).
        Blocks the calling thread until done."""
        self._open_file().call(os.fsync)

    def _op(self, reading: bool, what: str, buf: Any, call: Any, attempt: Any,
            offset: object, kind: int, stop_token: StopToken | None) -> Operation:
        """The awaitable of a read into ``buf`` (``reading``) or a write of
        it: ``call(fd, buf)`` (``call(fd, buf, offset)`` unless ``offset``
        is None) on a helper thread, after ``attempt`` (or None) on this
        one.  Argument errors are raised at the await."""
        try:
            args = () if offset is None else (_check_offset(offset),)
            size = read_size(buf, what) if reading else data_size(buf, what)
        except (TypeError, ValueError) as error:
            return FailedOp(error, stop_token)
        file = self._file
        if file is None:
            return FailedOp(closed_file(), stop_token)
        if not (file.readable if reading else file.writable):
            purpose = "reading" if reading else "writing"
            return FailedOp(OSError(errno.EBADF, f"the file is not open for {purpose}"), stop_token)
        if not size:
            return ReadyOp(file, 0, stop_token)
        return FileOp(file, call, attempt, (buf, *args), kind, stop_token)

    def __repr__(self) -> str:
        file = self._file
        if file is None or not file.is_open:
            return f"<{type(self).__name__} closed>"
        return f"<{type(self).__name__} fd={file.fileno()}>"


#: ``(bytes done so far, view of the rest) -> the awaitable of one write``.
_Step = Callable[[int, Any], "Operation"]


async def _write_all(write: _Step, data: Any, what: str, stop_token: StopToken | None) -> int:
    """Await ``write(done, view)`` until all of ``data`` is written; return its size."""
    check_token(stop_token)
    try:
        view = _byte_view(data)
    except TypeError:
        raise TypeError(f"{what} needs a bytes-like object, not {type(data).__name__}") from None
    total = view.nbytes
    if not total:
        # Still a checkpoint: EBADF and stop tokens apply to empty writes.
        await write(0, b"")
        return 0
    done = 0
    while done < total:
        done += await write(done, view[done:] if done else data)
    return total


@final
class StreamFile(_FileHandle):
    """A file read and written sequentially from its current position.

    Reads and writes run on helper threads; a context's threads never block
    on them.  One read and one write may be pending at once (a second one
    raises ``RuntimeError`` at its ``await``).  Every awaitable takes
    ``stop_token=``.  A cancelled read or write that had not started raises
    :class:`corosio_py.Cancelled` and did nothing; one already running
    completes with its result.

    Thread safety: :meth:`cancel` and :meth:`close` may be called from any
    thread at any time; the other methods by whoever owns the file.
    """

    __slots__ = ()

    def read_some(self, buffer: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: read into ``buffer`` from the position; returns the
        byte count, 0 at the end of the file (an empty buffer gives 0 at once).

        :raises TypeError: for a non-writable buffer or a bad ``stop_token``
            (at the await).
        :raises OSError: ``EBADF`` when closed or not open for reading.
        :raises RuntimeError: when another read is pending.
        :raises Cancelled: when cancelled before the read started.
        """
        return self._op(True, "read_some", buffer, _read, _read_nowait, None, READ, stop_token)

    def write_some(self, data: Any, *, stop_token: StopToken | None = None) -> Operation:
        """Awaitable: write some of ``data`` at the position (the end in
        append mode); returns the byte count.  Empty data gives 0 at once.

        :raises TypeError: for data that is not bytes-like or a bad
            ``stop_token`` (at the await).
        :raises OSError: ``EBADF`` when closed or not open for writing;
            ``ENOSPC`` and friends.
        :raises RuntimeError: when another write is pending.
        :raises Cancelled: when cancelled before the write started.
        """
        return self._op(False, "write_some", data, _write, None, None, WRITE, stop_token)

    async def read_exactly(self, n: int, *, stop_token: StopToken | None = None) -> bytes:
        """Read exactly ``n`` bytes, as a stream socket's ``read_exactly``
        does; ``EOFError`` when the file ends first.

        :raises OSError: as :meth:`read_some`.
        """
        return await read_exactly(
            lambda _done, view: self.read_some(view, stop_token=stop_token),
            n,
            stop_token,
            "the file ended",
        )

    async def write_all(self, data: Any, *, stop_token: StopToken | None = None) -> int:
        """Write all of ``data`` (bytes-like); return its size.

        :raises TypeError: for data that is not bytes-like or a bad ``stop_token``.
        :raises Cancelled: when cancelled (some bytes may have been written).
        :raises OSError: as :meth:`write_some`.
        """
        return await _write_all(
            lambda _done, view: self.write_some(view, stop_token=stop_token),
            data,
            "write_all",
            stop_token,
        )

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; return the new one.

        ``whence`` is ``os.SEEK_SET``, ``SEEK_CUR`` or ``SEEK_END`` (or
        ``SEEK_DATA``/``SEEK_HOLE`` where the platform has them).

        :raises TypeError: for a non-int ``offset`` or ``whence``.
        :raises ValueError: for another ``whence``.
        :raises OSError: ``EINVAL`` for a position before the start,
            ``EBADF`` when closed.
        """
        _check_int(offset, "offset")
        _check_int(whence, "whence")
        if whence not in _WHENCES:
            raise ValueError("whence must be os.SEEK_SET, os.SEEK_CUR or os.SEEK_END")
        if not -_OFF_MAX <= offset <= _OFF_MAX:
            raise ValueError(f"offset must be within +-{_OFF_MAX}, not {offset}")
        position: int = self._open_file().call(os.lseek, offset, whence)
        return position


@final
class RandomAccessFile(_FileHandle):
    """A file read and written at explicit offsets; it has no position.

    Any number of reads and writes may be pending at once; otherwise they
    behave as :class:`StreamFile`'s do (helper threads, ``stop_token=``,
    cancellation, which methods any thread may call).
    """

    __slots__ = ()

    def read_some_at(
        self, offset: int, buffer: Any, *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: read into ``buffer`` from ``offset``; returns the byte
        count, 0 at or past the end of the file.

        :raises TypeError: for a non-int offset, a non-writable buffer or a
            bad ``stop_token`` (at the await).
        :raises ValueError: for an offset outside ``0..2**63-1`` (at the await).
        :raises OSError: ``EBADF`` when closed or not open for reading.
        :raises Cancelled: when cancelled before the read started.
        """
        return self._op(
            True, "read_some_at", buffer, _read_at, _read_at_nowait, offset, ANY, stop_token
        )

    def write_some_at(
        self, offset: int, data: Any, *, stop_token: StopToken | None = None
    ) -> Operation:
        """Awaitable: write some of ``data`` at ``offset``; returns the byte count.

        :raises TypeError: for a non-int offset, data that is not bytes-like
            or a bad ``stop_token`` (at the await).
        :raises ValueError: for an offset outside ``0..2**63-1`` (at the await).
        :raises OSError: ``EBADF`` when closed or not open for writing.
        :raises Cancelled: when cancelled before the write started.
        """
        return self._op(False, "write_some_at", data, _write_at, None, offset, ANY, stop_token)

    async def read_exactly_at(
        self, offset: int, n: int, *, stop_token: StopToken | None = None
    ) -> bytes:
        """Read exactly ``n`` bytes from ``offset``.

        :raises EOFError: when the file ends first.
        :raises TypeError, ValueError: for a bad ``offset``, ``n`` or ``stop_token``.
        :raises Cancelled: when cancelled.
        :raises OSError: as :meth:`read_some_at`.
        """
        start = _check_offset(offset)
        return await read_exactly(
            lambda done, view: self.read_some_at(start + done, view, stop_token=stop_token),
            n,
            stop_token,
            "the file ended",
        )

    async def write_all_at(
        self, offset: int, data: Any, *, stop_token: StopToken | None = None
    ) -> int:
        """Write all of ``data`` at ``offset``; return its size.

        :raises TypeError, ValueError: for a bad ``offset``, data or ``stop_token``.
        :raises Cancelled: when cancelled (some bytes may have been written).
        :raises OSError: as :meth:`write_some_at`.
        """
        start = _check_offset(offset)
        return await _write_all(
            lambda done, view: self.write_some_at(start + done, view, stop_token=stop_token),
            data,
            "write_all_at",
            stop_token,
        )

