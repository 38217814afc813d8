"""Helpers of the coordination workloads: time a loop of rounds inside one
coroutine, and the implementations that run it on each framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tools.bench._runners import Main, now, run_asyncio, run_corosio, run_trio
from tools.bench._spec import COROSIO, Impl, RunArgs, Runner

#: (elapsed seconds, a checked count or checksum)
Result = tuple[float, int]

#: Returns the coroutine function (no arguments) to run for these args.
MainOf = Callable[[RunArgs], Main]


async def timed_rounds(m: int, one: Callable[[], Awaitable[None]]) -> Result:
    """Await ``one()`` m times; the clock starts after a first warm round."""
    await one()
    done = 0
    t0 = now()
    for _ in range(m):
        await one()
        done += 1
    return now() - t0, done


def _on(runner: Callable[[RunArgs, Main], Result], main_of: MainOf) -> Runner:
    """An implementation's run: ``runner`` runs the coroutine of ``main_of``."""

    def run(args: RunArgs) -> Result:
        return runner(args, main_of(args))

    return run


def coordination_impls(corosio: MainOf, asyncio: MainOf, trio: MainOf) -> tuple[Impl, ...]:
    """The implementations every coordination workload compares; each runs
    its framework's coroutine (``corosio(args)``, ...) and returns its Result."""
    return (
        Impl("corosio_py", COROSIO, _on(run_corosio, corosio), all_backends=False),
        Impl("corosio_py_hint1", COROSIO, _on(run_corosio, corosio), all_backends=False,
             concurrency_hint=1),
        Impl("asyncio", "asyncio", _on(run_asyncio, asyncio)),
        Impl("uvloop", "uvloop", _on(run_asyncio, asyncio)),
        Impl("trio", "trio", _on(run_trio, trio), quick=False),
    )
