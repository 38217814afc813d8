"""resolve(): getaddrinfo on a helper thread, the result posted back.

Name resolution blocks for as long as DNS takes, so it never runs on a
thread of the context (least of all the reactor).  Each call runs
``getaddrinfo`` on a short-lived daemon thread; the result comes back as a
task resumption posted to the context (posting from a foreign thread is
thread-safe).  Exactly once: the thread's result and a cancel race to claim
the operation under its lock; the loser does nothing, so a result that
arrives after a cancel is simply dropped.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

from ._endpoint import Endpoint, from_sockaddr
from ._errors import Cancelled
from ._ops import PENDING, Operation

if TYPE_CHECKING:
    from ._cancel import StopToken
    from ._tasks import Task

__all__ = ("resolve",)

_FAMILIES = (int(socket.AF_INET), int(socket.AF_INET6))


class _ResolveOp(Operation):
    """One lookup.  ``_claimed`` and ``_task`` are guarded by ``_lock``."""

    __slots__ = ("__weakref__", "_host", "_port", "_lock", "_claimed", "_task")

    def __init__(self, host: str | None, port: int | str, stop_token: StopToken | None) -> None:
        self.stop_token = stop_token
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._claimed = False
        self._task: Task[Any] | None = None

    def start(self, task: Task[Any]) -> object:
        sched = task._sched
        # Counted before the thread can complete it (8.3); tracked so that
        # IOContext.close() abandons it and the late result posts nothing.
        sched.work_started()
        self._task = task
        task.context._track(self)
        thread = threading.Thread(target=self._lookup, name="corosio-resolve", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._claimed = True  # nobody else can see the op yet
            sched.work_finished()
            raise
        return PENDING

    def _lookup(self) -> None:
        """The helper thread: resolve, then complete unless already claimed."""
        result: list[Endpoint] | None = None
        error: BaseException | None = None
        try:
            infos = socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            result = []
            for info in infos:
                # Skip families an Endpoint cannot hold (typeshed types
                # getaddrinfo's family as AF_INET | AF_INET6 only).
                if int(info[0]) not in _FAMILIES:
                    continue
                endpoint = from_sockaddr(info[4])
                if endpoint not in result:
                    result.append(endpoint)
        except Exception as exc:
            error = exc
        with self._lock:
            if self._claimed:
                return  # cancelled or abandoned: drop the late result
            self._claimed = True
            task = self._task
        assert task is not None
        task._sched.post_counted(task.wakeup(result, error))

    def cancel(self, task: Task[Any]) -> bool:
        with self._lock:
            if self._claimed or self._task is not task:
                return False
            self._claimed = True
        task._sched.post_counted(task.wakeup(None, Cancelled()))
        return True

    def _shutdown(self) -> None:
        """The context is closing: abandon without posting."""
        with self._lock:
            self._claimed = True


async def resolve(
    host: str | None, port: int | str, *, stop_token: StopToken | None = None
) -> list[Endpoint]:
    """Look up ``host`` and return its TCP endpoints for ``port``.

    The lookup (``getaddrinfo``) runs on a helper thread, never on a thread
    of the context.  Endpoints keep getaddrinfo's order, without duplicates.

    :raises socket.gaierror: when the name does not resolve (an ``OSError``).
    :raises TypeError: for a non-str host or a port that is neither int nor str.
    :raises Cancelled: when cancelled (the thread's late result is dropped).
    """
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise TypeError(f"port must be an int or str, not {type(port).__name__}")
    result: list[Endpoint] = await _ResolveOp(host, port, stop_token)
    return result
