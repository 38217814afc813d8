"""Unit tests for the reactor backends, run on every backend available here.

The reactors are driven directly with real sockets and a trivial target; no
scheduler is involved.  Timing assertions use generous bounds: "promptly"
means well under :data:`PROMPT`, and a wait that must not be cut short is
checked against a slightly lowered bound, never an upper one that load could
break.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import pytest

from corosio_py._reactor import (
    ERROR,
    READ,
    WRITE,
    Reactor,
    ReadinessTarget,
    available_backends,
    create_reactor,
    default_backend,
)
from corosio_py._reactor._select import ERROR_POLL_INTERVAL
from tests.unit.limits import JOIN, LONG, PROMPT
from tests.unit.thread_helpers import start

pytestmark = pytest.mark.timeout(60)

BACKENDS = available_backends()
#: Slack for timers that fire a little early (rounding, clock granularity).
EARLY = 0.01
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Events = list[tuple[ReadinessTarget, int]]


class Target:
    """A readiness target whose interest the test sets directly."""

    def __init__(self, read: bool = True, write: bool = True, error: bool = False) -> None:
        self.read = read
        self.write = write
        self.error = error

    def wants_read(self) -> bool:
        return self.read

    def wants_write(self) -> bool:
        return self.write

    def wants_error(self) -> bool:
        return self.error

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        raise AssertionError("reactors never call on_ready")


def register(reactor: Reactor, fd: int, target: Target) -> None:
    """Register ``target`` the way a descriptor ends up watched: writes too
    when it wants them (edge-triggered backends add them on demand)."""
    reactor.register(fd, target)
    if target.write:
        reactor.watch_writes(fd)


def _is_edge_triggered(name: str) -> bool:
    reactor = create_reactor(name)
    try:
        return type(reactor).edge_triggered
    finally:
        reactor.close()


LEVEL_BACKENDS = tuple(name for name in BACKENDS if not _is_edge_triggered(name))


@pytest.fixture(params=BACKENDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = create_reactor(request.param)
    yield r
    r.close()


@pytest.fixture(params=LEVEL_BACKENDS)
def level_reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = create_reactor(request.param)
    yield r
    r.close()


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return a, b


@pytest.fixture(params=["socketpair", "tcp"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair() if request.param == "socketpair" else _tcp_pair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def bits_for(events: Events, target: Target) -> int:
    """OR of every report for ``target`` in ``events`` (0 if none)."""
    bits = 0
    for t, b in events:
        if t is target:
            bits |= b
    return bits


def settle(reactor: Reactor) -> None:
    """Consume pending reports (registration edges, interrupts) until quiet."""
    for _ in range(20):
        if not reactor.wait(0.05):
            return
    raise AssertionError("reactor never went quiet")


def wait_until(reactor: Reactor, target: Target, bit: int) -> int:
    """Run passes until ``target`` gets ``bit``; return the bits of that pass."""
    deadline = time.monotonic() + LONG
    while time.monotonic() < deadline:
        bits = bits_for(reactor.wait(PROMPT), target)
        if bits & bit:
            return bits
    raise AssertionError(f"bit {bit:#x} never reported")


def timed_wait(reactor: Reactor, timeout: float | None) -> tuple[Events, float]:
    start = time.monotonic()
    events = reactor.wait(timeout)
    return events, time.monotonic() - start


@contextlib.contextmanager
def refused_connect() -> Iterator[socket.socket]:
    """A non-blocking socket whose connect to a closed local port is pending."""
    # A bound socket that never listens: nothing can accept on its port.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        with socket.socket() as s:
            s.setblocking(False)
            assert s.connect_ex(blocker.getsockname()) in (errno.EINPROGRESS, errno.ECONNREFUSED)
            yield s


# -- interrupts --------------------------------------------------------------


def test_interrupt_before_wait_is_sticky(reactor: Reactor) -> None:
    reactor.interrupt()
    # The watchdog only turns a broken wake-up into a failure instead of a hang.
    watchdog = threading.Timer(5.0, reactor.interrupt)
    watchdog.start()
    try:
        events, elapsed = timed_wait(reactor, None)
    finally:
        watchdog.cancel()
        watchdog.join()
    assert events == []
    assert elapsed < PROMPT


def test_interrupt_from_other_thread_wakes_blocked_wait(reactor: Reactor) -> None:
    waker = threading.Timer(0.1, reactor.interrupt)
    waker.start()
    try:
        events, elapsed = timed_wait(reactor, LONG)
    finally:
        waker.join()
    assert events == []
    assert 0.1 - EARLY <= elapsed < PROMPT


def test_duplicate_interrupts_are_consumed(reactor: Reactor) -> None:
    for _ in range(3):
        reactor.interrupt()
    assert reactor.wait(0) == []
    assert reactor.wait(0) == []
    events, elapsed = timed_wait(reactor, 0.05)
    assert events == []
    assert elapsed >= 0.05 - EARLY


def test_interrupt_rearms_after_it_is_consumed(reactor: Reactor) -> None:
    for _ in range(3):
        reactor.interrupt()
        events, elapsed = timed_wait(reactor, LONG)
        assert events == []
        assert elapsed < PROMPT


@pytest.mark.parametrize("timeout", [30 * 86400.0, 1e9, math.inf], ids=["30days", "1e9", "inf"])
def test_huge_timeout_waits_until_interrupted(reactor: Reactor, timeout: float) -> None:
    # Beyond ~24.8 days epoll/poll overflow their int of milliseconds, and
    # select cannot take infinity: the OS wait must be clamped instead.
    waker = threading.Timer(0.1, reactor.interrupt)
    waker.start()
    try:
        events, elapsed = timed_wait(reactor, timeout)
    finally:
        waker.join()
    assert events == []
    assert 0.1 - EARLY <= elapsed < PROMPT


@pytest.mark.parametrize("timeout", [1e9, math.inf])
def test_huge_timeout_reports_readiness(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket], timeout: float
) -> None:
    a, b = pair
    target = Target(read=True, write=False)
    register(reactor, b.fileno(), target)
    settle(reactor)
    a.send(b"x")
    events, elapsed = timed_wait(reactor, timeout)
    assert bits_for(events, target) & READ
    assert elapsed < PROMPT


def test_os_wait_timeout_clamps() -> None:
    from corosio_py._reactor._base import MAX_OS_WAIT, os_wait_timeout

    assert os_wait_timeout(None) is None
    assert os_wait_timeout(1.5) == 1.5
    for low in (0.0, -1.0, -math.inf, math.nan):
        assert os_wait_timeout(low) == 0.0
    for high in (MAX_OS_WAIT, 1e9, 1e300, math.inf):
        assert os_wait_timeout(high) == MAX_OS_WAIT


def test_failed_interrupt_raises_and_does_not_stay_armed(
    reactor: Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise OSError(errno.EIO, "refused")

    with monkeypatch.context() as patch:
        # eventfd: epoll and the emulated user event; write: every self-pipe.
        patch.setattr(os, "eventfd_write", refuse)
        patch.setattr(os, "write", refuse)
        with pytest.raises(OSError, match="refused"):
            reactor.interrupt()
    reactor.interrupt()
    events, elapsed = timed_wait(reactor, LONG)
    assert events == []
    assert elapsed < PROMPT


def test_close_is_idempotent_and_interrupt_after_close_is_ignored(reactor: Reactor) -> None:
    reactor.close()
    reactor.close()
    reactor.interrupt()


# -- readiness ---------------------------------------------------------------


def test_read_readiness(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    target = Target(read=True, write=False)
    register(reactor, b.fileno(), target)
    settle(reactor)
    a.send(b"x")
    assert wait_until(reactor, target, READ) & READ
    if type(reactor).edge_triggered:
        # Reported once per edge, however long the data sits unread...
        events, elapsed = timed_wait(reactor, 0.1)
        assert bits_for(events, target) == 0
        assert elapsed >= 0.1 - EARLY
        # ...and again for the next edge.
        a.send(b"y")
        assert wait_until(reactor, target, READ) & READ
    else:
        # Reported at every pass while the target wants it...
        assert bits_for(reactor.wait(0.1), target) & READ
        assert bits_for(reactor.wait(0.1), target) & READ
        # ...and not at all once it does not.
        target.read = False
        events, elapsed = timed_wait(reactor, 0.1)
        assert bits_for(events, target) == 0
        assert elapsed >= 0.1 - EARLY


def test_write_readiness_on_connected_socket(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    target = Target(read=False, write=True)
    register(reactor, a.fileno(), target)
    assert wait_until(reactor, target, WRITE) & WRITE


def test_edge_backends_report_writes_only_once_asked(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    target = Target(read=True, write=False)
    reactor.register(a.fileno(), target)
    if type(reactor).edge_triggered:
        # Registered for reads only: a writable socket is not reported ...
        assert bits_for(reactor.wait(0.05), target) & WRITE == 0
    # ... until writes are asked for, which reports the writable fd at once.
    target.write = True
    reactor.watch_writes(a.fileno())
    assert wait_until(reactor, target, WRITE) & WRITE


def test_one_report_per_target_per_pass(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.send(b"x")
    target = Target(read=True, write=True)
    register(reactor, b.fileno(), target)
    events = reactor.wait(LONG)
    assert [t for t, _ in events].count(target) == 1
    assert bits_for(events, target) & (READ | WRITE) == READ | WRITE


def test_one_pass_harvests_every_ready_target_into_a_list(reactor: Reactor) -> None:
    # The caller (the scheduler) walks the result after the OS wait: it must
    # be complete and materialised, not a generator abandoned on the first
    # exception from a target.
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        targets = [Target(read=True, write=False) for _ in pairs]
        for (_, b), target in zip(pairs, targets, strict=True):
            b.setblocking(False)
            register(reactor, b.fileno(), target)
        settle(reactor)
        for a, _ in pairs:
            a.send(b"x")
        events = reactor.wait(PROMPT)
        assert type(events) is list
        assert all(bits_for(events, target) & READ for target in targets)
    finally:
        for a, b in pairs:
            reactor.deregister(b.fileno())
            a.close()
            b.close()


def test_peer_close_reports_read(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    target = Target(read=True, write=False)
    register(reactor, b.fileno(), target)
    settle(reactor)
    a.close()
    assert wait_until(reactor, target, READ) & READ
    assert b.recv(16) == b""


def test_refused_connect_reports_error_or_write(reactor: Reactor) -> None:
    with refused_connect() as s:
        target = Target(read=True, write=True)
        register(reactor, s.fileno(), target)
        bits = wait_until(reactor, target, ERROR | WRITE)
        assert bits & (ERROR | WRITE)
        # The reactor must leave the pending error for the descriptor to read.
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (0, errno.ECONNREFUSED)
        reactor.deregister(s.fileno())


def test_deregister_stops_reports(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    target = Target(read=True, write=True)
    register(reactor, b.fileno(), target)
    settle_or_not = reactor.wait(0.05)
    assert bits_for(settle_or_not, target)  # it was being reported
    reactor.deregister(b.fileno())
    reactor.deregister(b.fileno())  # twice: ignored
    reactor.deregister(10**6)  # never registered: ignored
    settle(reactor)
    a.send(b"x")
    events, elapsed = timed_wait(reactor, 0.1)
    assert bits_for(events, target) == 0
    assert elapsed >= 0.1 - EARLY


def test_register_wakes_blocked_wait(
    reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.send(b"x")
    target = Target(read=True, write=False)
    registrar = threading.Timer(0.1, reactor.register, (b.fileno(), target))
    registrar.start()
    try:
        events, elapsed = timed_wait(reactor, LONG)
    finally:
        registrar.join()
    assert elapsed < PROMPT
    # Edge-triggered backends wake with the event itself, the others with
    # an interrupt followed by a pass that watches the new fd.
    assert bits_for(events, target) & READ or wait_until(reactor, target, READ) & READ


def test_fd_closed_while_registered_does_not_raise(reactor: Reactor) -> None:
    s = socket.socket()
    target = Target(read=True, write=True)
    register(reactor, s.fileno(), target)
    fd = s.fileno()
    s.close()  # without deregister: a contract breach the reactor survives
    reactor.wait(0)
    reactor.deregister(fd)


def test_timeouts_are_honoured(reactor: Reactor, pair: tuple[socket.socket, socket.socket]) -> None:
    _, b = pair
    register(reactor, b.fileno(), Target(read=True, write=False))
    settle(reactor)
    events, elapsed = timed_wait(reactor, 0.1)
    assert events == []
    assert 0.1 - EARLY <= elapsed < PROMPT
    for timeout in (0, -1.0):
        events, elapsed = timed_wait(reactor, timeout)
        assert events == []
        assert elapsed < PROMPT


# -- level-triggered specifics -------------------------------------------------


def test_level_error_only_interest_ignores_unread_data_and_sees_a_reset(
    level_reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.send(b"unread")
    target = Target(read=False, write=False, error=True)
    level_reactor.register(b.fileno(), target)
    if level_reactor.name == "poll":
        settle(level_reactor)
    else:
        level_reactor.wait(0)  # the registration's wake-up (select never goes quiet here)
    # Readable all along, but only errors are wanted: poll reports nothing,
    # select reports the fd no more often than its error-poll interval.
    events, elapsed = timed_wait(level_reactor, 0.2)
    if level_reactor.name == "poll":
        assert bits_for(events, target) == 0
        assert elapsed >= 0.2 - EARLY
    else:
        assert elapsed >= ERROR_POLL_INTERVAL - EARLY
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()  # RST
    assert wait_until(level_reactor, target, READ) & READ


def test_level_interest_changed_interrupts_and_rebuilds(
    level_reactor: Reactor, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    target = Target(read=False, write=False)
    level_reactor.register(b.fileno(), target)
    a.send(b"x")
    a.close()  # data and a hang-up: nothing but a lack of interest stops reports
    settle(level_reactor)

    def want_read() -> None:
        target.read = True
        level_reactor.interest_changed()

    changer = threading.Timer(0.1, want_read)
    changer.start()
    try:
        _, elapsed = timed_wait(level_reactor, LONG)
    finally:
        changer.join()
    assert elapsed < PROMPT
    assert wait_until(level_reactor, target, READ) & READ


@pytest.mark.skipif("select" not in BACKENDS, reason="no select backend")
def test_select_refuses_fds_it_cannot_watch() -> None:
    reactor = create_reactor("select")
    try:
        # Beyond FD_SETSIZE: an OSError like any other I/O failure of that
        # socket, so callers that handle OSError (a server's accept loop)
        # carry on.
        for fd in (1024, 5000):
            with pytest.raises(OSError, match="cannot watch") as info:
                register(reactor, fd, Target())
            assert info.value.errno == errno.EINVAL
        with pytest.raises(ValueError, match="cannot watch"):
            register(reactor, -1, Target())
    finally:
        reactor.close()


#: On the select backend, fills every fd below FD_SETSIZE so that the next
#: accepted connection lands above it: ``accept()`` must fail with
#: ``OSError(EINVAL)``, and a ``TCPServer`` must log, back off and go on
#: serving once fds are free again.
_HIGH_FD_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, resource, socket, sys, threading
    sys.path.insert(0, sys.argv[1])
    import corosio_py as cio

    LIMIT = 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * LIMIT:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2 * LIMIT, hard), hard))
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append([record.levelname, record.getMessage(), record.exc_info is not None])

    logging.getLogger("corosio_py").addHandler(Keep())
    logging.getLogger("corosio_py").setLevel(logging.DEBUG)

    def hog_low_fds():
        hogs = []
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= LIMIT:
                os.close(fd)
                return hogs
            hogs.append(fd)

    def release(hogs):
        for fd in hogs:
            os.close(fd)

    out = {}

    async def accept_high():
        acc = cio.TCPAcceptor(cio.current_executor().context, ("127.0.0.1", 0))
        hogs = hog_low_fds()
        client = socket.create_connection(("127.0.0.1", acc.local_endpoint().port))
        out["client_fd"] = client.fileno()
        try:
            await acc.accept()
            out["accept"] = "accepted"
        except OSError as exc:
            out["accept"] = [exc.errno, str(exc)]
        release(hogs)
        client.close()
        acc.close()

    cio.run(accept_high(), backend="select")

    async def greet(sock):
        await sock.write_all(b"hi")

    ctx = cio.IOContext(backend="select")
    server = cio.TCPServer(ctx, ("127.0.0.1", 0), greet)
    server.start()
    port = server.local_endpoint().port
    runner = threading.Thread(target=ctx.run)
    runner.start()
    hogs = hog_low_fds()
    first = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        out["first"] = first.recv(16).decode()
    except ConnectionResetError:
        out["first"] = "reset"
    release(hogs)
    first.close()
    second = socket.create_connection(("127.0.0.1", port), timeout=10)
    out["second"] = second.recv(16).decode()
    second.close()
    out["running"] = server.running
    server.stop()
    ctx.stop()
    runner.join(10)
    ctx.close()
    out["records"] = records
    print(json.dumps(out))
    """
)


@pytest.mark.skipif("select" not in BACKENDS, reason="no select backend")
def test_select_accept_beyond_fd_setsize_is_einval_and_server_survives() -> None:
    pytest.importorskip("resource")
    proc = subprocess.run(
        [sys.executable, "-c", _HIGH_FD_SCRIPT, REPO_ROOT],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["client_fd"] >= 1024
    code, message = out["accept"]
    assert code == errno.EINVAL
    assert "FD_SETSIZE" in message
    assert out["first"] in ("", "reset")  # that connection was closed
    assert out["second"] == "hi"  # the accept loop carried on
    assert out["running"] is True
    assert not [r for r in out["records"] if r[0] in ("ERROR", "CRITICAL") or r[2]], out
    assert any(r[0] == "WARNING" and "accept failed" in r[1] for r in out["records"]), out


# -- the ladder ------------------------------------------------------------------


def test_create_reactor_by_name_and_default() -> None:
    for name in BACKENDS:
        reactor = create_reactor(name)
        try:
            assert type(reactor).name == name
        finally:
            reactor.close()
    reactor = create_reactor(None)
    try:
        assert type(reactor).name == default_backend() == BACKENDS[0]
    finally:
        reactor.close()


def test_backend_ladder_on_this_platform() -> None:
    if hasattr(select, "kqueue"):
        assert BACKENDS[0] == "kqueue"
    elif hasattr(select, "epoll"):
        assert BACKENDS == ("epoll", "kqueue", "poll", "select")
    else:
        assert "epoll" not in BACKENDS
        assert "kqueue" not in BACKENDS
    assert BACKENDS[-1] == "select"


@pytest.mark.parametrize("name", ["nope", "EPOLL", ""])
def test_create_reactor_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="available") as info:
        create_reactor(name)
    for available in BACKENDS:
        assert available in str(info.value)


@pytest.mark.parametrize("name", [3, b"epoll", ["epoll"]])
def test_create_reactor_rejects_non_strings(name: object) -> None:
    with pytest.raises(TypeError):
        create_reactor(name)  # type: ignore[arg-type]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd")
@pytest.mark.parametrize("name", BACKENDS)
def test_close_releases_every_fd(name: str) -> None:
    a, b = socket.socketpair()
    try:
        before = sorted(os.listdir("/proc/self/fd"))
        reactor = create_reactor(name)
        register(reactor, a.fileno(), Target())
        register(reactor, b.fileno(), Target())
        reactor.interrupt()
        reactor.wait(0)
        reactor.interrupt()  # left pending on purpose
        reactor.deregister(a.fileno())
        reactor.close()
        reactor.close()
        assert sorted(os.listdir("/proc/self/fd")) == before
    finally:
        a.close()
        b.close()


# -- the shared parts: the bit table, the wake-ups, the reactor base ----------


def test_bit_table_ors_matching_rows_and_memoises() -> None:
    from corosio_py._reactor._bits import SAME, BitTable

    table = BitTable(((0x1, READ), (0x2, READ | ERROR), (0x4, WRITE)))
    assert table[0] == 0
    assert table[0x1] == READ
    assert table[0x3] == READ | ERROR
    assert table[0x7 | 0x100] == READ | ERROR | WRITE  # unknown bits ignored
    assert 0x3 in table  # stored: the next lookup is a plain dict probe
    for bits in (0, READ, WRITE, ERROR, READ | WRITE | ERROR):
        assert SAME[bits] == bits


class _Trigger:
    """A stand-in for a kqueue user-event trigger: counts, or refuses."""

    def __init__(self) -> None:
        self.calls = 0
        self.refuse = False

    def __call__(self) -> None:
        if self.refuse:
            raise OSError(errno.EIO, "refused")
        self.calls += 1


def _waker_kinds() -> list[str]:
    kinds = ["pipe", "user"]
    if sys.platform == "linux":
        kinds.append("eventfd")
    return kinds


@contextlib.contextmanager
def monkeypatch_os_refusals() -> Iterator[None]:
    """Make the eventfd and pipe writes fail with EIO, like a refused trigger."""

    def refuse(*args: object) -> None:
        raise OSError(errno.EIO, "refused")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "write", refuse)
        if hasattr(os, "eventfd_write"):
            patch.setattr(os, "eventfd_write", refuse)
        yield


@pytest.mark.parametrize("kind", _waker_kinds())
def test_waker_is_idempotent_sticky_and_never_stuck(kind: str) -> None:
    from corosio_py._reactor import _wake

    trigger = _Trigger()
    waker: _wake.Waker
    if kind == "pipe":
        waker = _wake.PipeWaker()
    elif kind == "user":
        waker = _wake.UserEventWaker(trigger)
    else:
        assert sys.platform == "linux"
        waker = _wake.EventFdWaker()

    def pending() -> bool:
        if kind == "user":
            return trigger.calls > 0
        return bool(select.select([waker.fd], [], [], 0)[0])

    try:
        assert (waker.fd == -1) == (kind == "user")
        for _ in range(3):
            waker.signal()
        assert pending()
        if kind == "user":
            assert trigger.calls == 1  # a burst costs one trigger
        waker.consume()
        trigger.calls = 0
        assert not pending()
        trigger.refuse = True
        with monkeypatch_os_refusals(), pytest.raises(OSError, match="refused"):
            waker.signal()
        trigger.refuse = False
        waker.signal()  # the failed signal left it disarmed
        assert pending()
    finally:
        waker.close()
    waker.close()
    trigger.calls = 0
    waker.signal()  # a no-op once closed
    waker.consume()
    assert trigger.calls == 0


def test_register_after_close_is_refused_and_deregister_ignored(reactor: Reactor) -> None:
    a, b = socket.socketpair()
    try:
        register(reactor, b.fileno(), Target())
        reactor.close()
        with pytest.raises(ValueError, match="closed"):
            register(reactor, a.fileno(), Target())
        reactor.deregister(b.fileno())
        reactor.deregister(a.fileno())
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name", BACKENDS)
def test_interrupts_racing_close_never_raise(name: str) -> None:
    reactor = create_reactor(name)
    started = threading.Barrier(3, timeout=JOIN)

    def hammer() -> None:
        started.wait()
        for _ in range(2000):
            reactor.interrupt()
            reactor.interest_changed()

    runners = [start(hammer) for _ in range(2)]
    started.wait()
    reactor.wait(0)
    reactor.close()
    for runner in runners:
        runner.finish()  # re-raises what interrupt() raised, if anything


# -- kqueue: the interrupt fallback and the Linux emulation ----------------------

needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="no epoll to emulate over")


def _kqueue_without_user_filter() -> Reactor:
    from corosio_py._reactor._kqueue import KqueueReactor, default_api, without_user_events

    return KqueueReactor(api=without_user_events(default_api()))


def _kqueue_with_refused_user_filter() -> Reactor:
    from dataclasses import replace

    from corosio_py._reactor._kqueue import KqueueReactor, default_api

    # No platform has a filter -99: registering the user event fails (EINVAL).
    return KqueueReactor(api=replace(default_api(), filter_user=-99))


@pytest.mark.skipif("kqueue" not in BACKENDS, reason="no kqueue backend")
@pytest.mark.parametrize(
    "make",
    [_kqueue_without_user_filter, _kqueue_with_refused_user_filter],
    ids=["unknown", "refused"],
)
def test_kqueue_falls_back_to_a_self_pipe(make: Callable[[], Reactor]) -> None:
    reactor = make()
    try:
        reactor.interrupt()
        reactor.interrupt()
        events, elapsed = timed_wait(reactor, LONG)
        assert events == []
        assert elapsed < PROMPT
        events, elapsed = timed_wait(reactor, 0.05)
        assert events == []
        assert elapsed >= 0.05 - EARLY
        waker = threading.Timer(0.1, reactor.interrupt)
        waker.start()
        try:
            _, elapsed = timed_wait(reactor, LONG)
        finally:
            waker.join()
        assert elapsed < PROMPT
    finally:
        reactor.close()


@pytest.fixture
def emulated() -> Iterator[object]:
    from corosio_py._reactor._kqueue_emulation import EmulatedKqueue

    kq = EmulatedKqueue()
    yield kq
    kq.close()


@needs_epoll
class TestEmulatedKqueue:
    """The epoll-backed ``select.kqueue`` stand-in behaves like kqueue."""

    def test_delete_of_unregistered_filter_is_enoent(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        try:
            with socket.socket() as s:
                for filt in (kqe.KQ_FILTER_READ, kqe.KQ_FILTER_WRITE, kqe.KQ_FILTER_USER):
                    with pytest.raises(FileNotFoundError) as info:
                        kq.control([kqe.kevent(s.fileno(), filt, kqe.KQ_EV_DELETE)], 0)
                    assert info.value.errno == errno.ENOENT
                # With room for events, the error comes back as an EV_ERROR event.
                change = kqe.kevent(s.fileno(), kqe.KQ_FILTER_READ, kqe.KQ_EV_DELETE)
                [event] = kq.control([change], 4, 0)
                assert event.flags & kqe.KQ_EV_ERROR
                assert event.data == errno.ENOENT
        finally:
            kq.close()

    def test_add_on_bad_fd_is_ebadf(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        try:
            s = socket.socket()
            fd = s.fileno()
            s.close()
            add = kqe.KQ_EV_ADD | kqe.KQ_EV_CLEAR
            with pytest.raises(OSError) as info:
                kq.control([kqe.kevent(fd, kqe.KQ_FILTER_READ, add)], 0)
            assert info.value.errno == errno.EBADF
        finally:
            kq.close()

    def test_user_event_is_reported_once_per_trigger(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        try:
            user = kqe.KQ_FILTER_USER
            kq.control([kqe.kevent(7, user, kqe.KQ_EV_ADD | kqe.KQ_EV_CLEAR, udata=42)], 0)
            assert kq.control(None, 4, 0) == []
            trigger = kqe.kevent(7, user, 0, kqe.KQ_NOTE_TRIGGER)
            kq.control([trigger], 0)
            kq.control([trigger], 0)
            [event] = kq.control(None, 4, 0)
            assert (event.ident, event.filter, event.udata) == (7, user, 42)
            assert kq.control(None, 4, 0) == []
            # A trigger from another thread wakes a blocked control().
            waker = threading.Timer(0.1, kq.control, ([trigger], 0))
            waker.start()
            try:
                start = time.monotonic()
                [event] = kq.control(None, 4, LONG)
                assert time.monotonic() - start < PROMPT
            finally:
                waker.join()
            kq.control([kqe.kevent(7, user, kqe.KQ_EV_DELETE)], 0)
            with pytest.raises(FileNotFoundError):
                kq.control([trigger], 0)
        finally:
            kq.close()

    def test_read_event_data_eof_and_split_batches(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        a, b = socket.socketpair()
        try:
            add = kqe.KQ_EV_ADD | kqe.KQ_EV_CLEAR
            fd = b.fileno()
            kq.control(
                [kqe.kevent(fd, kqe.KQ_FILTER_READ, add), kqe.kevent(fd, kqe.KQ_FILTER_WRITE, add)],
                0,
            )
            a.send(b"hello")
            # Room for one event at a time: the second is kept, not lost.
            first = kq.control(None, 1, 0)
            second = kq.control(None, 1, 0)
            assert kq.control(None, 1, 0) == []
            by_filter = {ev.filter: ev for ev in first + second}
            assert set(by_filter) == {kqe.KQ_FILTER_READ, kqe.KQ_FILTER_WRITE}
            assert by_filter[kqe.KQ_FILTER_READ].data == 5
            assert not by_filter[kqe.KQ_FILTER_READ].flags & kqe.KQ_EV_EOF
            a.close()
            events = kq.control(None, 4, LONG)
            [read] = [ev for ev in events if ev.filter == kqe.KQ_FILTER_READ]
            assert read.flags & kqe.KQ_EV_EOF
            assert read.data == 5  # still unread
        finally:
            a.close()
            b.close()
            kq.close()

    def test_refused_connect_sets_eof_and_fflags_on_write(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        try:
            with refused_connect() as s:
                add = kqe.KQ_EV_ADD | kqe.KQ_EV_CLEAR
                kq.control([kqe.kevent(s.fileno(), kqe.KQ_FILTER_WRITE, add)], 0)
                [write] = kq.control(None, 4, LONG)
                assert write.filter == kqe.KQ_FILTER_WRITE
                assert write.flags & kqe.KQ_EV_EOF
                assert write.fflags != 0
                # Not taken from SO_ERROR, which Linux clears on reading.
                assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (
                    0,
                    errno.ECONNREFUSED,
                )
        finally:
            kq.close()

    def test_close(self) -> None:
        from corosio_py._reactor import _kqueue_emulation as kqe

        kq = kqe.EmulatedKqueue()
        assert not kq.closed
        assert kq.fileno() >= 0
        kq.close()
        kq.close()
        assert kq.closed
        with pytest.raises(ValueError, match="closed"):
            kq.control(None, 1, 0)


# -- platforms without epoll (macOS, the BSDs) ------------------------------------

_EMULATION = os.path.join(REPO_ROOT, "corosio_py", "_reactor", "_kqueue_emulation.py")

#: Strips ``select`` of epoll like macOS's, optionally gives it a kqueue
#: (the emulation, loaded under another name before the names go, with its
#: own view of the real ``select``), then imports corosio_py and does I/O.
_NO_EPOLL_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, select, sys, types
    mode, root, emulation = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("fake_kqueue", emulation)
    fake = sys.modules["fake_kqueue"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fake.select = types.SimpleNamespace(**vars(select))
    for name in [n for n in dir(select) if n == "epoll" or n.startswith("EPOLL")]:
        delattr(select, name)
    if mode == "kqueue":
        select.kqueue = fake.EmulatedKqueue
        select.kevent = fake.kevent
        for name in [n for n in dir(fake) if n.startswith("KQ_")]:
            setattr(select, name, getattr(fake, name))
    sys.path.insert(0, root)
    import corosio_py as cio
    from corosio_py.testing import socket_pair

    async def main():
        ctx = cio.current_executor().context
        a, b = socket_pair(ctx)
        await a.write_all(b"ping")
        buf = bytearray(4)
        n = await b.read_some(buf)
        await cio.sleep(0.01)
        a.close()
        b.close()
        return [ctx.backend, bytes(buf[:n]).decode()]

    backend, got = cio.run(main())
    loaded = sorted(m for m in sys.modules if m.startswith("corosio_py._reactor."))
    print(json.dumps({"available": cio.available_backends(), "backend": backend,
                      "got": got, "loaded": loaded}))
    """
)


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="needs epoll to strip (and emulate)")
@pytest.mark.parametrize(("mode", "expected"), [("none", "poll"), ("kqueue", "kqueue")])
def test_imports_and_runs_without_epoll(mode: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _NO_EPOLL_SCRIPT, mode, REPO_ROOT, _EMULATION],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["backend"] == out["available"][0] == expected
    assert "epoll" not in out["available"]
    assert out["got"] == "ping"
    assert "corosio_py._reactor._epoll" not in out["loaded"]
    assert "corosio_py._reactor._kqueue_emulation" not in out["loaded"]
