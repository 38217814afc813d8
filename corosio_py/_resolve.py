"""resolve(): getaddrinfo on a helper thread, the result handed back.

Name resolution blocks for as long as DNS takes, so it never runs on a
thread of the context (least of all the reactor).  Each call runs
``getaddrinfo`` on a short-lived daemon thread.  Exactly once: the thread's
result and a cancel race to claim the operation under its lock; the loser
does nothing, so a result that arrives after a cancel is simply dropped.

How the result gets back depends on the context:

* Default (any number of threads): the helper thread posts the task's
  resumption (posting from a foreign thread is thread-safe).
* ``concurrency_hint=1``: the scheduler takes no locks, so no other thread
  may touch it -- not even ours.  The operation then registers the read end
  of a socket pair with the reactor; the helper thread only sends one byte
  on it, and the context's own thread completes the operation from the
  readiness report (:meth:`_ResolveOp.on_ready`).  A socket pair rather
  than a pipe: the send passes MSG_NOSIGNAL, so a wake-up whose reader was
  already closed (cancel) can never raise SIGPIPE.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._descriptor import MSG_NOSIGNAL
from ._endpoint import Endpoint, from_sockaddr
from ._endpoint import _port as check_port  # the one port check (TypeError, ValueError)
from ._errors import Cancelled
from ._ops import PENDING, Operation
from ._socket import configure_socket

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._scheduler import Scheduler
    from ._tasks import Task

__all__ = ("resolve",)

_FAMILIES = (int(socket.AF_INET), int(socket.AF_INET6))


def _getaddrinfo(host: str | None, port: int | str) -> list[Endpoint]:
    """The blocking lookup: TCP endpoints in getaddrinfo's order, no duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    result: list[Endpoint] = []
    for info in infos:
        # Skip families an Endpoint cannot hold (typeshed types getaddrinfo's
        # family as AF_INET | AF_INET6 only, hence the int()).
        if int(info[0]) not in _FAMILIES:
            continue
        endpoint = from_sockaddr(info[4])
        if endpoint not in result:
            result.append(endpoint)
    return result


class _ResolveOp(Operation):
    """One lookup; also the reactor target of its wake pipe (hint 1 only).

    ``_claimed``, ``_result``, ``_error`` and ``_wake_read`` are guarded by
    ``_lock``; ``_task`` and ``_sched`` are written once in :meth:`start`
    before the helper thread exists.  ``_wake_write`` belongs to the helper
    thread once started (it writes and closes it).
    """

    __slots__ = (
        "__weakref__",
        "_host",
        "_port",
        "_lock",
        "_claimed",
        "_task",
        "_sched",
        "_result",
        "_error",
        "_wake_read",
        "_wake_write",
    )

    def __init__(self, host: str | None, port: int | str, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._claimed = False
        self._task: Task[Any] | None = None
        self._sched: Scheduler | None = None
        self._result: list[Endpoint] | None = None
        self._error: BaseException | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None

    def start(self, task: Task[Any]) -> object:
        sched = task._sched
        self._task = task
        self._sched = sched
        # Counted before the thread can complete it (8.3); tracked so that
        # IOContext.close() abandons it and a late result posts nothing.
        sched.work_started()
        try:
            task.context._track(self)
            if sched.single_threaded:
                self._open_wake_pipe(sched)
            thread = threading.Thread(target=self._lookup, name="corosio-resolve", daemon=True)
            thread.start()
        except BaseException:
            self._claimed = True  # nobody else can see the op yet
            self._close_wake_pipe()
            if self._wake_write is not None:
                self._wake_write.close()
            sched.work_finished()
            raise
        return PENDING

    # ------------------------------------------------------------ helper thread

    def _lookup(self) -> None:
        """The helper thread: resolve, then hand the result back once."""
        result: list[Endpoint] | None = None
        error: BaseException | None = None
        try:
            result = _getaddrinfo(self._host, self._port)
        except Exception as exc:
            error = exc
        wake = self._wake_write
        if wake is not None:
            # Single-threaded context: store, then wake its reactor; the
            # context's thread completes the op in on_ready.
            with self._lock:
                self._result, self._error = result, error
            try:
                wake.send(b"\0", MSG_NOSIGNAL)
            except OSError:
                pass  # the read end is closed: cancelled or abandoned
            finally:
                wake.close()
            return
        with self._lock:
            if self._claimed:
                return  # cancelled or abandoned: drop the late result
            self._claimed = True
        task = self._task
        assert task is not None
        task._sched.post_counted(task.wakeup(result, error))

    # ------------------------------------------------------------ wake pipe (hint 1)

    def _open_wake_pipe(self, sched: Scheduler) -> None:
        # Sockets are close-on-exec by default (PEP 446).
        reader, writer = socket.socketpair()
        self._wake_read, self._wake_write = reader, writer
        reader.setblocking(False)
        configure_socket(writer)  # SO_NOSIGPIPE where MSG_NOSIGNAL is missing
        sched.reactor.register(reader.fileno(), self)

    def _close_wake_pipe(self) -> None:
        """Deregister and close the read end (the context's thread, or setup)."""
        with self._lock:
            reader, self._wake_read = self._wake_read, None
        if reader is not None:
            sched = self._sched
            assert sched is not None
            sched.reactor.deregister(reader.fileno())
            reader.close()

    def wants_read(self) -> bool:
        """Level-triggered backends: watch the wake socket until the op completes."""
        with self._lock:
            return self._wake_read is not None

    def wants_write(self) -> bool:
        """Never: only the read end is registered."""
        return False

    def on_ready(self, bits: int, out: deque[Callable[[], object]]) -> None:
        """The helper thread wrote its byte: complete on the context's thread."""
        with self._lock:
            if self._claimed or (self._result is None and self._error is None):
                return  # already cancelled, or a spurious report
            self._claimed = True
            result, error = self._result, self._error
        self._close_wake_pipe()
        task = self._task
        assert task is not None
        out.append(task.wakeup(result, error))

    # ------------------------------------------------------------ cancellation

    def cancel(self, task: Task[Any]) -> bool:
        with self._lock:
            if self._claimed or self._task is not task:
                return False
            self._claimed = True
        self._close_wake_pipe()
        task._sched.post_counted(task.wakeup(None, Cancelled()))
        return True

    def _shutdown(self) -> None:
        """The context is closing: abandon without posting."""
        with self._lock:
            self._claimed = True
        self._close_wake_pipe()


async def resolve(
    host: str | None, port: int | str, *, stop_token: StopToken | None = None
) -> list[Endpoint]:
    """Look up ``host`` and return its TCP endpoints for ``port``.

    The lookup (``getaddrinfo``) runs on a helper thread, never on a thread
    of the context.  Endpoints keep getaddrinfo's order, without duplicates.
    ``port`` is a number in ``0..65535`` (an int or a string of digits) or a
    service name (``"http"``).

    :raises socket.gaierror: when the name does not resolve (an ``OSError``).
    :raises TypeError: for a non-str host, a port that is neither int nor
        str, or a ``stop_token`` that is not a StopToken.
    :raises ValueError: for a port number outside ``0..65535`` (as
        :class:`Endpoint` and ``connect`` do; getaddrinfo would wrap it).
    :raises Cancelled: when cancelled (the thread's late result is dropped).
    """
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise TypeError(f"port must be an int or str, not {type(port).__name__}")
    if isinstance(port, int):
        check_port(port)
    elif port.isascii() and port.isdigit():
        check_port(int(port))
    result: list[Endpoint] = await _ResolveOp(host, port, stop_token)
    return result
