"""A UDP echo server on corosio_py's UDPSocket.

    python -m corosio_py.examples.udp_echo --port 9000 --threads 2
    socat - UDP:127.0.0.1:9000       # type a line, get it back

Every datagram is sent back to its sender unchanged: one receive, one send
(a UDP datagram never exceeds the 64 KiB buffer).  One socket allows one
pending receive, so one task runs the loop; with more threads it simply
resumes on whichever is free.  Ctrl-C stops it.
"""

from __future__ import annotations

import argparse

import corosio_py as cio

__all__ = ("echo", "main")


async def echo(sock: cio.UDPSocket, stop: cio.StopToken | None = None) -> int:
    """Echo datagrams on ``sock`` until ``stop`` fires; return how many."""
    buf = bytearray(65536)
    view = memoryview(buf)
    count = 0
    while True:
        try:
            n, sender = await sock.recv_from(buf, stop_token=stop)
        except cio.Cancelled:
            return count
        await sock.send_to(view[:n], sender)
        count += 1


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="corosio_py UDP echo server")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=9000, help="UDP port, 0 for any (default: 9000)"
    )
    parser.add_argument("--threads", type=int, default=1, help="threads in run() (default: 1)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        ctx = cio.current_executor().context
        sock = cio.UDPSocket(ctx)
        try:
            sock.bind((args.host, args.port))
            print(f"echoing UDP on {sock.local_endpoint()}; Ctrl-C to stop", flush=True)
            await echo(sock)
        finally:
            sock.close()

    # Ctrl-C raises KeyboardInterrupt out of run() (the library defers it to
    # a safe point between handlers); a Python signal handler of our own
    # could run while a thread holds one of the library's locks.
    try:
        cio.run(serve(), threads=max(1, args.threads))
    except KeyboardInterrupt:
        pass
    print("\nstopped")


if __name__ == "__main__":
    main()
