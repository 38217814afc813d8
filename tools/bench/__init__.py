"""corosio_py benchmark suite: ``python -m tools.bench [--quick] [--workload NAME]``.

Each workload is a module of this package that defines ``WORKLOAD``
(a :class:`tools.bench._spec.Workload`) and ends with
``if __name__ == "__main__": worker_main(WORKLOAD)``.  Registering a new
workload is one line: add its module name to :data:`WORKLOADS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._spec import Workload

#: Module names under ``tools.bench``, in suite order.  One line per workload.
WORKLOADS: tuple[str, ...] = (
    "post_throughput",
    "cross_thread_post",
    "mt_scaling",
    "mt_scaling_20us",
    "coroutine_resumes",
    "timers",
    "gil_release",
    "socket_latency",
    "socket_throughput",
    "fan_out",
    "accept_churn",
    "udp_echo",
    "unix_pingpong",
    "http_wrk",
    "sync_lock",
    "sync_queue",
    "strand_post",
    "tls_handshakes",
    "tls_throughput",
    "https_wrk",
    "file_read",
    # Not in the default suite (suite=False): run with --workload.
    "io_context",
    "io_context_mt",
)


def load(name: str) -> Workload:
    """Import ``tools.bench.<name>`` and return its ``WORKLOAD``."""
    if name not in WORKLOADS:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    module = importlib.import_module(f"{__name__}.{name}")
    workload: Workload = module.WORKLOAD
    return workload
