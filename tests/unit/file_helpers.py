"""Helpers shared by the file tests (test_stream_file, test_random_access_file).

A read from a FIFO with no data blocks its helper thread for as long as the
test wants: that is how a test holds a file operation *running* (in its
system call) or, with every helper thread so held, *queued*.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corosio_py import IOContext, StreamFile, spawn
from corosio_py._files import _FileHandle
from corosio_py._workers import MAX_THREADS
from tests.unit.limits import PATIENCE


def run_main(ctx: IOContext, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on ``ctx`` on this thread; its result."""
    task = spawn(ctx, coro)
    ctx.run()
    assert task.done(), "run() returned before the task finished"
    return task.result()


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def fifo_file(ctx: IOContext, path: Path) -> StreamFile:
    """A StreamFile reading the FIFO at ``path``, every read on a helper
    thread (no first attempt on the spot), so :func:`running` counts only
    those."""
    file = StreamFile(ctx)
    file.open(path, "r")
    assert file._file is not None
    file._file.nowait = False
    return file


def running(handle: _FileHandle, n: int = 1) -> Callable[[], bool]:
    """A condition: ``n`` system calls of ``handle`` run (on helper threads,
    for a file made by :func:`fifo_file`)."""

    def check() -> bool:
        file = handle._file
        if file is None:
            return False
        with file.lock:
            return file.users >= n

    return check


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Block this (non-context) thread until ``condition()`` holds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class Fifo:
    """A named pipe with a writer end held open, so opening it for reading
    never blocks and a read blocks until :meth:`feed`."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def feed(self, data: bytes) -> None:
        os.write(self.writer, data)

    def close(self) -> None:
        os.close(self.writer)


@contextmanager
def fifo(tmp_path: Path, name: str = "fifo") -> Iterator[Fifo]:
    pipe = Fifo(tmp_path / name)
    try:
        yield pipe
    finally:
        pipe.close()


@contextmanager
def all_helpers_busy(ctx: IOContext, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Hold every helper thread in a FIFO read; yields a function that lets
    them go (also called on exit, which then runs ``ctx`` until those reads
    finished).  Meanwhile a new file operation stays queued."""
    pipes = [Fifo(tmp_path / f"busy{i}") for i in range(MAX_THREADS)]
    files = []
    tasks = []
    try:
        for pipe in pipes:
            file = fifo_file(ctx, pipe.path)
            files.append(file)

            async def read(f: StreamFile = file) -> int:
                return await f.read_some(bytearray(1))

            tasks.append(spawn(ctx, read()))
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                for pipe in pipes:
                    pipe.feed(b"x")

        deadline = time.monotonic() + PATIENCE
        while not all(running(f)() for f in files):
            assert time.monotonic() < deadline, "the helper threads never all got busy"
            ctx.run_for(0.001)
        try:
            yield release
        finally:
            release()
            # The released reads finish on the context: the test leaves no
            # work behind for IOContext.close().
            deadline = time.monotonic() + PATIENCE
            while not all(task.done() for task in tasks):
                assert time.monotonic() < deadline, "the held reads never finished"
                ctx.run_for(0.001)
            if ctx.stopped():
                ctx.restart()  # run_for() ran out of work: the test may run ctx again
    finally:
        for file in files:
            file.close()
        for pipe in pipes:
            pipe.close()
