"""Reliability stress (issue 10): Ctrl-C round after round against a busy
multi-threaded context, and a read loop under tiny timeouts that must not
lose a byte.

Each test runs once per reactor backend.  See _util.py for seed, scale and
deadlines.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import corosio_py as cio
from corosio_py.testing import socket_pair
from tests.stress._util import Stress, Threads, close_context, make_context, scaled, timeout_for

pytestmark = pytest.mark.stress

#: The Ctrl-C program shared with the unit tests (run in a subprocess: a
#: SIGINT in the pytest process would end the session).
SIGINT_SCRIPT = Path(__file__).resolve().parent.parent / "unit" / "sigint_rounds.py"

# ---------------------------------------------------------------- Ctrl-C

SIGINT_ROUNDS = 1000


@pytest.mark.timeout(timeout_for(60))
@pytest.mark.parametrize("gil", ["1", "0"], ids=["gil", "nogil"])
def test_ctrl_c_rounds_against_busy_runners(backend: str, gil: str, stress: Stress) -> None:
    """4 runners (the main thread and 3 others) on self-reposting handlers,
    blocking handlers, sleeping tasks and echo pairs; SIGINT to the main
    thread at a random moment of each round: every round its ``run()``
    raises ``KeyboardInterrupt`` and nothing else, the other runners never
    see an exception, and ``close()`` ends them all promptly."""
    rounds = scaled(SIGINT_ROUNDS, minimum=20)
    stress.begin(rounds, 60, backend=backend, gil=gil)
    seed = stress.rng.randrange(1 << 30)
    env = dict(os.environ)
    package_root = str(Path(cio.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["COROSIO_ASSUME_GIL"] = gil
    # The script dumps its threads' stacks before our own timeout hits.
    env["SIGINT_ROUNDS_HANG_LIMIT"] = str(max(10.0, stress.remaining() - 10.0))
    argv = [sys.executable, str(SIGINT_SCRIPT), "busy", backend, str(rounds), str(seed)]
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=stress.remaining()
        )
    except subprocess.TimeoutExpired as exc:
        stress.fail(f"the Ctrl-C rounds (script seed {seed}) hung; output:\n{exc.stdout!s}")
    report = f"script seed {seed}, exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    stress.check(proc.returncode == 0, report)
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    stress.check(summary["ok"] and summary["rounds"] == rounds, report)
    stress.summary(
        rounds=rounds,
        max_latency=summary["max_latency"],
        close_seconds=summary["close_seconds"],
    )


# ---------------------------------------------------------------- timeout reads

#: Bytes streamed per round at scale 1 (rounds scale, not the size).
STREAM_BYTES = 64 * 1024
STREAM_ROUNDS = 100
#: The read loop's timeouts: from "already expired" to a few reactor passes.
TIMEOUTS = (0.0, 0.00002, 0.0001, 0.0003, 0.001)
RUNNERS = 4


async def _stream(sock: cio.TCPSocket, data: bytes, seed: int) -> None:
    """Write ``data`` in random chunks with random pauses, then half-close."""
    rng = random.Random(seed)
    view = memoryview(data)
    sent = 0
    while sent < len(data):
        sent += await sock.write_some(view[sent : sent + rng.randint(1, 2048)])
        if rng.random() < 0.5:
            await cio.sleep(rng.choice(TIMEOUTS))
    sock.shutdown(socket.SHUT_WR)


async def _read_with_timeouts(sock: cio.TCPSocket, seed: int) -> tuple[bytes, int]:
    """The loop of the issue: every read under its own tiny timeout."""
    rng = random.Random(seed)
    buf = bytearray(rng.choice((64, 512, 4096)))
    got = bytearray()
    timeouts = 0
    while True:
        try:
            with cio.timeout(rng.choice(TIMEOUTS)):
                n = await sock.read_some(buf)
        except TimeoutError:
            timeouts += 1
            continue
        if n == 0:
            return bytes(got), timeouts
        got += buf[:n]


@pytest.mark.timeout(timeout_for(120))
@pytest.mark.parametrize("gil", ["1", "0"], ids=["gil", "nogil"])
def test_timeout_read_loop_loses_no_byte(
    backend: str, gil: str, stress: Stress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``with timeout(t): n = await sock.read_some(buf)`` in a loop with tiny
    random ``t`` against a writer streaming a known byte sequence, on 4
    runner threads: every byte arrives exactly once, in order.  Both ways of
    scheduling (GIL: one licensed thread; free-threaded: completions handed
    to idle threads at once, where the race is most frequent) whatever this
    interpreter is."""
    monkeypatch.setenv("COROSIO_ASSUME_GIL", gil)
    rounds = scaled(STREAM_ROUNDS, minimum=2)
    stress.begin(rounds, 120, backend=backend, gil=gil, bytes_per_round=STREAM_BYTES)
    total_timeouts = 0
    done = 0
    for debug, count in stress.phases(rounds):
        for _ in range(count):
            stress.check_deadline(f"after {done} rounds")
            seed = stress.rng.randrange(1 << 30)
            data = random.Random(seed).randbytes(STREAM_BYTES)
            ctx = make_context(backend, debug=debug)
            try:
                a, b = socket_pair(ctx)
                writer = cio.spawn(ctx, _stream(a, data, seed + 1))
                reader = cio.spawn(ctx, _read_with_timeouts(b, seed + 2))
                runners = Threads(stress, "runner")
                for _ in range(RUNNERS):
                    runners.start(ctx.run)
                runners.join_or_fail("the stream round", ctx=ctx)
                stress.check(writer.done() and reader.done(), "run() returned early")
                writer.result()
                got, timeouts = reader.result()
            finally:
                close_context(ctx)
            total_timeouts += timeouts
            if got != data:
                at = next(
                    (i for i, (x, y) in enumerate(zip(got, data, strict=False)) if x != y),
                    min(len(got), len(data)),
                )
                stress.fail(
                    f"round {done} (debug={debug}, data seed {seed}): received "
                    f"{len(got)} of {len(data)} bytes, first difference at {at}, "
                    f"{timeouts} timeouts"
                )
            done += 1
            stress.progress(done, timeouts=total_timeouts)
    stress.summary(rounds=done, timeouts=total_timeouts)
