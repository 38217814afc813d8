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
from ._connect import connect_any as connect_any
from ._context import Executor as Executor
from ._context import IOContext as IOContext
from ._context import WorkGuard as WorkGuard
from ._endpoint import Endpoint as Endpoint
from ._errors import Cancelled as Cancelled
from ._files import RandomAccessFile as RandomAccessFile
from ._files import StreamFile as StreamFile
from ._group import TaskGroup as TaskGroup
from ._group import gather as gather
from ._local import LocalDatagramSocket as LocalDatagramSocket
from ._local import LocalStreamSocket as LocalStreamSocket
from ._local import local_socket_pair as local_socket_pair
from ._local_acceptor import LocalStreamAcceptor as LocalStreamAcceptor
from ._local_acceptor import LocalStreamServer as LocalStreamServer
from ._queue import Queue as Queue
from ._queue import QueueEmpty as QueueEmpty
from ._queue import QueueFull as QueueFull
from ._reactor import available_backends as available_backends
from ._resolve import resolve as resolve
from ._server import TCPServer as TCPServer
from ._signals import SignalSet as SignalSet
from ._socket import TCPSocket as TCPSocket
from ._spawn import current_executor as current_executor
from ._spawn import current_task as current_task
from ._spawn import run as run
from ._spawn import spawn as spawn
from ._strand import Strand as Strand
from ._sync import Condition as Condition
from ._sync import Event as Event
from ._sync import Lock as Lock
from ._sync import Semaphore as Semaphore
from ._task_ops import yield_now as yield_now
from ._tasks import Task as Task
from ._timeout import timeout as timeout
from ._timer import Timer as Timer
from ._timer import sleep as sleep
from ._tls import TLSStream as TLSStream
from ._to_thread import to_thread as to_thread
from ._udp import UDPSocket as UDPSocket
from ._wait import WaitType as WaitType
from ._waiting import shield as shield
from ._waiting import wait_for as wait_for

__version__ = "0.1.0"

__all__ = (
    "Cancelled",
    "Condition",
    "Endpoint",
    "Event",
    "Executor",
    "IOContext",
    "LocalDatagramSocket",
    "LocalStreamAcceptor",
    "LocalStreamServer",
    "LocalStreamSocket",
    "Lock",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "RandomAccessFile",
    "Semaphore",
    "SignalSet",
    "StopSource",
    "StopToken",
    "Strand",
    "StreamFile",
    "TCPAcceptor",
    "TCPServer",
    "TCPSocket",
    "TLSStream",
    "Task",
    "TaskGroup",
    "Timer",
    "UDPSocket",
    "WaitType",
    "WorkGuard",
    "available_backends",
    "connect_any",
    "current_executor",
    "current_task",
    "gather",
    "local_socket_pair",
    "resolve",
    "run",
    "shield",
    "sleep",
    "spawn",
    "timeout",
    "to_thread",
    "wait_for",
    "yield_now",
)
