"""What a benchmark is: workloads, their implementations and figures, and
what one run receives and returns.

Vocabulary:

* A *workload* (one module of :mod:`tools.bench`) defines its figures, its
  implementations and one ``measure`` function that checks what ran and
  turns it into figures.
* An *implementation* (:class:`Impl`) carries its own ``run`` function: the
  framework-specific code.  ``measure(args, run)`` calls it (with whatever
  the workload prepares: sizes, a temporary path, certificates) and
  validates the result, so every implementation is checked the same way.
* A *cell* is one (workload, implementation, backend, threads) tuple; every
  run of a cell is a fresh worker process (:mod:`tools.bench._worker`).

A workload raises :class:`ValidationError` (through :func:`check`) when what
ran does not match what it asked for: a broken implementation reports an
error, never a speed.
"""

from __future__ import annotations

import platform
import selectors
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PYTHON_VERSION = platform.python_version()

#: Implementation families.  ``corosio_py`` cells run on every backend.
COROSIO = "corosio_py"

#: An implementation's run function; its arguments are the workload's own
#: (``measure`` calls it), the first is always the :class:`RunArgs`.
Runner = Callable[..., Any]


class ValidationError(Exception):
    """What ran does not match what the workload asked for."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ValidationError` with ``message`` unless ``condition``."""
    if not condition:
        raise ValidationError(message)


def asyncio_backend_label() -> str:
    """The selector asyncio's default loop uses here (``epoll`` on Linux)."""
    return selectors.DefaultSelector.__name__.removesuffix("Selector").lower()


def trio_backend_label() -> str:
    """The OS readiness API trio uses here."""
    platform = str(sys.platform)  # a str, not a literal: every branch is live
    if platform.startswith("linux"):
        return "epoll"
    if platform == "win32":
        return "iocp"
    return "kqueue"


def _family_backend(family: str) -> str:
    """The backend label of a non-corosio family (what its loop runs on)."""
    if family == "asyncio":
        return asyncio_backend_label()
    if family == "uvloop":
        return "libuv"
    if family == "trio":
        return trio_backend_label()
    return "-"


@dataclass(frozen=True)
class Figure:
    """One number a workload reports per run."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    #: A latency figure also carries per-run p50/p99 (same unit).
    latency: bool = False


@dataclass(frozen=True)
class Impl:
    """One implementation of a workload and the function that runs it."""

    name: str
    #: ``corosio_py`` (one cell per backend), ``asyncio``, ``uvloop``,
    #: ``trio``, ``floor`` or ``threads``.
    family: str
    run: Runner
    threads: tuple[int, ...] = (1,)
    #: Part of ``--quick``; ``quick_threads`` narrows the thread counts there.
    quick: bool = True
    quick_threads: tuple[int, ...] | None = None
    #: The backend label recorded for non-corosio implementations (default:
    #: what the family's loop runs on here; ``-`` for floors and threads).
    backend: str = ""
    #: False: only run when named with ``--impl``.
    suite: bool = True
    #: corosio_py only.  False: run on the first selected backend only (the
    #: default one), e.g. a ``concurrency_hint=1`` variant whose point is the
    #: scheduler, not the reactor.
    all_backends: bool = True
    #: corosio_py only: the ``IOContext``'s ``concurrency_hint`` (1: lockless).
    concurrency_hint: int | None = None

    def __post_init__(self) -> None:
        if not self.backend:
            object.__setattr__(self, "backend", _family_backend(self.family))


@dataclass(frozen=True)
class RunArgs:
    """What an implementation's run function receives in the worker."""

    impl: str
    #: The corosio_py backend name (None: the default); None for others.
    backend: str | None
    threads: int
    params: Mapping[str, Any]
    family: str = COROSIO
    concurrency_hint: int | None = None


@dataclass
class Measurement:
    """What a workload's ``measure`` function returns (after validating)."""

    figures: dict[str, float]
    #: figure key -> (p50, p99), for latency figures.
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Anything else worth keeping (phase times, counts); recorded as is.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One (workload, implementation, backend, threads) combination."""

    workload: str
    impl: str
    family: str
    backend: str
    threads: int

    @property
    def label(self) -> str:
        return f"{self.impl}[{self.backend}, {self.threads}t]"


def _default_references() -> dict[str, str]:
    return {"asyncio": "asyncio", "uvloop": "uvloop"}


@dataclass(frozen=True)
class Workload:
    """A benchmark: its figures, implementations, sizes and measure function."""

    name: str
    title: str
    figures: tuple[Figure, ...]
    impls: tuple[Impl, ...]
    #: ``{"full": {...}, "quick": {...}}``: the parameters of each size.
    sizes: Mapping[str, Mapping[str, Any]]
    #: ``measure(args, impl.run)``: runs the implementation, checks what
    #: ran, returns the figures.
    measure: Callable[[RunArgs, Runner], Measurement]
    #: Ratio column -> the implementation whose figure is the reference.
    references: Mapping[str, str] = field(default_factory=_default_references)
    #: A figure key: derive "speed-up vs 1 thread" for corosio_py cells.
    scaling: str | None = None
    #: Seconds before a run of one cell is killed (full size).
    timeout: float = 180.0
    #: Returns why the workload cannot run on this machine (a missing tool),
    #: or None.  The driver skips it with that message instead of failing.
    unavailable: Callable[[], str | None] | None = None
    #: Timed repetitions per cell in the suite when ``--reps`` is not given
    #: (None: the suite default), for workloads whose runs are long.
    reps: int | None = None
    #: False: the warm-up round runs only the first cell (enough to compile
    #: and import the module; every run is a fresh process anyway).
    warmup_all: bool = True
    #: False: not part of the default suite (``make bench``); runs when named
    #: with ``--workload``.
    suite: bool = True

    def impl(self, name: str) -> Impl:
        for impl in self.impls:
            if impl.name == name:
                return impl
        raise KeyError(name)

    def figure(self, key: str) -> Figure:
        for fig in self.figures:
            if fig.key == key:
                return fig
        raise KeyError(key)

    def size(self, wanted: str) -> str:
        """``wanted`` if this workload has that size, else ``full``."""
        return wanted if wanted in self.sizes else "full"

    def cells(
        self, quick: bool, backends: Sequence[str], named: Sequence[str] = ()
    ) -> list[Cell]:
        """The cells of this workload; ``backends`` for corosio_py cells.

        ``named``: implementations asked for by name, which run even when
        they are not part of the suite (``suite=False``) or of ``--quick``.
        """
        out: list[Cell] = []
        for impl in self.impls:
            wanted = impl.suite and (impl.quick or not quick)
            if not wanted and impl.name not in named:
                continue
            threads = impl.quick_threads if quick and impl.quick_threads else impl.threads
            if impl.family != COROSIO:
                names: Sequence[str] = (impl.backend,)
            else:
                names = backends if impl.all_backends else backends[:1]
            out.extend(
                Cell(self.name, impl.name, impl.family, backend, n)
                for backend in names
                for n in threads
            )
        return out
