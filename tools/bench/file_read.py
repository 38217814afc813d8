"""file_read: read a ``size_mib`` MiB file in 1 MiB chunks (``passes``
times, start to end), while a 10 ms sleep loop runs beside it.

The file is made once (kept in the temp directory, rebuilt if its size is
wrong) and read once untimed before the timed read, so every implementation
reads from the page cache: the figure is the cost of the machinery, not of
the disk.  Block ``i`` (1 MiB) is filled with byte ``i % 251``.

Figures: MiB/s of the timed read; the lateness of a loop of 10 ms sleeps
running meanwhile (sleep end minus its deadline, in ms; mean with p50/p99):
the reader must not starve the rest of the program.  Checked: every byte
counted, the first and last byte of every chunk match the pattern (a
short read is valid: each end is checked against its own block), and the
sleep loop made progress.

impls:
  corosio_py        ``StreamFile.read_some`` into one 1 MiB buffer on a
                    context run by ``--threads`` threads; the sleep loop is
                    a task of the same context (``corosio_py.sleep``).
  corosio_py_hint1  the same on ``IOContext(concurrency_hint=1)``.
  floor_readinto    a plain blocking ``readinto`` loop (``open(path, "rb",
                    buffering=0)``); the sleep loop is a thread
                    (``time.sleep``).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time

from tools.bench._runners import corosio_context, now, percentile
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main

MIB = 1024 * 1024
CHUNK = MIB
PERIOD = 251
TICK = 0.010


def _path(size_mib: int) -> str:
    """The benchmark file, made if missing or of the wrong size."""
    path = os.path.join(tempfile.gettempdir(), f"corosio_bench_file_{size_mib}MiB")
    try:
        if os.path.getsize(path) == size_mib * MIB:
            return path
    except OSError:
        pass
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "wb") as out:
        for i in range(size_mib):
            out.write(bytes((i % PERIOD,)) * MIB)
    os.replace(partial, path)
    return path


def _warm(path: str) -> None:
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        while f.readinto(buf):
            pass


class _Record:
    """Bytes read, bad chunks, sleep lateness."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.total = 0
        self.chunks = 0
        self.bad = 0
        self.late: list[float] = []

    def chunk(self, buf: bytearray, n: int) -> None:
        # A read may return less than asked (read_some), so a chunk can start
        # or end inside a block: check each end against its own block.
        start = self.total % self.size
        first = (start // MIB) % PERIOD
        last = ((start + n - 1) // MIB) % PERIOD
        if buf[0] != first or buf[n - 1] != last:
            self.bad += 1
        self.total += n
        self.chunks += 1


def _corosio(args: RunArgs, path: str, passes: int, rec: _Record) -> float:
    import corosio_py

    done = threading.Event()

    async def ticker() -> None:
        deadline = time.monotonic()
        while not done.is_set():
            deadline += TICK
            await corosio_py.sleep(deadline - time.monotonic())
            rec.late.append(time.monotonic() - deadline)

    async def reader() -> float:
        f = corosio_py.StreamFile(ctx)
        f.open(path)
        buf = bytearray(CHUNK)
        t0 = now()
        try:
            for _ in range(passes):
                f.seek(0)
                while True:
                    n = await f.read_some(buf)
                    if not n:
                        break
                    rec.chunk(buf, n)
        finally:
            f.close()
            done.set()
        return now() - t0

    with corosio_context(args) as ctx:
        corosio_py.spawn(ctx, ticker())
        task = corosio_py.spawn(ctx, reader())
        helpers = [threading.Thread(target=ctx.run) for _ in range(args.threads - 1)]
        for helper in helpers:
            helper.start()
        ctx.run()
        for helper in helpers:
            helper.join()
        elapsed: float = task.result()
    return elapsed


def _floor(args: RunArgs, path: str, passes: int, rec: _Record) -> float:
    done = threading.Event()

    def ticker() -> None:
        deadline = time.monotonic()
        while not done.is_set():
            deadline += TICK
            time.sleep(max(0.0, deadline - time.monotonic()))
            rec.late.append(time.monotonic() - deadline)

    thread = threading.Thread(target=ticker)
    thread.start()
    buf = bytearray(CHUNK)
    t0 = now()
    try:
        with open(path, "rb", buffering=0) as f:
            for _ in range(passes):
                f.seek(0)
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    rec.chunk(buf, n)
    finally:
        elapsed = now() - t0
        done.set()
        thread.join()
    return elapsed


def measure(args: RunArgs, run: Runner) -> Measurement:
    size_mib, passes = args.params["size_mib"], args.params["passes"]
    path = _path(size_mib)
    _warm(path)
    rec = _Record(size_mib * MIB)
    elapsed = run(args, path, passes, rec)
    expected = size_mib * MIB * passes
    check(rec.total == expected, f"read {rec.total} bytes, expected {expected}")
    check(rec.bad == 0, f"{rec.bad} chunks held the wrong bytes")
    check(bool(rec.late), "the sleep loop never ran")
    late = sorted(rec.late)
    ms = 1000.0
    return Measurement(
        figures={
            "mib_per_s": rec.total / MIB / elapsed,
            "lateness_ms": statistics.fmean(late) * ms,
        },
        latency={"lateness_ms": (percentile(late, 0.5) * ms, percentile(late, 0.99) * ms)},
        extra={
            "elapsed_s": elapsed,
            "chunks": rec.chunks,
            "ticks": len(late),
            "worst_lateness_ms": late[-1] * ms,
        },
    )


WORKLOAD = Workload(
    name="file_read",
    title="Read a file in 1 MiB chunks while a 10 ms sleep loop runs beside it",
    figures=(
        Figure("mib_per_s", "read", "MiB/s"),
        Figure("lateness_ms", "10 ms sleep lateness", "ms", higher_is_better=False, latency=True),
    ),
    impls=(
        Impl("corosio_py", COROSIO, _corosio, threads=(1, 2), quick_threads=(1,)),
        Impl("corosio_py_hint1", COROSIO, _corosio, all_backends=False, concurrency_hint=1),
        Impl("floor_readinto", "floor", _floor),
    ),
    sizes={"full": {"size_mib": 256, "passes": 4}, "quick": {"size_mib": 256, "passes": 1}},
    measure=measure,
    references={"readinto": "floor_readinto"},
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
