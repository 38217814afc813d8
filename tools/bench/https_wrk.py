"""https_wrk: the example server over HTTPS under ``wrk`` load.

As :mod:`tools.bench.http_wrk` (``wrk -t1 -c64``, keep-alive ``GET /``,
the same checks), with TLS 1.3: the corosio_py example runs
``TCPServer(..., ssl=)`` (its ``--tls-cert/--tls-key`` path); the asyncio
and uvloop servers are the same streams handler behind
``asyncio.start_server(..., ssl=)``.  wrk makes 64 TLS connections, then
keeps them: the figure is mostly record encryption and decryption per
request, not handshakes (see :mod:`tools.bench.tls_handshakes`).
"""

from __future__ import annotations

from tools.bench import _tls
from tools.bench._spec import Measurement, RunArgs, Runner, Workload
from tools.bench._worker import worker_main
from tools.bench.http_wrk import WORKLOAD as HTTP
from tools.bench.http_wrk import measure as measure_http
from tools.bench.http_wrk import unavailable as wrk_unavailable


def unavailable() -> str | None:
    """Why this workload cannot run here (None: it can)."""
    return wrk_unavailable() or _tls.unavailable()


def measure(args: RunArgs, run: Runner) -> Measurement:
    with _tls.Certs() as certs:
        context = certs.server_context()
        context.set_alpn_protocols(["http/1.1"])
        return measure_http(args, run, context, certs.ca)


WORKLOAD = Workload(
    name="https_wrk",
    title=HTTP.title.replace("HTTP/1.1 server", "HTTPS server (TLS 1.3)"),
    figures=HTTP.figures,
    impls=HTTP.impls,
    sizes=HTTP.sizes,
    measure=measure,
    references=HTTP.references,
    unavailable=unavailable,
    reps=HTTP.reps,
    warmup_all=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
