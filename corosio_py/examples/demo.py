"""The main demo (``make demo``): the HTTP server under load.

Starts the HTTP/1.1 keep-alive server of :mod:`corosio_py.examples.http_server`
on 127.0.0.1 served by several threads of one IOContext (as many as pay for
themselves on this interpreter, unless ``--threads`` says), drives it for 5 seconds
with the load client of :mod:`corosio_py.examples.http_load` in a separate
process, then prints requests per second, latency percentiles and how many
handlers (and requests) each server thread ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from corosio_py._scheduler import gil_enabled

from .http_load import add_load_arguments
from .http_server import add_backend_argument, positive_int, serve, shutdown


def default_threads() -> tuple[int, str]:
    """The server thread count that is fastest on this interpreter, and why."""
    if gil_enabled():
        return 1, (
            "standard CPython (GIL on): pure-Python handlers cannot run in parallel, "
            "and the scheduler keeps one thread busy however many run the context, "
            "so 1 thread is fastest"
        )
    cores = os.cpu_count() or 1
    return max(2, min(4, cores)), (
        f"free-threaded CPython (no GIL): handlers run in parallel on {cores} cores"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the demo and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="server threads (default: the fastest count for this interpreter)",
    )
    add_load_arguments(parser)
    add_backend_argument(parser, " of the server")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads, why = default_threads()
    else:
        why = "chosen with --threads"
    print(f"{args.threads} server thread(s): {why}", flush=True)

    ctx, server, stats, workers = serve("127.0.0.1", 0, args.threads, args.backend)
    port = server.local_endpoint().port
    print(
        f"HTTP server on 127.0.0.1:{port}: {args.threads} threads on one IOContext "
        f"({ctx.backend}); load: {args.connections} keep-alive connections "
        f"for {args.duration:g} s",
        flush=True,
    )
    try:
        load = subprocess.run(
            [
                sys.executable, "-m", "corosio_py.examples.http_load",
                "--port", str(port),
                "--connections", str(args.connections),
                "--duration", str(args.duration),
            ],
            capture_output=True, text=True, check=True, timeout=args.duration + 60,
        )
    finally:
        shutdown(ctx, server, workers)
    figures = json.loads(load.stdout)
    print(f"requests:      {figures['requests']} ({figures['errors']} errors)")
    print(f"requests/s:    {figures['requests_per_s']:,.0f}")
    print(
        f"latency (µs):  p50 {figures['p50_us']}  p90 {figures['p90_us']}  "
        f"p99 {figures['p99_us']}  max {figures['max_us']}"
    )
    served = stats.snapshot()
    print("per server thread:")
    for name in sorted(stats.handlers_run):
        print(
            f"  {name}: {stats.handlers_run[name]:>8} handlers run, "
            f"{served.get(name, 0):>8} requests served"
        )
    if figures["errors"] or not figures["requests"]:
        raise SystemExit(f"the load client saw errors: {figures['first_errors']}")


if __name__ == "__main__":
    main()
