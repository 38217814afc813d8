"""A Unix-domain stream echo server on corosio_py's LocalStreamServer.

    python -m corosio_py.examples.unix_echo --path /tmp/echo.sock --threads 2
    socat - UNIX-CONNECT:/tmp/echo.sock     # type a line, get it back

Each connection runs its own handler task (on whichever thread is free) that
writes back every byte it reads until the peer closes.  A stale socket file
from an earlier run is removed at start (``unlink_existing=True``) and the
file is removed again on exit.  Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from types import FrameType

import corosio_py as cio

__all__ = ("handle", "main")


async def handle(sock: cio.LocalStreamSocket) -> None:
    """Echo everything ``sock`` receives until EOF."""
    buf = bytearray(65536)
    view = memoryview(buf)
    while n := await sock.read_some(buf):
        await sock.write_all(view[:n])


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="corosio_py Unix-socket echo server")
    parser.add_argument("--path", default="/tmp/corosio_echo.sock", help="socket file path")
    parser.add_argument("--threads", type=int, default=2, help="threads in run() (default: 2)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ctx = cio.IOContext()
    server = cio.LocalStreamServer(ctx, args.path, handle, unlink_existing=True)
    server.start()
    workers = [threading.Thread(target=ctx.run, daemon=True) for _ in range(max(1, args.threads))]
    for worker in workers:
        worker.start()
    print(f"echoing on {args.path}; Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for worker in workers:
            worker.join(5)
        ctx.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.path)


if __name__ == "__main__":
    main()
