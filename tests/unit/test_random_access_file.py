"""RandomAccessFile (upstream random_access_file's intent): reads and writes
at offsets, past the end, concurrent operations (100 reads at once),
cancelling many in flight (each completes exactly once, with data or
Cancelled), syncs, closed-file errors, empty buffers, bad offsets, stop
tokens, exact reads and writes at an offset; both schedulers; no fd leaks.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from corosio_py import Cancelled, IOContext, RandomAccessFile, StopSource, Task, spawn
from tests.unit.file_helpers import all_helpers_busy, run_main, write_file
from tests.unit.thread_helpers import start

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fd_leak_check")]


@pytest.fixture(params=[None, 1], ids=["default", "hint1"])
def hint(request: pytest.FixtureRequest) -> int | None:
    value: int | None = request.param
    return value


def opened(ctx: IOContext, path: Path, mode: str = "r") -> RandomAccessFile:
    f = RandomAccessFile(ctx)
    f.open(path, mode)
    return f


async def read_at(f: RandomAccessFile, offset: int, size: int) -> bytes:
    buf = bytearray(size)
    n = await f.read_some_at(offset, buf)
    return bytes(buf[:n])


def test_construction_and_open(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    f = RandomAccessFile(ctx)
    assert not f.is_open
    assert not hasattr(f, "seek")  # no position
    f.cancel()
    with pytest.raises(FileNotFoundError):
        f.open(tmp_path / "missing")
    f.open(write_file(tmp_path / "a", b"hello"))
    assert f.is_open
    assert f.size() == 5
    f.open(write_file(tmp_path / "b", b"second!"))  # replaces the first
    assert f.size() == 7
    f.close()
    assert not f.is_open
    for call in (f.size, lambda: f.resize(0), f.sync_data, f.sync_all):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_read_at_offsets_and_past_the_end(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    ctx = make_ctx(hint)
    f = opened(ctx, write_file(tmp_path / "r", b"ABCDEFGHIJ"))

    async def main() -> list[bytes]:
        return [
            await read_at(f, 3, 5),
            await read_at(f, 0, 5),
            await read_at(f, 8, 5),
            await read_at(f, 100, 5),
            await f.read_exactly_at(2, 3),
        ]

    assert run_main(ctx, main()) == [b"DEFGH", b"ABCDE", b"IJ", b"", b"CDE"]
    f.close()


def test_write_and_read_at_offsets(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    ctx = make_ctx(hint)
    f = opened(ctx, tmp_path / "w", "w+")

    async def main() -> list[bytes]:
        assert await f.write_some_at(0, b"AAA") == 3
        assert await f.write_some_at(3, memoryview(b"BBB")) == 3
        assert await f.write_all_at(10, b"tail") == 4
        return [await read_at(f, 0, 6), await read_at(f, 2, 4), await f.read_exactly_at(6, 8)]

    assert run_main(ctx, main()) == [b"AAABBB", b"ABBB", bytes(4) + b"tail"]
    f.sync_data()
    f.sync_all()
    f.close()
    assert (tmp_path / "w").read_bytes() == b"AAABBB" + bytes(4) + b"tail"


def test_sequential_reads(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    ctx = make_ctx()
    f = opened(ctx, write_file(tmp_path / "s", b"0123456789ABCDEF"))

    async def main() -> list[bytes]:
        return [await read_at(f, i * 4, 4) for i in range(4)]

    assert run_main(ctx, main()) == [b"0123", b"4567", b"89AB", b"CDEF"]
    f.close()


def test_concurrent_operations(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    """100 reads at once, 4 writes at once, a read and a write at once."""
    blocks = [bytes([65 + i % 26]) * 4 for i in range(100)]
    ctx = make_ctx(hint)
    f = opened(ctx, write_file(tmp_path / "c", b"".join(blocks)), "r+")
    assert f._file is not None
    f._file.nowait = hint is None  # on helper threads too, not only from the cache

    async def main() -> None:
        reads = [spawn(ctx, read_at(f, i * 4, 4)) for i in range(100)]
        assert [await t for t in reads] == blocks
        letters = (b"W", b"X", b"Y", b"Z")
        writes = [spawn(ctx, _write(f, i * 4, ch * 4)) for i, ch in enumerate(letters)]
        assert [await t for t in writes] == [4] * 4
        both: list[Task[bytes | int]] = [
            spawn(ctx, read_at(f, 396, 4)),
            spawn(ctx, _write(f, 12, b"ZZZZ")),
        ]
        assert [await t for t in both] == [blocks[99], 4]

    run_main(ctx, main())
    f.close()
    assert (tmp_path / "c").read_bytes()[:16] == b"WWWWXXXXYYYYZZZZ"


async def _write(f: RandomAccessFile, offset: int, data: bytes) -> int:
    return await f.write_some_at(offset, data)


def test_cancel_many_in_flight(
    make_ctx: Callable[..., IOContext], tmp_path: Path, hint: int | None
) -> None:
    """16 reads, then cancel() at once: each completes exactly once, with its
    bytes (it was running) or Cancelled (it was still queued)."""
    data = os.urandom(64 * 1024)
    ctx = make_ctx(hint)
    f = opened(ctx, write_file(tmp_path / "x", data))
    assert f._file is not None
    f._file.nowait = False  # every read goes to a helper thread
    tasks = [spawn(ctx, read_at(f, i * 1024, 1024)) for i in range(16)]
    ctx.poll()  # every read submitted
    f.cancel()
    ctx.run()
    for i, task in enumerate(tasks):
        assert task.done()
        if not task.cancelled():
            assert task.result() == data[i * 1024 : (i + 1) * 1024]
    f.close()


def test_cancel_queued_write_writes_nothing(
    make_ctx: Callable[..., IOContext], tmp_path: Path
) -> None:
    ctx = make_ctx()
    path = write_file(tmp_path / "q", b"..........")
    f = opened(ctx, path, "r+")
    with all_helpers_busy(ctx, tmp_path):
        task = spawn(ctx, _write(f, 0, b"XXXX"))
        ctx.run_for(0.01)
        assert not task.done()
        task.cancel()
        ctx.run_for(0.01)
        assert task.cancelled()
    f.close()
    assert path.read_bytes() == b".........."


def test_empty_buffers_bad_offsets_and_tokens(
    make_ctx: Callable[..., IOContext], tmp_path: Path
) -> None:
    ctx = make_ctx()
    f = opened(ctx, write_file(tmp_path / "e", b"hi"), "r+")
    stopped = StopSource()
    stopped.request_stop()

    async def main() -> None:
        assert await f.read_some_at(0, bytearray()) == 0
        assert await f.write_some_at(0, b"") == 0
        for bad, error in ((-1, ValueError), (2**63, ValueError), (1.0, TypeError)):
            with pytest.raises(error):
                await f.read_some_at(bad, bytearray(2))  # type: ignore[arg-type]
            with pytest.raises(error):
                await f.write_some_at(bad, b"x")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await f.read_exactly_at(-1, 1)
        with pytest.raises(TypeError):
            await f.read_some_at(0, b"read-only")
        with pytest.raises(Cancelled):
            await f.read_some_at(0, bytearray(2), stop_token=stopped.token)
        with pytest.raises(Cancelled):
            await f.write_all_at(0, b"zz", stop_token=stopped.token)
        with pytest.raises(EOFError):
            await f.read_exactly_at(1, 2)

    run_main(ctx, main())
    f.close()
    assert (tmp_path / "e").read_bytes() == b"hi"


def test_resize_and_extend(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    f = opened(make_ctx(), write_file(tmp_path / "z", b"0123456789"), "r+")
    f.resize(5)
    assert f.size() == 5
    with pytest.raises(ValueError):
        f.resize(2**64)
    f.close()


def test_many_threads(make_ctx: Callable[..., IOContext], tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    ctx = make_ctx()
    f = opened(ctx, write_file(tmp_path / "m", data))
    tasks = [spawn(ctx, f.read_exactly_at(i * 4096, 4096)) for i in range(64)]
    runners = [start(ctx.run) for _ in range(3)]
    ctx.run()
    for runner in runners:
        runner.finish()
    assert b"".join(t.result() for t in tasks) == data
    f.close()
