"""Certificates and contexts shared by the TLS workloads.

Each worker makes a fresh CA and a server certificate for ``localhost`` /
``127.0.0.1`` with the ``openssl`` command (outside the timed part).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path


def unavailable() -> str | None:
    """Why a TLS workload cannot run here (None: it can)."""
    if shutil.which("openssl") is None:
        return "the openssl command is not installed"
    return None


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    """A temporary CA and server certificate; :meth:`close` removes them."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="corosio-bench-tls-")
        d = self._dir.name
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
        _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=localhost", cwd=d)
        Path(d, "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext", cwd=d)
        self.ca = str(Path(d, "ca.pem"))
        self.cert = str(Path(d, "server.pem"))
        self.key = str(Path(d, "server.key"))

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.3 server context (the certificate above)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """TLS 1.3 client context trusting the CA."""
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return ctx

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> Certs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
