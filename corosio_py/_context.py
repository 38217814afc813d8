"""IOContext, Executor and the work guard: the public face of the scheduler."""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, final

from . import _validate
from ._lockless import LocklessScheduler
from ._reactor import create_reactor
from ._scheduler import UNLIMITED, Scheduler
from ._threaded import ThreadedScheduler

if TYPE_CHECKING:
    from ._tasks import Task

__all__ = ("Executor", "IOContext", "WorkGuard")


class _ShutdownParticipant(Protocol):
    """An object owning descriptors or operations that close() must release."""

    def _shutdown(self) -> None: ...


@final
class IOContext:
    """An event loop that any number of threads may run at once.

    Args:
        concurrency_hint: ``None`` (any number of threads) or a positive
            int.  ``1`` promises that only one thread ever touches the
            context and its objects, which selects a lock-free scheduler.
        backend: ``"epoll"``, ``"kqueue"``, ``"poll"``, ``"select"`` or
            ``None`` for the platform's best.  See :func:`available_backends`.

    Exactly one of the threads inside ``run*`` at a time waits in the OS
    readiness API; the others run completions or sleep until work arrives.
    With several threads in ``run*``, a task may resume on any of them and
    other tasks run at the same time: code between two awaits is not atomic
    with respect to other tasks.
    """

    __slots__ = {
        "__weakref__": None,
        "post": (
            "post(fn, *args): queue ``fn(*args)``; it counts as outstanding work "
            "until it runs.  Raises ``TypeError`` for a non-callable, "
            "``RuntimeError`` once closed.  Thread-safe.  (An attribute bound to "
            "the scheduler's own post, so the hot path costs one call.)"
        ),
        "_sched": None,
        "_executor": None,
        "_objects": None,
        "_tasks": None,
        "_registry_lock": None,
    }
    post: Callable[..., None]

    def __init__(self, concurrency_hint: int | None = None, backend: str | None = None) -> None:
        if concurrency_hint is not None:
            if isinstance(concurrency_hint, bool) or not isinstance(concurrency_hint, int):
                raise TypeError("concurrency_hint must be an int or None")
            if concurrency_hint < 1:
                raise ValueError("concurrency_hint must be >= 1")
        reactor = create_reactor(backend)
        self._sched: Scheduler
        if concurrency_hint == 1:
            self._sched = LocklessScheduler(reactor)
        else:
            self._sched = ThreadedScheduler(reactor)
        self.post = self._sched.post
        self._executor = Executor(self)
        # Both guarded by _registry_lock: objects and tasks register from any
        # thread while close() takes its snapshot.
        self._objects: weakref.WeakSet[_ShutdownParticipant] = weakref.WeakSet()
        self._tasks: set[Task[Any]] = set()
        self._registry_lock = threading.Lock()

    # -------------------------------------------------------------- info

    @property
    def backend(self) -> str:
        """The name of the reactor backend in use."""
        return self._sched.reactor.name

    @property
    def executor(self) -> Executor:
        """The executor that posts to this context."""
        return self._executor

    # -------------------------------------------------------------- running

    def run(self) -> int:
        """Run handlers until no work is left or :meth:`stop`; return the count."""
        return self._sched.run(UNLIMITED, None, False)

    def run_one(self) -> int:
        """Run at most one handler, blocking until one is ready; 0 or 1."""
        return self._sched.run(1, None, False)

    def run_for(self, seconds: float) -> int:
        """Like :meth:`run`, but return once ``seconds`` have passed."""
        return self._sched.run(UNLIMITED, _validate.deadline_after(seconds), False)

    def run_until(self, deadline: float) -> int:
        """Like :meth:`run`, until the ``time.monotonic()`` value ``deadline``."""
        return self._sched.run(UNLIMITED, _validate.deadline(deadline), False)

    def run_one_for(self, seconds: float) -> int:
        """Like :meth:`run_one`, giving up after ``seconds``."""
        return self._sched.run(1, _validate.deadline_after(seconds), False)

    def run_one_until(self, deadline: float) -> int:
        """Like :meth:`run_one`, giving up at the monotonic ``deadline``."""
        return self._sched.run(1, _validate.deadline(deadline), False)

    def poll(self) -> int:
        """Run every ready handler without blocking; return the count."""
        return self._sched.run(UNLIMITED, None, True)

    def poll_one(self) -> int:
        """Run at most one ready handler without blocking; 0 or 1."""
        return self._sched.run(1, None, True)

    def stop(self) -> None:
        """Make every thread in ``run*`` return as soon as possible.

        Queued work stays queued; :meth:`restart` before running again.
        """
        self._sched.stop()

    def stopped(self) -> bool:
        """Whether the context is stopped (explicitly or for lack of work)."""
        return self._sched.stopped()

    def restart(self) -> None:
        """Clear the stopped state so ``run*`` may be called again."""
        self._sched.restart()

    def work_guard(self) -> WorkGuard:
        """Keep :meth:`run` from returning for lack of work until reset."""
        return WorkGuard(self)

    # -------------------------------------------------------------- shutdown

    def close(self) -> None:
        """Shut the context down.  Idempotent; callable from any thread.

        Queued functions are discarded without being called, pending
        operations are abandoned, the coroutines of unfinished tasks are
        closed (their ``finally`` blocks run) and those tasks report
        ``Cancelled``; descriptors owned by the context's objects are closed.

        Every thread in ``run*`` is stopped, and the shutdown waits until none
        of them runs a handler, so no coroutine is closed while it executes.
        Called from inside a handler, the shutdown is finished by the last
        thread to leave ``run*`` (after that handler returns).
        """
        sched = self._sched
        if sched.begin_close():
            sched.when_quiet(self._finish_close)

    def _finish_close(self) -> None:
        """The rest of :meth:`close`, once no handler of ours is running."""
        sched = self._sched
        sched.drain()
        with self._registry_lock:
            objects = list(self._objects)
            tasks = list(self._tasks)
            self._tasks.clear()
        for obj in objects:
            obj._shutdown()
        sched.timers.clear()
        for task in tasks:
            task._abandon()
        sched.reactor.close()

    def __del__(self) -> None:
        # A context dropped unclosed: release its descriptors (the reactor's
        # wake-up fds) and say so, as an unclosed socket does.  Nothing runs
        # it any more (a running thread holds a reference), so no lock.
        sched = getattr(self, "_sched", None)
        if sched is None or sched.closed:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
        sched.begin_close()
        sched.reactor.close()

    def __enter__(self) -> IOContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sched.closed else "stopped" if self.stopped() else "ready"
        return f"<IOContext backend={self.backend!r} {state}>"

    # -------------------------------------------------------------- internals

    def _track(self, obj: _ShutdownParticipant) -> None:
        """Register an object whose descriptors close() must release."""
        with self._registry_lock:
            self._objects.add(obj)

    def _task_started(self, task: Task[Any]) -> None:
        with self._registry_lock:
            if self._sched.closed:
                raise RuntimeError("the IOContext is closed")
            self._tasks.add(task)

    def _task_finished(self, task: Task[Any]) -> None:
        with self._registry_lock:
            self._tasks.discard(task)


class Executor:
    """A light handle that submits work to one :class:`IOContext`.

    Executors of one context compare equal.  (:class:`Strand` is the one
    subclass: an executor that serialises its handlers.)
    """

    __slots__ = ("_ctx", "_sched")

    def __init__(self, ctx: IOContext) -> None:
        self._ctx = ctx
        self._sched = ctx._sched

    @property
    def context(self) -> IOContext:
        """The context this executor submits to."""
        return self._ctx

    def post(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)``; never runs it inline."""
        self._sched.post(fn, *args)

    def defer(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)`` behind the caller's current work (post semantics)."""
        self._sched.post(fn, *args)

    def dispatch(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Run ``fn(*args)`` now if this thread runs the context, else post it."""
        if self._sched.running_in_this_thread():
            if not callable(fn):
                raise TypeError(f"expected a callable, got {type(fn).__name__}")
            fn(*args)
        else:
            self._sched.post(fn, *args)

    def running_in_this_thread(self) -> bool:
        """Whether the calling thread is inside ``run*`` of this context."""
        return self._sched.running_in_this_thread()

    def on_work_started(self) -> None:
        """Count one unit of outstanding work (keeps ``run()`` going).

        Raises ``RuntimeError`` once the context is closed.
        """
        self._sched.guard_started()

    def on_work_finished(self) -> None:
        """Release one unit; the last one stops the context."""
        self._sched.work_finished()

    def __eq__(self, other: object) -> bool:
        return type(other) is Executor and other._ctx is self._ctx

    def __hash__(self) -> int:
        return id(self._ctx)

    def __repr__(self) -> str:
        return f"<Executor of {self._ctx!r}>"


@final
class WorkGuard:
    """One unit of outstanding work, held until :meth:`reset`.

    Also a context manager: ``with ctx.work_guard(): ...``.  ``reset`` is
    idempotent and may be called from any thread.
    """

    __slots__ = ("_sched", "_lock", "_owns")

    def __init__(self, ctx: IOContext) -> None:
        self._sched = ctx._sched
        self._lock = threading.Lock()
        self._sched.guard_started()  # RuntimeError once closed
        self._owns = True

    @property
    def owns_work(self) -> bool:
        """Whether the guard still holds its unit of work."""
        return self._owns

    def reset(self) -> None:
        """Release the unit of work (once)."""
        with self._lock:
            owned, self._owns = self._owns, False
        if owned:
            self._sched.work_finished()

    def __enter__(self) -> WorkGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()
