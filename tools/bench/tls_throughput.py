"""tls_throughput: ``total`` bytes in 64 KiB writes over one TLS 1.3
loopback connection (AES-256-GCM records).

Sender and receiver are in one context / loop.  Timed from just before the
first write until the receiver has counted ``total`` decrypted bytes.
Figure: MB/s (10^6 plaintext bytes per second).  The stream carries the
pattern of :mod:`tools.bench.socket_throughput` and the receiver checks
three bytes of every read against it.

impls:
  corosio_py        ``TLSStream`` over ``socket_pair``; sender
                    ``write_some`` of 64 KiB windows, receiver
                    ``read_some`` into a 256 KiB buffer.
  asyncio_streams / uvloop_streams  ``asyncio.start_server(ssl=)`` /
                    ``open_connection(ssl=)``, ``write(chunk); await drain()``
                    / ``await reader.read(65536)`` (asyncio's SSL transport,
                    uvloop's SSL transport).
"""

from __future__ import annotations

from typing import Any

from tools.bench import _tls
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload
from tools.bench._worker import worker_main
from tools.bench.socket_throughput import Result, asyncio_transfer, checked, corosio_transfer


def _corosio(args: RunArgs, total: int, certs: _tls.Certs) -> Result:
    from corosio_py import TLSStream

    def wrap(a: Any, b: Any) -> tuple[Any, Any]:
        return (
            TLSStream(a, certs.client_context(), server_hostname="localhost"),
            TLSStream(b, certs.server_context(), server_side=True),
        )

    return corosio_transfer(args, total, wrap)


def _asyncio(args: RunArgs, total: int, certs: _tls.Certs) -> Result:
    return asyncio_transfer(
        args, total, server_ssl=certs.server_context(), client_ssl=certs.client_context(),
        server_hostname="localhost",
    )


def measure(args: RunArgs, run: Runner) -> Measurement:
    total = args.params["total_mib"] << 20
    with _tls.Certs() as certs:
        return checked(total, run(args, total, certs))


WORKLOAD = Workload(
    name="tls_throughput",
    title="bulk transfer in 64 KiB writes over one TLS 1.3 loopback connection",
    figures=(Figure("mb_per_s", "throughput", "MB/s"),),
    impls=(
        Impl("corosio_py", COROSIO, _corosio),
        Impl("asyncio_streams", "asyncio", _asyncio),
        Impl("uvloop_streams", "uvloop", _asyncio),
    ),
    sizes={"anchor": {"total_mib": 512}, "full": {"total_mib": 128}, "quick": {"total_mib": 32}},
    measure=measure,
    references={"asyncio": "asyncio_streams", "uvloop": "uvloop_streams"},
    unavailable=_tls.unavailable,
    warmup_all=False,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
