"""The select(2) reactor: the last resort, available everywhere.

Facts about select
------------------
* An ``fd_set`` is a bitmap of ``FD_SETSIZE`` bits (1024 on Linux and
  macOS); CPython refuses larger fds with ``ValueError``.
* Closing an fd that is in a set while ``select`` runs, or before it starts,
  makes it fail with ``EBADF``.
* The exceptional set reports out-of-band data on TCP sockets (and, on some
  platforms, a failed non-blocking connect); errors otherwise show up as
  readable and writable.

What this means for corosio_py
------------------------------
* Everything but the OS call lives in :mod:`._level` and
  :class:`~._base.ReactorBase`.
* Known limit: fds at or above ``FD_SETSIZE`` cannot be watched at all.
  ``fd_limit`` makes ``register`` refuse them with ``OSError(EINVAL)``: an
  accepted connection beyond the limit is closed and that accept fails, and
  a server's accept loop backs off instead of dying on a ``ValueError``.
  Use the poll backend where more fds are needed.
* Known limit: like poll, every pass asks every registered target and
  hands the kernel every watched fd (see :mod:`._level`).
* ``EBADF`` ends the pass with nothing to report: the fd was deregistered
  and closed after the snapshot, and the next pass rebuilds the sets
  without it.
* Every watched fd is also in the exceptional set, reported as ERROR.
* An fd watched for errors only (see :mod:`._level`) is in no set but the
  exceptional one, which does not carry socket errors: while there is one,
  a pass lasts at most ``ERROR_POLL_INTERVAL`` and reports it with READ, so
  its error wait probes the fd (no spin on unread data; an error is seen
  within that interval).
"""

from __future__ import annotations

import errno
import select
from collections.abc import Iterable
from typing import ClassVar, Final, final

from ._bits import ERROR, READ, SAME, WRITE, BitTable
from ._level import LevelTriggeredReactor

#: ``FD_SETSIZE`` on Linux and macOS (CPython does not export it).
_FD_SETSIZE: Final = 1024

#: How often fds watched for errors only are reported (seconds).
ERROR_POLL_INTERVAL: Final = 0.05


@final
class SelectReactor(LevelTriggeredReactor):
    """A level-triggered reactor built on ``select.select``.

    Thread safety: as :class:`LevelTriggeredReactor`.
    """

    name: ClassVar[str] = "select"
    fd_limit: ClassVar[int] = _FD_SETSIZE
    result_bits: ClassVar[BitTable] = SAME

    def _os_wait(self, watch: dict[int, int], timeout: float | None) -> Iterable[tuple[int, int]]:
        readers = [fd for fd, bits in watch.items() if bits & READ]
        writers = [fd for fd, bits in watch.items() if bits & WRITE]
        errors_only = [fd for fd, bits in watch.items() if bits == ERROR]
        if errors_only and (timeout is None or timeout > ERROR_POLL_INTERVAL):
            timeout = ERROR_POLL_INTERVAL
        try:
            rset, wset, xset = select.select(readers, writers, list(watch), timeout)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return []
            raise
        bits_by_fd: dict[int, int] = {}
        for fds, bit in ((rset, READ), (wset, WRITE), (xset, ERROR), (errors_only, READ)):
            for fd in fds:
                bits_by_fd[fd] = bits_by_fd.get(fd, 0) | bit
        return bits_by_fd.items()
