"""corosio_py: one IOContext, N threads running it, coroutine networking.

A Python port of the design of Boost.Corosio: any number of threads may call
:meth:`IOContext.run` at once; exactly one of them at a time waits in the OS
readiness API (epoll, kqueue, poll or select) while the others run
completions.  Tasks, timers, TCP sockets and race-free cancellation are built
on that scheduler.
"""

from __future__ import annotations

from ._acceptor import TCPAcceptor as TCPAcceptor
from ._cancel import StopSource as StopSource
from ._cancel import StopToken as StopToken
from ._context import Executor as Executor
from ._context import IOContext as IOContext
from ._context import WorkGuard as WorkGuard
from ._endpoint import Endpoint as Endpoint
from ._errors import Cancelled as Cancelled
from ._files import RandomAccessFile as RandomAccessFile
from ._files import StreamFile as StreamFile
from ._group import TaskGroup as TaskGroup
from ._group import gather as gather
from ._reactor import available_backends as available_backends
from ._resolve import resolve as resolve
from ._server import TCPServer as TCPServer
from ._signals import SignalSet as SignalSet
from ._socket import TCPSocket as TCPSocket
from ._tasks import Task as Task
from ._tasks import current_executor as current_executor
from ._tasks import current_task as current_task
from ._tasks import run as run
from ._tasks import spawn as spawn
from ._tasks import yield_now as yield_now
from ._timeout import timeout as timeout
from ._timer import Timer as Timer
from ._timer import sleep as sleep

__version__ = "0.1.0"

__all__ = (
    "Cancelled",
    "Endpoint",
    "Executor",
    "IOContext",
    "RandomAccessFile",
    "SignalSet",
    "StopSource",
    "StopToken",
    "StreamFile",
    "TCPAcceptor",
    "TCPServer",
    "TCPSocket",
    "Task",
    "TaskGroup",
    "Timer",
    "WorkGuard",
    "available_backends",
    "current_executor",
    "current_task",
    "gather",
    "resolve",
    "run",
    "sleep",
    "spawn",
    "timeout",
    "yield_now",
)
