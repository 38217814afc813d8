"""strand_post: post N no-op callbacks to a Strand from the thread, then run.

As post_throughput, through a :class:`corosio_py.Strand` of the context: the
cost of serialising handlers on one thread.  Figure: callbacks/s = N /
(post + run time); the ``vs_plain`` ratio compares with plain posts to the
context measured in the same run.

impls:
  corosio_py_strand   ``strand.post(cb)`` x N, then ``ctx.run()``.
  corosio_py          ``ctx.post(cb)`` x N, then ``ctx.run()`` (the reference).
  asyncio             ``loop.call_soon(cb)`` x N, then ``run_forever()``.
"""

from __future__ import annotations

from tools.bench._runners import corosio_context, new_event_loop, now
from tools.bench._spec import COROSIO, Figure, Impl, Measurement, RunArgs, Runner, Workload, check
from tools.bench._worker import worker_main
from tools.bench.post_throughput import Counter


def _posts(args: RunArgs, counter: Counter, strand: bool) -> float:
    import corosio_py

    n = args.params["n"]
    cb = counter.cb
    with corosio_context(args) as ctx:
        post = corosio_py.Strand(ctx).post if strand else ctx.post
        t0 = now()
        for _ in range(n):
            post(cb)
        ctx.run()
        return now() - t0


def _strand(args: RunArgs, counter: Counter) -> float:
    return _posts(args, counter, strand=True)


def _plain(args: RunArgs, counter: Counter) -> float:
    return _posts(args, counter, strand=False)


def _asyncio(args: RunArgs, counter: Counter) -> float:
    n = args.params["n"]
    cb = counter.cb
    loop = new_event_loop(args)
    try:
        t0 = now()
        for _ in range(n):
            loop.call_soon(cb)
        loop.call_soon(loop.stop)
        loop.run_forever()
        return now() - t0
    finally:
        loop.close()


def measure(args: RunArgs, run: Runner) -> Measurement:
    n = args.params["n"]
    counter = Counter()
    elapsed = run(args, counter)
    check(counter.count == n, f"{counter.count} callbacks ran, expected {n}")
    return Measurement(figures={"callbacks_per_s": n / elapsed}, extra={"elapsed_s": elapsed})


WORKLOAD = Workload(
    name="strand_post",
    title="post N no-op callbacks to a strand, then run (one thread)",
    figures=(Figure("callbacks_per_s", "callbacks/s (post + run)", "callbacks/s"),),
    impls=(
        Impl("corosio_py_strand", COROSIO, _strand, all_backends=False),
        Impl("corosio_py", COROSIO, _plain, all_backends=False),
        Impl("asyncio", "asyncio", _asyncio),
    ),
    sizes={"full": {"n": 1_000_000}, "quick": {"n": 200_000}},
    references={"vs_plain": "corosio_py", "asyncio": "asyncio"},
    measure=measure,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
