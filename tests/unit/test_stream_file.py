"""StreamFile (upstream stream_file's intent): open modes and their errors,
size/resize/seek, reads and writes from the position, EOF, append, syncs,
empty buffers, closed-file errors, reopening, stop tokens; then what is
ours: reads run on helper threads (a blocked read never blocks the
context, and counts as outstanding work), a queued read is cancelled, a
running one delivers its bytes, close() waits for no system call and the fd
is closed by the last one; both schedulers; no fd leaks.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import corosio_py
from corosio_py import Cancelled, IOContext, StopSource, StreamFile, spawn
from tests.unit.file_helpers import (
    all_helpers_busy,
    fifo,
    fifo_file,
    run_main,
    running,
    wait_for,
    write_file,
)
from tests.unit.thread_helpers import start

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]


@pytest.fixture(params=[None, 1], ids=["default", "hint1"])
def hint(request: pytest.FixtureRequest) -> int | None:
    value: int | None = request.param
    return value


# ---------------------------------------------------------------- open / close


def test_construction(make_ctx: Callable[..., IOContext]) -> None:
    ctx = make_ctx()
    f = StreamFile(ctx)
    assert not f.is_open
    assert f.fileno() == -1
    assert f.context is ctx
    assert repr(f) == "<StreamFile closed>"
    f.cancel()  # no-ops on a closed file
    f.close()
    with pytest.raises(TypeError):
        StreamFile(object())  # type: ignore[arg-type]


def test_open_read_only_and_close(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    path = write_file(tmp_path / "ro", b"hello")
    f = StreamFile(make_ctx())
    f.open(path)
    assert f.is_open
    assert f.fileno() >= 0
    assert "fd=" in repr(f)
    f.close()
    assert not f.is_open
    f.close()


@pytest.mark.parametrize("mode", ["w", "wb", "w+", "a", "x", "r+"])
def test_open_modes_create(
    make_ctx: Callable[..., IOContext], tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "new"
    if mode == "r+":
        with pytest.raises(FileNotFoundError):
            StreamFile(make_ctx()).open(path, mode)
        return
    f = StreamFile(make_ctx())
    f.open(path, mode)
    f.close()
    assert path.exists()


def test_open_errors(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    f = StreamFile(ctx)
    with pytest.raises(FileNotFoundError):
        f.open(tmp_path / "missing")
    assert not f.is_open
    existing = write_file(tmp_path / "existing", b"x")
    with pytest.raises(FileExistsError):
        f.open(existing, "x")
    with pytest.raises(IsADirectoryError):
        f.open(tmp_path)
    with pytest.raises(ValueError):
        f.open(existing, "rw")
    with pytest.raises(ValueError):
        f.open(existing, "rt")
    with pytest.raises(TypeError):
        f.open(existing, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        f.open(3.5)  # type: ignore[arg-type]
    assert not f.is_open
    ctx.close()
    with pytest.raises(RuntimeError):
        f.open(existing)


def test_open_replaces_the_open_file(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    first = write_file(tmp_path / "a", b"first")
    second = write_file(tmp_path / "b", b"second")
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(first)
    old = f.fileno()
    f.open(second)
    assert f.is_open

    async def main() -> bytes:
        return await f.read_exactly(6)

    assert run_main(ctx, main()) == b"second"
    assert not _fd_open(old, first)  # the first file's fd was closed (its number may be reused)
    f.close()


def test_truncate_and_append(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    path = write_file(tmp_path / "t", b"original data")
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(path, "w")
    assert f.size() == 0
    f.close()
    write_file(path, b"hello")
    f.open(path, "a")

    async def main() -> int:
        return await f.write_some(b" world")

    assert run_main(ctx, main()) == 6
    f.close()
    assert path.read_bytes() == b"hello world"


# ---------------------------------------------------------------- metadata


def test_size_resize_seek(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    path = write_file(tmp_path / "s", b"0123456789")
    f = StreamFile(make_ctx())
    f.open(path, "r+")
    assert f.size() == 10
    assert f.seek(5) == 5
    assert f.seek(3, os.SEEK_CUR) == 8
    assert f.seek(-2, os.SEEK_END) == 8
    f.resize(5)
    assert f.size() == 5
    f.resize(20)
    assert f.size() == 20
    assert path.read_bytes() == b"01234" + bytes(15)
    with pytest.raises(OSError) as info:
        f.seek(-1)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.seek(-100, os.SEEK_END)
    with pytest.raises(OSError):
        f.seek(-100, os.SEEK_CUR)
    with pytest.raises(ValueError):
        f.seek(0, 7)
    with pytest.raises(TypeError):
        f.seek(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        f.resize(-1)
    with pytest.raises(ValueError):
        f.resize(2**64)
    with pytest.raises(TypeError):
        f.resize("1")  # type: ignore[arg-type]
    f.sync_data()
    f.sync_all()
    f.close()


def test_closed_file_errors(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    f = StreamFile(ctx)
    for call in (f.size, lambda: f.resize(0), f.sync_data, f.sync_all, lambda: f.seek(0)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF

    async def main() -> None:
        for op in (f.read_some(bytearray(4)), f.write_some(b"x"), f.read_some(bytearray())):
            with pytest.raises(OSError) as info:
                await op
            assert info.value.errno == errno.EBADF
        f.open(write_file(tmp_path / "c", b"x"))
        empty = f.read_some(bytearray())
        f.close()
        with pytest.raises(OSError):
            await empty  # closed between the call and the await

    run_main(ctx, main())


# ---------------------------------------------------------------- reads and writes


def test_read_some_and_eof(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    path = write_file(tmp_path / "r", b"hello world")
    ctx = make_ctx(hint)
    f = StreamFile(ctx)
    f.open(path)

    async def main() -> tuple[int, bytes, int]:
        buf = bytearray(64)
        n = await f.read_some(buf)
        return n, bytes(buf[:n]), await f.read_some(memoryview(buf))

    assert run_main(ctx, main()) == (11, b"hello world", 0)
    f.close()


def test_sequential_read_write(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    ctx = make_ctx(hint)
    f = StreamFile(ctx)
    f.open(tmp_path / "rw", "w+")

    async def main() -> bytes:
        assert await f.write_some(b"AAA") == 3
        assert await f.write_some(memoryview(b"BBB")) == 3
        f.seek(0)
        buf = bytearray(6)
        assert await f.read_some(buf) == 6
        return bytes(buf)

    assert run_main(ctx, main()) == b"AAABBB"
    f.close()


def test_read_exactly_write_all(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    data = os.urandom(300_000)
    ctx = make_ctx(hint)
    f = StreamFile(ctx)
    f.open(tmp_path / "big", "w+")

    async def main() -> None:
        assert await f.write_all(data) == len(data)
        assert await f.write_all(b"") == 0
        f.seek(0)
        assert await f.read_exactly(len(data)) == data
        f.seek(-10, os.SEEK_END)
        with pytest.raises(EOFError):
            await f.read_exactly(11)
        assert await f.read_exactly(0) == b""
        with pytest.raises(ValueError):
            await f.read_exactly(-1)
        with pytest.raises(TypeError):
            await f.read_exactly("1")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await f.write_all("text")

    run_main(ctx, main())
    f.close()


def test_empty_buffers_and_bad_arguments(
    make_ctx: Callable[..., IOContext], tmp_path: Path
) -> None:
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(write_file(tmp_path / "e", b"hello"), "r+")

    async def main() -> None:
        assert await f.read_some(bytearray()) == 0
        assert await f.write_some(b"") == 0
        assert f.seek(0, os.SEEK_CUR) == 0  # nothing moved
        with pytest.raises(TypeError):
            await f.read_some(b"read-only")
        with pytest.raises(TypeError):
            await f.read_some("text")
        with pytest.raises(TypeError):
            await f.write_some("text")
        with pytest.raises(TypeError):
            await f.write_some([b"a", b"b"])
        view = memoryview(bytearray(4))
        view.release()
        with pytest.raises(ValueError):
            await f.read_some(view)

    run_main(ctx, main())
    f.close()


def test_wrong_direction(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    path = write_file(tmp_path / "d", b"data")
    ctx = make_ctx()
    reader = StreamFile(ctx)
    reader.open(path, "r")
    writer = StreamFile(ctx)
    writer.open(path, "a")

    async def main() -> None:
        with pytest.raises(OSError) as info:
            await reader.write_some(b"x")
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            await writer.read_some(bytearray(4))
        with pytest.raises(OSError):
            reader.resize(0)

    run_main(ctx, main())
    reader.close()
    writer.close()


def test_stop_token_before_start(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(write_file(tmp_path / "tok", b"hello world"))
    source = StopSource()
    source.request_stop()

    async def main() -> None:
        with pytest.raises(Cancelled):
            await f.read_some(bytearray(64), stop_token=source.token)
        with pytest.raises(Cancelled):
            await f.read_exactly(3, stop_token=source.token)
        assert f.seek(0, os.SEEK_CUR) == 0  # nothing was read

    run_main(ctx, main())
    f.close()


# ---------------------------------------------------------------- helper threads


def test_blocked_read_never_blocks_the_context(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    """A read that blocks (a FIFO) runs on a helper thread (its first,
    non-blocking attempt found nothing): the one thread running the context
    keeps running timers; the read is outstanding work."""
    ctx = make_ctx(hint)
    with fifo(tmp_path) as pipe:
        f = StreamFile(ctx)
        f.open(pipe.path)
        order: list[str] = []

        async def reader() -> bytes:
            buf = bytearray(16)
            n = await f.read_some(buf)
            order.append("read")
            return bytes(buf[:n])

        async def main() -> bytes:
            task = spawn(ctx, reader())
            for _ in range(5):
                await corosio_py.sleep(0.002)
            order.append("slept")
            assert running(f)()
            pipe.feed(b"fifo data")
            return await task

        assert run_main(ctx, main()) == b"fifo data"
        assert order == ["slept", "read"]
        f.close()


def test_pending_read_is_outstanding_work(
    make_ctx: Callable[..., IOContext], tmp_path: Path
) -> None:
    ctx = make_ctx()
    with fifo(tmp_path) as pipe:
        f = fifo_file(ctx, pipe.path)

        async def reader() -> int:
            return await f.read_some(bytearray(8))

        task = spawn(ctx, reader())
        runner = start(ctx.run)
        wait_for(running(f), "the read to start")
        assert runner.is_alive()  # run() waits for the read
        pipe.feed(b"abc")
        runner.finish()
        assert task.result() == 3
        f.close()


def test_second_read_is_refused(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    with fifo(tmp_path) as pipe:
        f = fifo_file(ctx, pipe.path)

        async def main() -> int:
            first = spawn(ctx, _read(f, 4))
            while not running(f)():
                await corosio_py.sleep(0.001)
            with pytest.raises(RuntimeError):
                await f.read_some(bytearray(4))
            pipe.feed(b"ok")
            return await first

        assert run_main(ctx, main()) == 2
        f.close()


async def _read(f: StreamFile, size: int) -> int:
    return await f.read_some(bytearray(size))


def test_cancel_running_read_delivers_its_bytes(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    """Cancellation never loses data: a read already in its system call when
    the task is cancelled (or the file cancelled or closed) completes with
    its bytes; the cancellation lands at the task's next suspension."""
    ctx = make_ctx(hint)
    with fifo(tmp_path) as pipe:
        f = fifo_file(ctx, pipe.path)
        got: list[object] = []

        async def reader() -> None:
            buf = bytearray(16)
            n = await f.read_some(buf)
            got.append(bytes(buf[:n]))
            await corosio_py.sleep(0)  # the next suspension: cancelled here

        async def main() -> None:
            for how in ("task", "file", "close"):
                if how == "close":
                    f.open(pipe.path)
                    assert f._file is not None
                    f._file.nowait = False
                task = spawn(ctx, reader())
                while not running(f)():
                    await corosio_py.sleep(0.001)
                if how == "task":
                    assert task.cancel()
                elif how == "file":
                    f.cancel()
                else:
                    f.close()
                    assert f.fileno() == -1
                pipe.feed(how.encode())
                if how == "task":
                    with pytest.raises(Cancelled):
                        await task
                else:
                    await task
            assert got == [b"task", b"file", b"close"]

        run_main(ctx, main())
        f.close()


def test_cancel_queued_read_reads_nothing(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    """With every helper thread busy the read stays queued; cancelled there
    (task, file, stop token, close) it raises Cancelled and consumed nothing."""
    ctx = make_ctx(hint)
    path = write_file(tmp_path / "q", b"0123456789")
    f = StreamFile(ctx)
    f.open(path)
    assert f._file is not None
    f._file.nowait = False  # no page-cache read on the spot: every read queues
    with all_helpers_busy(ctx, tmp_path):
        source = StopSource()
        tasks = []

        async def by_token() -> int:
            return await f.read_some(bytearray(4), stop_token=source.token)

        for how in ("task", "file", "token"):
            task = spawn(ctx, by_token() if how == "token" else _read(f, 4))
            ctx.run_for(0.01)
            assert not task.done()
            assert f._file is not None and len(f._file.queued) == 1
            if how == "task":
                task.cancel()
            elif how == "file":
                f.cancel()
            else:
                source.request_stop()
            ctx.run_for(0.01)
            assert task.cancelled(), how
            tasks.append(task)
        assert f.seek(0, os.SEEK_CUR) == 0
        last = spawn(ctx, _read(f, 4))
        ctx.run_for(0.01)
        f.close()
        ctx.run_for(0.01)
        assert last.cancelled()
    f.open(path)
    assert run_main(ctx, f.read_exactly(10)) == b"0123456789"
    f.close()


def test_close_defers_the_fd_to_the_running_call(
    make_ctx: Callable[..., IOContext], tmp_path: Path
) -> None:
    """close() does not wait for a running read; the fd stays open (its
    number cannot be reused under the helper thread) until the read returns."""
    ctx = make_ctx()
    with fifo(tmp_path) as pipe:
        f = fifo_file(ctx, pipe.path)
        fd = f.fileno()
        task = spawn(ctx, _read(f, 8))
        runner = start(ctx.run)
        wait_for(running(f), "the read to start")
        f.close()
        assert not f.is_open
        os.fstat(fd)  # still open: the helper thread uses it
        pipe.feed(b"late")
        runner.finish()
        assert task.result() == 4
        wait_for(lambda: not _fd_open(fd, pipe.path), "the last user to close the fd")


def _fd_open(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


@pytest.mark.leaves_work_for_close("close() abandons a running read and closes the file")
def test_context_close_abandons_and_closes(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    ctx = make_ctx(hint)
    with fifo(tmp_path) as pipe:
        f = fifo_file(ctx, pipe.path)
        fd = f.fileno()
        task = spawn(ctx, _read(f, 8))
        deadline_runs = 0
        while not running(f)():
            ctx.run_for(0.001)
            deadline_runs += 1
            assert deadline_runs < 10_000
        ctx.close()
        assert task.cancelled()
        assert not f.is_open
        pipe.feed(b"x")  # the helper's late result is dropped
        wait_for(lambda: not _fd_open(fd, pipe.path), "the fd to be closed")


def test_cached_read_needs_no_helper_thread(
    make_ctx: Callable[..., IOContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the platform has RWF_NOWAIT, data in the page cache is read on
    the spot (no hand-off); otherwise, and for writes, a helper thread runs it."""
    from corosio_py import _fileio
    from corosio_py._workers import submit as real_submit

    submitted: list[object] = []

    def counting_submit(job: Callable[[], object]) -> None:
        submitted.append(job)
        real_submit(job)

    monkeypatch.setattr(_fileio, "submit", counting_submit)
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(write_file(tmp_path / "cached", b"cached data"), "r+")

    async def main() -> bytes:
        data = await f.read_exactly(6)
        await f.write_all(b"!")
        return data

    assert run_main(ctx, main()) == b"cached"
    nowait = hasattr(os, "RWF_NOWAIT") and hasattr(os, "preadv")
    assert len(submitted) == (1 if nowait else 2)
    f.close()


def test_reads_on_many_threads(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    """Four threads run the context; several files are read at once."""
    ctx = make_ctx()
    blobs = [os.urandom(50_000 + i) for i in range(8)]
    files = []
    for i, blob in enumerate(blobs):
        f = StreamFile(ctx)
        f.open(write_file(tmp_path / f"m{i}", blob))
        files.append(f)

    async def read_all(f: StreamFile) -> bytes:
        chunks: list[bytes] = []
        while True:
            buf = bytearray(4096)
            n = await f.read_some(buf)
            if not n:
                return b"".join(chunks)
            chunks.append(bytes(buf[:n]))

    tasks = [spawn(ctx, read_all(f)) for f in files]
    runners = [start(ctx.run) for _ in range(3)]
    ctx.run()
    for runner in runners:
        runner.finish()
    assert [t.result() for t in tasks] == blobs
    for f in files:
        f.close()
    assert threading.active_count() < 100


class _NotAnError(BaseException):
    """Raised by the system call below: not an ``Exception``."""


def test_a_base_exception_from_the_helper_call_reaches_the_task(
    make_ctx: Callable[..., IOContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper thread delivers whatever its call raised: the operation
    completes (no hang), the file's user count is settled (close works)."""

    def failing_write(fd: int, data: object) -> int:
        raise _NotAnError("from the helper thread")

    monkeypatch.setattr("corosio_py._files._write", failing_write)
    ctx = make_ctx()
    f = StreamFile(ctx)
    f.open(tmp_path / "out", "w")

    async def main() -> str:
        try:
            await f.write_some(b"data")
        except _NotAnError as error:
            return str(error)
        finally:
            f.close()
        return "no error"

    task = spawn(ctx, main())
    ctx.run()
    assert task.result() == "from the helper thread"
