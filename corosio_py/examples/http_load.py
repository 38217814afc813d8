"""A keep-alive HTTP/1.1 load client built on corosio_py.

``python -m corosio_py.examples.http_load --port 8080 --connections 32
--duration 5`` opens the connections, sends ``GET /`` requests back to back
on each for the duration, checks every response, and prints one JSON line:
requests, errors, requests per second and latency percentiles (µs).
``--tls-ca ca.pem`` speaks HTTPS instead, trusting that CA.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time

import corosio_py as cio

from .http_server import add_backend_argument, port_number, positive_float, positive_int

__all__ = ("add_load_arguments", "main", "run_load")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    k = min(len(values) - 1, max(0, round(q / 100.0 * len(values) + 0.5) - 1))
    return values[k]


async def _client(
    host: str,
    port: int,
    deadline: float,
    latencies: list[float],
    errors: list[str],
    tls: ssl.SSLContext | None,
) -> int:
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")
    tcp = cio.TCPSocket(cio.current_executor().context)
    sock: cio.TCPSocket | cio.TLSStream = tcp
    done = 0
    try:
        await tcp.connect((host, port))
        tcp.no_delay = True
        if tls is not None:
            sock = cio.TLSStream(tcp, tls, server_hostname=host)
            await sock.handshake()
        buf = bytearray()
        chunk = bytearray(65536)
        view = memoryview(chunk)
        clock = time.perf_counter
        while clock() < deadline:
            start = clock()
            await sock.write_all(request)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(buf[:end]).decode("latin-1").lower()
                    length = 0
                    for line in head.split("\r\n"):
                        if line.startswith("content-length:"):
                            length = int(line.split(":", 1)[1])
                    if len(buf) >= end + 4 + length:
                        if not head.startswith("http/1.1 200"):
                            errors.append(head.split("\r\n", 1)[0])
                        del buf[: end + 4 + length]
                        break
                n = await sock.read_some(view)
                if n == 0:
                    raise ConnectionResetError("server closed the connection")
                buf += view[:n]
            latencies.append((clock() - start) * 1e6)
            done += 1
    except OSError as error:  # ssl.SSLError included
        errors.append(repr(error))
    finally:
        sock.close()
    return done


def client_tls_context(ca: str) -> ssl.SSLContext:
    """A client context trusting the CA certificate in the PEM file ``ca``."""
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["http/1.1"])
    return context


def run_load(
    host: str,
    port: int,
    connections: int,
    duration: float,
    backend: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> dict[str, object]:
    """Drive the server (over TLS with ``tls``); return the figures as a dict."""
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> list[int]:
        deadline = time.perf_counter() + duration
        return await cio.gather(
            *(_client(host, port, deadline, latencies, errors, tls) for _ in range(connections))
        )

    start = time.perf_counter()
    counts = cio.run(main(), backend=backend)
    elapsed = time.perf_counter() - start
    latencies.sort()
    total = sum(counts)
    return {
        "requests": total,
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1),
        "p50_us": round(_percentile(latencies, 50), 1),
        "p90_us": round(_percentile(latencies, 90), 1),
        "p99_us": round(_percentile(latencies, 99), 1),
        "max_us": round(latencies[-1], 1) if latencies else 0.0,
    }


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """``--connections`` and ``--duration`` of the load."""
    parser.add_argument(
        "--connections",
        type=positive_int,
        default=32,
        help="concurrent keep-alive connections of the load client (default: 32)",
    )
    parser.add_argument(
        "--duration", type=positive_float, default=5.0, help="seconds of load (default: 5)"
    )


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: print the figures as one JSON line."""
    parser = argparse.ArgumentParser(
        description="corosio_py HTTP load client: keep-alive GET / requests back to "
        "back on every connection; prints one JSON line of figures.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, required=True, help="server port")
    parser.add_argument(
        "--tls-ca", default=None, help="speak HTTPS, trusting this CA certificate (PEM)"
    )
    add_load_arguments(parser)
    add_backend_argument(parser)
    args = parser.parse_args(argv)
    tls = None if args.tls_ca is None else client_tls_context(args.tls_ca)
    figures = run_load(args.host, args.port, args.connections, args.duration, args.backend, tls)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
