"""N threads run one IOContext over a burst of handlers and timers.

Prints handlers per second and how many handlers each thread ran:
``python -m corosio_py.examples.scheduler_demo --threads 4``.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time

import corosio_py as cio


def main(argv: list[str] | None = None) -> None:
    """Run the demo and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--handlers", type=int, default=200_000)
    parser.add_argument("--timers", type=int, default=2_000)
    args = parser.parse_args(argv)

    ctx = cio.IOContext()
    per_thread: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def handler() -> None:
        name = threading.current_thread().name
        with lock:
            per_thread[name] += 1

    async def sleeper(delay: float) -> None:
        await cio.sleep(delay)
        handler()

    for _ in range(args.handlers):
        ctx.post(handler)
    for i in range(args.timers):
        cio.spawn(ctx, sleeper(0.05 * i / args.timers))

    threads = [
        threading.Thread(target=ctx.run, name=f"runner-{i}") for i in range(args.threads)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    total = sum(per_thread.values())
    expected = args.handlers + args.timers
    print(f"backend={ctx.backend} threads={args.threads}")
    print(f"ran {total} handlers ({expected} expected) in {elapsed:.3f} s")
    print(f"{total / elapsed:,.0f} handlers/s")
    for name in sorted(per_thread):
        print(f"  {name}: {per_thread[name]} handlers")
    ctx.close()
    if total != expected:
        raise SystemExit("some handlers did not run exactly once")


if __name__ == "__main__":
    main()
