"""Where the time goes: ``python -m tools.bench.profile``.

Runs benchmark cells in this process under :mod:`cProfile` (every thread
the run starts is profiled too) and reports, per unit of work (a round
trip, a request, a callback, ...):

* Python-level function calls (coroutine resumptions count as calls),
* calls into C functions made from Python, of which lock acquisitions and
  system calls (readiness waits included) are counted apart,
* how the profiled time splits between corosio_py's layers (task driver,
  scheduler, reactor, I/O objects), the workload's own code, locks, system
  calls and the peer framework's Python code.

The counts are exact; the time shares carry cProfile's per-call overhead
(it inflates call-heavy code), so read them as a ranking, not as µs.  The
speed figures themselves come from ``python -m tools.bench``, never from
here.

Example::

    python -m tools.bench.profile --workload socket_latency,udp_echo \\
        --impl corosio_py,corosio_py_hint1,asyncio_streams,uvloop_streams
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import WORKLOADS, load
from ._spec import COROSIO, Measurement, RunArgs, Workload

#: Units of work of one run, from its parameters and its measurement.
Units = Callable[[Mapping[str, Any], Measurement], float]


def _round_trips(params: Mapping[str, Any], _: Measurement) -> float:
    return float(params["n"] + params.get("warmup", 0))


def _param(name: str) -> Units:
    return lambda params, _: float(params[name])


UNITS: dict[str, tuple[str, Units]] = {
    "post_throughput": ("callback", _param("n")),
    "cross_thread_post": (
        "callback", lambda p, _: float(p["producers"] * p["per_producer"])
    ),
    "coroutine_resumes": ("resume", _param("m")),
    "timers": ("timer", _param("n")),
    "socket_latency": ("round trip", _round_trips),
    "unix_pingpong": ("round trip", _round_trips),
    "udp_echo": ("round trip", _round_trips),
    "fan_out": ("round trip", lambda p, _: float(p["conns"] * p["rounds"])),
    "accept_churn": ("connection", _param("n")),
    "socket_throughput": ("MiB", _param("total_mib")),
    "tls_throughput": ("MiB", _param("total_mib")),
    "tls_handshakes": ("connection", _param("connections")),
    "http_wrk": ("request", lambda _, m: float(m.extra["served"])),
    "https_wrk": ("request", lambda _, m: float(m.extra["served"])),
    "sync_lock": ("acquire", _param("m")),
    "sync_queue": ("item", _param("n")),
}

#: corosio_py's modules by layer (file name -> layer); the rest is "other".
_LAYERS: dict[str, str] = {}
for _layer, _names in {
    "task driver": "_tasks _task_ops _ops _cancel _spawn _group _timeout _waiters _waiting",
    "scheduler": "_threaded _lockless _scheduler _idle _interrupt _checks _context _workers",
    "reactor": "_epoll _kqueue _poll _select _level _base _kqueue_emulation",
    "I/O objects": (
        "_descriptor _io_ops _stream _datagram _udp _local _local_acceptor _socket "
        "_sockbase _buffers _endpoint _acceptor _server _handle _fdstate _connect _wait"
    ),
    "timers": "_timers _timer _sleep",
    "TLS": "_tls _tls_engine _tls_role _tls_server _tls_write",
}.items():
    for _name in _names.split():
        _LAYERS[_name] = _layer

_SYSCALL_METHODS = (
    "send", "recv", "recv_into", "sendto", "recvfrom", "recvfrom_into", "sendmsg",
    "recvmsg", "accept", "_accept", "connect", "connect_ex", "read", "write",
    "readinto", "close", "shutdown",
)
_WAIT_LABELS = (
    "'poll' of 'select.epoll", "'poll' of 'select.poll", "'control' of 'select.kqueue",
    "<built-in method select.select>",
)


def _c_kind(name: str) -> str:
    """A C function's bucket from cProfile's label, e.g. ``<method 'send' of
    '_socket.socket' objects>``.  Waits for readiness are a bucket of their
    own: they hold the idle time of a server waiting for its clients."""
    if "acquire' of '_thread" in name or "release' of '_thread" in name:
        return "locks (incl. waiting)"
    if any(label in name for label in _WAIT_LABELS):
        return "readiness waits (incl. idle)"
    for method in _SYSCALL_METHODS:
        if f"'{method}' of '_socket" in name:
            return "other system calls"
    if name in ("<built-in method posix.read>", "<built-in method posix.write>"):
        return "other system calls"
    return "other C calls"


def _python_kind(filename: str) -> str:
    path = filename.replace("\\", "/")
    if "/corosio_py/examples/" in path or "/tools/bench/" in path:
        return "workload code"
    if "/corosio_py/" in path:
        stem = path.rsplit("/", 1)[-1].removesuffix(".py")
        return "corosio_py: " + _LAYERS.get(stem, "other")
    for peer in ("asyncio", "uvloop", "trio"):
        if f"/{peer}/" in path:
            return f"{peer} (Python)"
    return "other Python"


@dataclass
class Profile:
    """The reduced profile of one cell."""

    workload: str
    impl: str
    unit: str
    units: float
    python_calls: int = 0
    c_calls: int = 0
    lock_ops: int = 0
    syscalls: int = 0
    shares: dict[str, float] = field(default_factory=dict)

    def per_unit(self, count: int) -> float:
        return count / self.units if self.units else float("nan")


def reduce_stats(stats: pstats.Stats, workload: str, impl: str, unit: str, units: float) -> Profile:
    """Count calls by kind and split the profiled time by layer."""
    out = Profile(workload, impl, unit, units)
    times: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (primitive, _total, tottime, _cum, _callers) in raw.items():
        if filename == "~":
            kind = _c_kind(name)
            out.c_calls += primitive
            if kind.startswith("locks"):
                # acquire and release each count: one lock operation is a pair
                out.lock_ops += primitive if "acquire" in name else 0
            elif kind != "other C calls":
                out.syscalls += primitive
        else:
            kind = _python_kind(filename)
            out.python_calls += primitive
        times[kind] = times.get(kind, 0.0) + tottime
    total = sum(times.values()) or 1.0
    out.shares = {k: v / total for k, v in sorted(times.items(), key=lambda kv: -kv[1])}
    return out


class _ThreadProfiles:
    """Profiles every thread started while installed (cProfile only sees the
    thread that enables it): the first profile event of a new thread
    replaces this hook with a fresh profiler of that thread."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        prof = cProfile.Profile()
        with self._lock:
            self.profiles.append(prof)
        prof.enable()


def profile_cell(workload: Workload, impl_name: str, backend: str | None, size: str) -> Profile:
    """Run one cell once in this process, profiled."""
    unit, units_of = UNITS[workload.name]
    impl = workload.impl(impl_name)
    params = dict(workload.sizes[workload.size(size)])
    if impl.family == COROSIO and backend is None:
        import corosio_py

        backend = corosio_py.available_backends()[0]
    args = RunArgs(
        impl.name, backend if impl.family == COROSIO else None,
        impl.threads[0], params, impl.family, impl.concurrency_hint,
    )
    threads = _ThreadProfiles()
    main = cProfile.Profile()
    threading.setprofile(threads.hook)
    main.enable()
    try:
        measurement = workload.measure(args, impl.run)
    finally:
        main.disable()
        threading.setprofile(None)
    stats = pstats.Stats(main)
    for prof in threads.profiles:
        stats.add(prof)
    return reduce_stats(stats, workload.name, impl.name, unit, units_of(params, measurement))


def render(profiles: Sequence[Profile]) -> str:
    """A markdown report: a count table, then each cell's time shares."""
    lines = [
        "| workload | implementation | unit | Python calls / unit | C calls / unit "
        "| lock acquisitions / unit | system calls / unit |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {p.workload} | {p.impl} | {p.unit} | {p.per_unit(p.python_calls):.1f} "
        f"| {p.per_unit(p.c_calls):.1f} | {p.per_unit(p.lock_ops):.1f} "
        f"| {p.per_unit(p.syscalls):.1f} |"
        for p in profiles
    )
    lines.append("")
    lines.append("Profiled time by layer (cProfile; a ranking, inflated for call-heavy code):")
    lines.append("")
    for p in profiles:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in p.shares.items() if v >= 0.01)
        lines.append(f"- **{p.workload} / {p.impl}**: {shares}")
    return "\n".join(lines) + "\n"


def _split(values: Sequence[str]) -> list[str]:
    return [v for item in values for v in item.split(",") if v]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tools.bench.profile", description=summary)
    parser.add_argument("--workload", action="append", default=[],
                        help=f"comma-separated; profilable: {', '.join(UNITS)}")
    parser.add_argument("--impl", action="append", default=[],
                        help="comma-separated implementations (default: all of each workload)")
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--size", default="quick", help="workload size (default: quick)")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    ns = parser.parse_args(argv)
    names = _split(ns.workload) or ["socket_latency"]
    wanted = set(_split(ns.impl))
    profiles: list[Profile] = []
    for name in names:
        if name not in WORKLOADS or name not in UNITS:
            parser.error(f"cannot profile {name!r}; profilable: {', '.join(UNITS)}")
        workload = load(name)
        reason = workload.unavailable() if workload.unavailable else None
        if reason:
            print(f"{name}: skipped: {reason}", file=sys.stderr)
            continue
        for impl in workload.impls:
            if wanted and impl.name not in wanted:
                continue
            print(f"profiling {name} / {impl.name} ...", file=sys.stderr)
            profiles.append(profile_cell(workload, impl.name, ns.backend, ns.size))
    report = render(profiles)
    sys.stdout.write(report)
    if ns.out:
        with open(ns.out, "w", encoding="utf-8") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
