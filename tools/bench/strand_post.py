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

from tools.bench._harness import (
    Figure,
    Impl,
    Measurement,
    RunArgs,
    Workload,
    asyncio_backend_label,
    check,
    corosio_context,
    new_event_loop,
    now,
    worker_main,
)
from tools.bench.post_throughput import Counter


def run(args: RunArgs) -> Measurement:
    n = args.params["n"]
    counter = Counter()
    cb = counter.cb
    if args.impl.startswith("corosio_py"):
        import corosio_py

        with corosio_context(args) as ctx:
            post = (
                corosio_py.Strand(ctx).post if args.impl == "corosio_py_strand" else ctx.post
            )
            t0 = now()
            for _ in range(n):
                post(cb)
            ctx.run()
            elapsed = now() - t0
    else:
        loop = new_event_loop(args.impl)
        try:
            t0 = now()
            for _ in range(n):
                loop.call_soon(cb)
            loop.call_soon(loop.stop)
            loop.run_forever()
            elapsed = now() - t0
        finally:
            loop.close()
    check(counter.count == n, f"{counter.count} callbacks ran, expected {n}")
    return Measurement(figures={"callbacks_per_s": n / elapsed}, extra={"elapsed_s": elapsed})


WORKLOAD = Workload(
    name="strand_post",
    title="post N no-op callbacks to a strand, then run (one thread)",
    figures=(Figure("callbacks_per_s", "callbacks/s (post + run)", "callbacks/s"),),
    impls=(
        Impl("corosio_py_strand", "corosio_py", all_backends=False),
        Impl("corosio_py", "corosio_py", all_backends=False),
        Impl("asyncio", "asyncio", backend=asyncio_backend_label()),
    ),
    sizes={"full": {"n": 1_000_000}, "quick": {"n": 200_000}},
    references={"vs_plain": "corosio_py", "asyncio": "asyncio"},
    run=run,
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
