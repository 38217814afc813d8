"""Helper threads for blocking system calls (the file service).

A file read or write can block for as long as the disk takes, so it never
runs on a thread of a context: :func:`submit` hands it to one of these
threads, as upstream's POSIX file service hands its calls to a thread pool.
Threads are started on demand, up to :data:`MAX_THREADS`; one idle for
:data:`IDLE_SECONDS` exits.  They are daemon threads: a call that never
returns (a FIFO without a writer) cannot keep the interpreter alive.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ("MAX_THREADS", "submit")

logger = logging.getLogger("corosio_py")

#: The most helper threads alive at once (as ``ThreadPoolExecutor``'s default).
MAX_THREADS: Final = min(32, (os.cpu_count() or 1) + 4)
#: A helper thread with nothing to do for this long exits.
IDLE_SECONDS: Final = 10.0


class _Pool:
    """Jobs and the threads that run them; every field is guarded by ``_cond``'s lock."""

    __slots__ = ("_cond", "_jobs", "_idle", "_threads")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Callable[[], object]] = deque()
        self._idle = 0  # threads waiting for a job
        self._threads = 0  # threads alive (or starting)

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job()`` on a helper thread (its exceptions are its own business).

        :raises RuntimeError: when no helper thread exists and none can be
            started (the job is then not queued).
        """
        cond = self._cond
        with cond:
            self._jobs.append(job)
            if self._idle >= len(self._jobs):
                cond.notify()  # each notify wakes a different waiter
                return
            if self._threads >= MAX_THREADS:
                return  # a busy thread takes it when it is done
            self._threads += 1
        try:
            thread = threading.Thread(target=self._work, name="corosio-worker", daemon=True)
            thread.start()
        except BaseException:
            with cond:
                self._threads -= 1
                try:
                    self._jobs.remove(job)
                except ValueError:
                    return  # another thread took it: it runs
            raise

    def _work(self) -> None:
        cond = self._cond
        jobs = self._jobs
        while True:
            with cond:
                while not jobs:
                    self._idle += 1
                    woken = cond.wait(IDLE_SECONDS)
                    self._idle -= 1
                    if not woken and not jobs:
                        self._threads -= 1
                        return
                job = jobs.popleft()
            try:
                job()
            except Exception:  # a job handles its own errors; never lose the thread
                logger.exception("a helper thread's job raised")
            del job  # drop the job's references before waiting again


_pool: Final = _Pool()


def submit(job: Callable[[], object]) -> None:
    """Run ``job()`` on a helper thread, never on a thread of a context.

    The one entry point of the pool, so that whoever owns helper threads can
    swap the implementation without touching the callers.

    :raises RuntimeError: when no thread can be started.
    """
    _pool.submit(job)
