"""Strand: an executor whose handlers never overlap and run in post order.

A strand owns a FIFO of handlers and a *busy* flag.  Busy means that exactly
one *runner* -- a handler of the context, queued or running on some thread --
is responsible for draining the FIFO; whoever finds the strand idle marks it
busy and becomes (or queues) that runner.  So at most one thread runs the
strand's handlers at a time, in the order they were queued, and an idle
strand costs nothing: no thread waits for it.  Handlers queued behind a busy
strand need no unit of outstanding work of their own, because the runner
already holds one until it has drained them (or re-queued itself).

A task spawned on a strand resumes through it: the task's resumption
handler enters the strand instead of running the step directly, so every
step of the task is one strand handler.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._context import Executor, IOContext
from ._scheduler import Handler

if TYPE_CHECKING:
    from ._tasks import Task

__all__ = ("Strand",)

#: Handlers a runner runs before it re-queues itself behind the context's
#: other ready work, so one busy strand cannot starve the rest.
BATCH: Final = 64

_get_ident = threading.get_ident


class Strand(Executor):
    """An executor whose handlers never run concurrently, in post order.

    ``Strand(ctx_or_executor)`` serialises work on one context: handlers
    posted to it run one at a time, first posted first run, on whichever
    thread of the context is free.  ``spawn(strand, coro)`` runs every step
    of the task on the strand, so the tasks of one strand never overlap --
    asyncio's single-thread guarantee, per strand.  A strand that is not
    busy costs no thread; a handler that blocks holds only its own strand.

    Thread-safe: post to it from any thread.  Each strand is its own
    executor: a strand compares equal only to itself.
    """

    __slots__ = ("_mutex", "_pending", "_busy", "_thread", "_run_queued")

    def __init__(self, ctx_or_executor: IOContext | Executor) -> None:
        if isinstance(ctx_or_executor, Strand):
            raise TypeError("a Strand wraps an IOContext or its executor, not another Strand")
        if isinstance(ctx_or_executor, IOContext):
            ctx = ctx_or_executor
        elif isinstance(ctx_or_executor, Executor):
            ctx = ctx_or_executor.context
        else:
            raise TypeError(
                f"Strand() takes an IOContext or Executor, not {type(ctx_or_executor).__name__}"
            )
        super().__init__(ctx)
        self._mutex = threading.Lock()
        self._pending: deque[Handler] = deque()  # (_mutex)
        self._busy = False  # (_mutex) a runner is queued or running
        # The thread running the strand's handlers, else 0.  Written only by
        # the owner (ownership passes through _busy under _mutex), and reset
        # before ownership is given up; read unlocked by dispatch and
        # running_in_this_thread, where it can only equal the reader's own
        # ident while the reader owns the strand.
        self._thread = 0
        self._run_queued: Handler = self._run_pending

    # ------------------------------------------------------------ Executor API

    def post(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)`` on the strand; never runs it inline.

        Raises ``TypeError`` for a non-callable, ``RuntimeError`` once the
        context is closed.
        """
        self._enqueue(_bind(fn, args))

    def defer(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)`` behind the caller's current work (as :meth:`post`)."""
        self._enqueue(_bind(fn, args))

    def dispatch(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Run ``fn(*args)`` now if that keeps the strand's guarantees, else post.

        Inline when the calling thread is already running this strand, or
        when it runs the context and the strand is idle (the call then holds
        the strand while ``fn`` runs).
        """
        handler = _bind(fn, args)
        if self._thread == _get_ident():
            handler()
            return
        if self._sched.running_in_this_thread():
            with self._mutex:
                idle = not self._busy
                if idle:
                    self._busy = True
            if idle:
                self._run(handler)
                return
        self._enqueue(handler)

    def running_in_this_thread(self) -> bool:
        """Whether the calling thread is running a handler of this strand."""
        return self._thread == _get_ident()

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Strand of {self._ctx!r}>"

    # ------------------------------------------------------------ machinery

    def _enqueue(self, handler: Handler) -> None:
        if self._sched.closed:
            raise RuntimeError("the IOContext is closed")
        with self._mutex:
            self._pending.append(handler)
            if self._busy:
                return  # the runner drains it
            self._busy = True
        try:
            self._sched.post(self._run_queued)
        except BaseException:
            with self._mutex:  # closed meanwhile: nobody will run it
                self._busy = False
                self._pending.clear()
            raise

    def _run_pending(self) -> None:
        """The queued runner: a handler of the context that drains the strand."""
        self._run(None)

    def _enter(self, step: Handler) -> None:
        """Run ``step`` on the strand: now if idle, else behind the runner.

        The resumption handler of a task spawned on the strand.
        """
        with self._mutex:
            if self._busy:
                self._pending.append(step)
                return
            self._busy = True
        self._run(step)

    def _run(self, first: Handler | None) -> None:
        """Own the strand (busy is set): run ``first``, then the FIFO.

        Runs up to :data:`BATCH` handlers, then re-queues the runner if more
        are waiting.  If a handler raises, the strand is handed on the same
        way before the error propagates to ``run*``.  ``_thread`` is cleared
        while the strand is still busy (under the mutex when it goes idle),
        so it never names a thread that no longer owns the strand.
        """
        self._thread = _get_ident()
        budget = BATCH
        handler = first
        try:
            while True:
                if handler is not None:
                    handler()
                    budget -= 1
                with self._mutex:
                    if not self._pending:
                        self._thread = 0
                        self._busy = False
                        return
                    if budget <= 0:
                        self._thread = 0
                        break  # still busy: the re-queued runner owns it
                    handler = self._pending.popleft()
        except BaseException:
            self._thread = 0
            self._hand_on()
            raise
        self._requeue()

    def _hand_on(self) -> None:
        """A handler raised: keep the FIFO moving without this thread."""
        with self._mutex:
            if not self._pending:
                self._busy = False
                return
        self._requeue()

    def _requeue(self) -> None:
        try:
            self._sched.post(self._run_queued)
        except RuntimeError:
            with self._mutex:  # the context closed: its handlers are dropped
                self._busy = False
                self._pending.clear()

    def _task_resumer(self, task: Task[Any]) -> Handler:
        """The resumption handler of a task spawned on this strand."""
        return functools.partial(self._enter, task._step)


def _bind(fn: Callable[..., object], args: tuple[Any, ...]) -> Handler:
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    return functools.partial(fn, *args) if args else fn
