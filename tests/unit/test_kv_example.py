"""The sharded key-value example: strands keep every shard consistent."""

from __future__ import annotations

import socket

import pytest

from corosio_py.examples import kv_store

pytestmark = pytest.mark.usefixtures("fd_leak_check")


def test_selftest_loses_no_increment(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert kv_store.selftest(100, 4, backend)
    assert "OK: no increment lost" in capsys.readouterr().out


def test_commands(backend: str) -> None:
    ctx, server, workers = kv_store.serve("127.0.0.1", 0, 2, backend)
    try:
        port = server.local_endpoint().port
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        with conn, conn.makefile("rb") as replies:
            script = [
                (b"SET a hello", b"OK"),
                (b"GET a", b"hello"),
                (b"get missing", b"(nil)"),
                (b"INCR a", b"ERR value is not an integer"),
                (b"INCR n", b"1"),
                (b"INCR n", b"2"),
                (b"DEL n", b"1"),
                (b"DEL n", b"0"),
                (b"FROB x", b"ERR unknown command or wrong number of arguments"),
                (b"GET", b"ERR expected: VERB key [value]"),
            ]
            conn.sendall(b"".join(cmd + b"\r\n" for cmd, _ in script))
            for cmd, want in script:
                assert replies.readline().rstrip(b"\n") == want, cmd
    finally:
        server.stop()
        ctx.stop()
        for worker in workers:
            worker.join(10)
        ctx.close()
