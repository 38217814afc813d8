"""The worker side: run one cell once and print its result as one JSON line.

Every workload module ends with ``if __name__ == "__main__":
worker_main(WORKLOAD)``; the driver starts it as::

    python -m tools.bench.<module> --impl NAME --backend B --threads N --size full
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from ._spec import COROSIO, PYTHON_VERSION, RunArgs, ValidationError, Workload, check


def worker_main(workload: Workload, argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m tools.bench.<module>``: run one cell once.

    Prints one JSON line: workload, implementation, backend, threads,
    python, size, params, ok, and either figures / latency / extra or error.
    Exits non-zero when the run failed or did not validate.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m tools.bench.{workload.name}", description=workload.title
    )
    parser.add_argument("--impl", required=True, choices=[i.name for i in workload.impls])
    parser.add_argument("--backend", default=None, help="corosio_py backend (default: best)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", choices=sorted(workload.sizes), default="full")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help=f"override a parameter; full size: {dict(workload.sizes['full'])}",
    )
    ns = parser.parse_args(argv)
    params = dict(workload.sizes[ns.size])
    for item in ns.param:
        key, _, value = item.partition("=")
        if key not in params:
            parser.error(f"unknown parameter {key!r}; known: {', '.join(params)}")
        params[key] = type(params[key])(value)
    impl = workload.impl(ns.impl)
    backend: str | None = None
    if impl.family == COROSIO:
        import corosio_py

        backend = ns.backend or corosio_py.available_backends()[0]
    record: dict[str, Any] = {
        "workload": workload.name,
        "implementation": impl.name,
        "backend": backend if backend is not None else impl.backend,
        "threads": ns.threads,
        "python": PYTHON_VERSION,
        "size": ns.size,
        "params": params,
    }
    args = RunArgs(impl.name, backend, ns.threads, params, impl.family, impl.concurrency_hint)
    code = 0
    try:
        result = workload.measure(args, impl.run)
        for fig in workload.figures:
            value = result.figures.get(fig.key)
            check(
                value is not None and math.isfinite(value),
                f"figure {fig.key!r} missing or not finite: {value!r}",
            )
        record.update(
            ok=True,
            figures=result.figures,
            latency={k: list(v) for k, v in result.latency.items()},
            extra=result.extra,
        )
    except ValidationError as error:
        record.update(ok=False, error=f"validation failed: {error}")
        code = 2
    except Exception as error:
        traceback.print_exc()
        record.update(ok=False, error=f"{type(error).__name__}: {error}")
        code = 1
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    if code:
        sys.exit(code)
