"""The coroutine floor: the least a pure-Python coroutine loop can do.

One thread, one ``select.epoll`` (edge-triggered), tasks that are bare
coroutines, and a socket wrapper whose ``read_some`` / ``write_some`` try
the system call and, on ``EAGAIN``, await the fd's readiness.  No locks, no
cancellation, no work counting, no operation objects, no error checking
beyond what the system calls raise: what is left is the cost of a
coroutine resumption, a dictionary lookup and the system calls.  Running
corosio_py's own ping and echo coroutines on it shows how much of a
corosio_py round trip is the library (``floor_coroutines`` impls).
"""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any

#: How long an idle pass may wait before looking at ``stopping`` again.
STOP_CHECK = 0.05
_READ = select.EPOLLIN
_WRITE = select.EPOLLOUT


class _Ready:
    """Awaited by a task: park it until ``fd`` reports ``events``."""

    __slots__ = ("fd", "events")

    def __init__(self, fd: int, events: int) -> None:
        self.fd = fd
        self.events = events

    def __await__(self) -> Generator[_Ready, None, None]:
        yield self


class FloorSocket:
    """A non-blocking socket with the two awaitable calls the ping-pong
    coroutines use."""

    def __init__(self, loop: FloorLoop, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = loop
        loop.register(self._fd)

    # read_some and write_some are written out, not one helper: a shared
    # coroutine would add a frame per call to what the floor measures.
    async def read_some(self, buf: Any) -> int:
        while True:
            try:
                return self._sock.recv_into(buf)
            except BlockingIOError:
                await _Ready(self._fd, _READ)

    async def write_some(self, data: Any) -> int:
        while True:
            try:
                return self._sock.send(data)
            except BlockingIOError:
                await _Ready(self._fd, _WRITE)

    async def write_all(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += await self.write_some(view[sent:] if sent else data)
        return sent

    async def accept(self) -> socket.socket:
        while True:
            try:
                return self._sock.accept()[0]
            except BlockingIOError:
                await _Ready(self._fd, _READ)

    @property
    def no_delay(self) -> bool:
        return bool(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @no_delay.setter
    def no_delay(self, on: bool) -> None:
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))

    def close(self) -> None:
        self._loop.unregister(self._fd)
        self._sock.close()


class FloorLoop:
    """Runs coroutines to completion, resuming each when its fd is ready."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._ready: deque[Coroutine[Any, Any, Any]] = deque()
        #: (fd, events) -> the parked coroutine.
        self._parked: dict[tuple[int, int], Coroutine[Any, Any, Any]] = {}
        self._live = 0
        #: Set from any thread: ``run`` returns within :data:`STOP_CHECK` s
        #: (a floor has no cross-thread wake-up; an idle pass times out).
        self.stopping = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` (from a task of this loop)."""
        self._live += 1
        self._ready.append(coro)

    def register(self, fd: int) -> None:
        self._epoll.register(fd, _READ | _WRITE | select.EPOLLET)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def run(self, *coros: Coroutine[Any, Any, Any]) -> None:
        """Run ``coros`` (and what they spawn) until all have returned or
        :attr:`stopping` is set; an exception propagates."""
        for coro in coros:
            self.spawn(coro)
        ready = self._ready
        parked = self._parked
        poll = self._epoll.poll
        try:
            while self._live and not self.stopping:
                while ready:
                    coro = ready.popleft()
                    try:
                        wait = coro.send(None)
                    except StopIteration:
                        self._live -= 1
                        continue
                    parked[wait.fd, wait.events] = coro
                if not self._live:
                    break
                for fd, events in poll(STOP_CHECK):
                    if events & (_READ | select.EPOLLHUP | select.EPOLLERR):
                        woken = parked.pop((fd, _READ), None)
                        if woken is not None:
                            ready.append(woken)
                    if events & (_WRITE | select.EPOLLHUP | select.EPOLLERR):
                        woken = parked.pop((fd, _WRITE), None)
                        if woken is not None:
                            ready.append(woken)
        finally:
            for coro in [*ready, *parked.values()]:
                coro.close()
            self._epoll.close()


def floor_pingpong(client: socket.socket, server: socket.socket, n: int, warm: int) -> Any:
    """corosio_py's ping and echo coroutines (:mod:`tools.bench._net`) over
    one connected pair, on the floor loop; returns their ping result with
    the echo count."""
    from tools.bench._net import corosio_stream_echo, corosio_stream_ping

    loop = FloorLoop()
    echoed = [0]
    result: list[Any] = []

    async def ping() -> None:
        result.append(await corosio_stream_ping(FloorSocket(loop, client), warm + n, warm))

    loop.run(corosio_stream_echo(FloorSocket(loop, server), echoed), ping())
    lat, bad, _ = result[0]
    return lat, bad, echoed[0]
