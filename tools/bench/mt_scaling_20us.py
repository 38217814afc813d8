"""mt_scaling_20us: mt_scaling with handlers of about 20 µs of pure Python.

The same workload as :mod:`tools.bench.mt_scaling`, with handlers long enough
for parallel execution to pay on a free-threaded build (no GIL): there N
threads should approach N times one thread on N cores.  On a GIL build the
figure says what extra threads cost (the ideal is 1.0).
"""

from __future__ import annotations

from dataclasses import replace

from tools.bench._worker import worker_main
from tools.bench.mt_scaling import WORKLOAD as _SHORT

#: Loop iterations per handler: about 20 µs on CPython 3.11 on these machines.
ITERATIONS = 300

WORKLOAD = replace(
    _SHORT,
    name="mt_scaling_20us",
    title="N threads run one context over pre-posted 20 µs pure-Python handlers",
    sizes={
        "full": {"handlers": 40_000, "iterations": ITERATIONS},
        "quick": {"handlers": 10_000, "iterations": ITERATIONS},
    },
)

if __name__ == "__main__":
    worker_main(WORKLOAD)
