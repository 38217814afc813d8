"""The helper threads: where every blocking call of the package runs.

A blocking call -- ``getaddrinfo`` (``resolve``), a user's function
(``to_thread``), a file read or write -- never runs on a thread of a
context, least of all the reactor: :func:`submit` hands it to one of these
threads, as upstream's POSIX file service hands its calls to a thread pool.
One pool serves the whole process.

* Threads are started on demand, up to :data:`MAX_THREADS`; jobs beyond
  that queue for a free thread.  A thread idle for :data:`IDLE_SECONDS`
  exits.
* They are daemon threads: a call that never returns (a FIFO opened with no
  writer, a ``to_thread`` function still running) cannot keep the
  interpreter from exiting; it is abandoned there.
* A forked child has none of its parent's threads, so it starts afresh
  with an empty pool of its own.
* Submitted jobs that have not finished are counted: :func:`settle` waits
  for that count to reach zero (for tests).

A job hands its outcome back itself, with the context's
``Scheduler.post_counted``, which is safe from any thread on both schedulers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ("IDLE_SECONDS", "MAX_THREADS", "settle", "submit")

logger = logging.getLogger("corosio_py")

#: The most helper threads alive at once (``ThreadPoolExecutor``'s default).
MAX_THREADS: Final = min(32, (os.cpu_count() or 1) + 4)
#: A helper thread with nothing to do for this long exits.
IDLE_SECONDS: Final = 10.0


class _Pool:
    """Jobs and the threads that run them; every field is guarded by one
    lock (a leaf lock: nothing is taken under it), shared by ``_cond``
    (a job was queued) and ``_settled`` (nothing is in flight)."""

    __slots__ = ("_cond", "_settled", "_jobs", "_idle", "_threads", "_in_flight")

    def __init__(self) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._settled = threading.Condition(lock)
        self._jobs: deque[Callable[[], object]] = deque()
        self._idle = 0  # threads waiting for a job
        self._threads = 0  # threads alive (or starting)
        self._in_flight = 0  # jobs submitted and not finished (queued or running)

    def submit(self, job: Callable[[], object]) -> None:
        """See :func:`submit`."""
        cond = self._cond
        with cond:
            self._jobs.append(job)
            self._in_flight += 1
            if self._idle >= len(self._jobs):
                cond.notify()  # each notify wakes a different waiter
                return
            if self._threads >= MAX_THREADS:
                return  # a busy thread takes it when it is done
            self._threads += 1
        try:
            thread = threading.Thread(target=self._work, name="corosio-helper", daemon=True)
            thread.start()
        except BaseException:
            with cond:
                self._threads -= 1
                try:
                    self._jobs.remove(job)
                except ValueError:
                    return  # another thread took it: it runs
                self._finished_locked()
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
            except BaseException:  # a job hands back its own errors; never lose the thread
                logger.exception("a helper thread's job raised")
            finally:
                del job  # drop the job's references before waiting again
                with cond:
                    self._finished_locked()

    def _finished_locked(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._settled.notify_all()

    def settle(self, timeout: float) -> bool:
        """See :func:`settle`."""
        with self._settled:
            return self._settled.wait_for(lambda: self._in_flight == 0, timeout)


#: The process's pool; a forked child replaces it (see :func:`_start_afresh`).
_pool = _Pool()


def submit(job: Callable[[], object]) -> None:
    """Run ``job()`` on a helper thread, never on a thread of a context.

    The job hands its own outcome back (an exception escaping it is only
    logged).

    :raises RuntimeError: when no helper thread exists and none can be
        started (the job is then not queued).
    """
    _pool.submit(job)


def settle(timeout: float) -> bool:
    """Wait until no submitted job is queued or running; False on timeout.

    For tests: once it returns True, every late outcome has been handed
    back or dropped.
    """
    return _pool.settle(timeout)


def _start_afresh() -> None:
    """A forked child: the parent's threads do not exist here, so its pool
    would count them as alive and never start one, and its lock may have
    been held by one of them.  Start with a new, empty pool."""
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh)
