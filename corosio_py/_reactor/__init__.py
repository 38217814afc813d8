"""Reactor backends and the one ladder that chooses between them.

:data:`BACKENDS` lists every backend in order of preference.  A backend's
module is imported only when it is created, so a platform without epoll
never imports ``_epoll`` (nor the emulation below, which needs it too).  On
Linux the kqueue backend runs over an epoll-backed emulation of
``select.kqueue`` (:mod:`._kqueue_emulation`), which is why it is available
there but never the default.
"""

from __future__ import annotations

import errno
import select
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._base import Reactor as Reactor
from ._base import ReadinessTarget as ReadinessTarget
from ._base import has_epoll
from ._bits import ERROR as ERROR
from ._bits import HANGUP as HANGUP
from ._bits import READ as READ
from ._bits import WRITE as WRITE

__all__ = (
    "BACKENDS",
    "ERROR",
    "READ",
    "WRITE",
    "Backend",
    "Reactor",
    "ReadinessTarget",
    "available_backends",
    "create_reactor",
    "default_backend",
)


@dataclass(frozen=True, slots=True)
class Backend:
    """One rung of the ladder: a backend name, a probe and a factory."""

    name: str
    #: Whether this rung applies on the running platform.
    available: Callable[[], bool]
    #: Build the reactor (imports its module on first use).
    create: Callable[[], Reactor]


def _has_native_kqueue() -> bool:
    return hasattr(select, "kqueue")


def _has_emulated_kqueue() -> bool:
    return has_epoll() and not _has_native_kqueue()


def _has_poll() -> bool:
    return hasattr(select, "poll")


def _always() -> bool:
    return True


def _create_kqueue() -> Reactor:
    from ._kqueue import KqueueReactor

    return KqueueReactor()


def _create_epoll() -> Reactor:
    # Only reached when has_epoll() held; the platform check is for mypy,
    # to which _epoll is empty on other platforms.
    if sys.platform == "linux":
        from ._epoll import EpollReactor

        return EpollReactor()
    raise OSError(errno.ENOSYS, "the epoll backend needs Linux")


def _create_poll() -> Reactor:
    from ._poll import PollReactor

    return PollReactor()


def _create_select() -> Reactor:
    from ._select import SelectReactor

    return SelectReactor()


#: Every backend, most preferred first.  kqueue appears twice: natively it
#: is the first choice; emulated (Linux) it comes after the real epoll.  The
#: two probes never both hold, so a name is available at most once.
BACKENDS: Final[tuple[Backend, ...]] = (
    Backend("kqueue", _has_native_kqueue, _create_kqueue),
    Backend("epoll", has_epoll, _create_epoll),
    Backend("kqueue", _has_emulated_kqueue, _create_kqueue),
    Backend("poll", _has_poll, _create_poll),
    Backend("select", _always, _create_select),
)


def available_backends() -> tuple[str, ...]:
    """Name every backend usable here, most preferred first.

    :return: e.g. ``("epoll", "kqueue", "poll", "select")`` on Linux,
        ``("kqueue", "poll", "select")`` on macOS.
    """
    return tuple(rung.name for rung in BACKENDS if rung.available())


def default_backend() -> str:
    """Name the backend used when none is asked for.

    :return: kqueue where ``select.kqueue`` exists, else epoll, else poll,
        else select.
    """
    return available_backends()[0]


def create_reactor(name: str | None) -> Reactor:
    """Build the reactor called ``name``, or the default one for ``None``.

    :raises TypeError: when ``name`` is neither a string nor ``None``.
    :raises ValueError: when ``name`` is unknown or unavailable here; the
        message lists the available backends.
    :raises OSError: when the OS refuses the backend's objects.
    """
    checked: object = name  # callers need not be type-checked
    if not isinstance(checked, str | None):
        raise TypeError(f"backend name must be a str or None, not {type(checked).__name__}")
    if name is None:
        name = default_backend()
    for rung in BACKENDS:
        if rung.name == name and rung.available():
            return rung.create()
    raise ValueError(
        f"reactor backend {name!r} is not available here; "
        f"available: {', '.join(available_backends())}"
    )
