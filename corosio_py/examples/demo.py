"""The main demo (``make demo``): the HTTP server under load.

Starts the HTTP/1.1 keep-alive server of :mod:`corosio_py.examples.http_server`
on 127.0.0.1 served by several threads of one IOContext (as many as pay for
themselves on this interpreter, unless ``--threads`` says), drives it for 5 seconds
with the load client of :mod:`corosio_py.examples.http_load` in a separate
process, then prints requests per second, latency percentiles and how many
handlers (and requests) each server thread ran.  ``--tls`` serves HTTPS
instead, with a certificate made for the run by the ``openssl`` command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from corosio_py._scheduler import gil_enabled

from .http_load import add_load_arguments
from .http_server import add_backend_argument, positive_int, serve, shutdown, tls_context


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


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signs for ``localhost``/``127.0.0.1``, made
    with the ``openssl`` command in ``directory``: (CA cert, cert, key)."""
    if shutil.which("openssl") is None:
        raise SystemExit("--tls needs the openssl command (Debian: apt-get install openssl)")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=corosio_py demo CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "server.ext")
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


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
    parser.add_argument(
        "--tls", action="store_true", help="serve and load over HTTPS (needs openssl)"
    )
    add_load_arguments(parser)
    add_backend_argument(parser, " of the server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corosio_py-demo-") as directory:
        _demo(args, Path(directory))


def _demo(args: argparse.Namespace, directory: Path) -> None:
    """Serve, load, print (certificates, if any, go to ``directory``)."""
    if args.threads is None:
        args.threads, why = default_threads()
    else:
        why = "chosen with --threads"
    print(f"{args.threads} server thread(s): {why}", flush=True)

    tls = None
    tls_args: list[str] = []
    if args.tls:
        ca, cert, key = make_certificate(directory)
        tls = tls_context(str(cert), str(key))
        tls_args = ["--tls-ca", str(ca)]
    ctx, server, stats, workers = serve("127.0.0.1", 0, args.threads, args.backend, tls=tls)
    port = server.local_endpoint().port
    scheme = "HTTPS" if args.tls else "HTTP"
    print(
        f"{scheme} server on 127.0.0.1:{port}: {args.threads} threads on one IOContext "
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
                *tls_args,
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
