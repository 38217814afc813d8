"""Certificates and TLS peers for the TLS tests.

Everything is made at test time with the ``openssl`` command: a CA, a
server certificate for ``localhost``/``127.0.0.1`` signed by it, a client
certificate signed by it (for mutual TLS), and a second, untrusted CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from corosio_py import TLSStream

#: Skip reason when the openssl command is missing.
NO_OPENSSL = "the openssl command is not installed"


def have_openssl() -> bool:
    """Whether the ``openssl`` command is on PATH."""
    return shutil.which("openssl") is not None


@dataclass(frozen=True)
class Certs:
    """Paths of the generated PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_context(self, *, require_client: bool = False) -> ssl.SSLContext:
        """A server context with the server certificate (asking the client
        for one signed by the CA when ``require_client``)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca)
        return ctx

    def client_context(
        self, *, with_cert: bool = False, trust: Path | None = None
    ) -> ssl.SSLContext:
        """A client context trusting the CA (or ``trust``), optionally with
        the client certificate."""
        ctx = ssl.create_default_context(cafile=str(trust or self.ca))
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key.name, "-out", cert.name, "-days", "2",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    _run(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={name}",
        cwd=directory,
    )
    (directory / f"{name}.ext").write_text(ext)
    _run(
        "x509", "-req", "-in", csr.name, "-CA", ca[0].name, "-CAkey", ca[1].name,
        "-CAcreateserial", "-out", cert.name, "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )
    return cert, key


def make_certs(directory: Path) -> Certs:
    """Generate every certificate into ``directory``."""
    ca = _ca(directory, "test-ca")
    other = _ca(directory, "other-ca")
    server = _leaf(
        directory, "localhost", ca,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    client = _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    return Certs(ca[0], server[0], server[1], client[0], client[1], other[0])


async def handshake_pair(
    ctx: object,
    client_ctx: ssl.SSLContext,
    server_ctx: ssl.SSLContext,
    hostname: str | None = "localhost",
) -> tuple[TLSStream, TLSStream]:
    """Two TLSStreams over a ``socket_pair``, handshaken concurrently:
    ``(client, server)``."""
    import corosio_py
    from corosio_py.testing import socket_pair

    a, b = socket_pair(ctx)  # type: ignore[arg-type]
    client = TLSStream(a, client_ctx, server_hostname=hostname)
    server = TLSStream(b, server_ctx, server_side=True)
    other = corosio_py.spawn(ctx, server.handshake())  # type: ignore[arg-type]
    try:
        await client.handshake()
    except BaseException:
        client.close()  # the server's handshake ends too (its error is not the point)
        server.close()
        try:
            await other
        except BaseException:
            pass
        raise
    try:
        await other
    except BaseException:
        client.close()
        server.close()
        raise
    return client, server


async def read_all(stream: TLSStream, total: int, bufsize: int = 65536) -> bytes:
    """Read until ``total`` bytes came (fails on an early EOF)."""
    out = bytearray()
    buf = bytearray(bufsize)
    while len(out) < total:
        n = await stream.read_some(buf)
        assert n, f"EOF after {len(out)} of {total} bytes"
        out += buf[:n]
    return bytes(out)
