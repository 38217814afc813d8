"""The benchmark tools the README's figures rest on: the coroutine floor
(``tools/bench/_floor_coro.py``) and the call-count profiler
(``tools/bench/profile.py``)."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the floor loop uses epoll")


@needs_epoll
def test_floor_pingpong_runs_corosio_coroutines_to_completion() -> None:
    from tools.bench._floor_coro import floor_pingpong

    a, b = socket.socketpair()
    lat, bad, echoed = floor_pingpong(a, b, 200, 20)
    assert len(lat) == 200
    assert bad == 0
    assert echoed == 220 * 64
    assert a.fileno() == -1 and b.fileno() == -1  # both closed by the coroutines


@needs_epoll
def test_floor_loop_parks_on_a_full_buffer_and_stops_when_asked() -> None:
    from tools.bench._floor_coro import FloorLoop, FloorSocket

    loop = FloorLoop()
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    wrote: list[int] = []

    async def writer() -> None:
        sock = FloorSocket(loop, a)
        wrote.append(await sock.write_all(b"x" * (1 << 20)))  # parks: nobody reads

    runner = threading.Thread(target=loop.run, args=(writer(),))
    runner.start()
    time.sleep(0.2)
    assert runner.is_alive() and not wrote
    loop.stopping = True
    runner.join(5)
    assert not runner.is_alive()
    a.close()
    b.close()


@needs_epoll
def test_profile_counts_calls_and_system_calls_per_round_trip() -> None:
    from tools.bench import load
    from tools.bench.profile import profile_cell, render

    prof = profile_cell(load("socket_latency"), "floor_coroutines", None, "quick")
    assert prof.unit == "round trip"
    assert prof.units == 3500  # n + warmup of the quick size
    # Per round trip: two sends, two receives that succeed, two that would
    # block, and the readiness waits between them.
    assert 6 <= prof.per_unit(prof.syscalls) <= 12
    assert prof.per_unit(prof.python_calls) >= 2  # at least both coroutines resume
    assert prof.lock_ops == 0
    assert abs(sum(prof.shares.values()) - 1.0) < 1e-6
    report = render([prof])
    assert "| socket_latency | floor_coroutines | round trip |" in report
