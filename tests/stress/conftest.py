"""Fixtures of the stress tests.

* ``stress``: the test's :class:`_util.Stress` (seed, scale, deadline,
  progress and summary lines).  A failing test's report gets a
  "stress seed" section, so even a pytest timeout names the seed.
* ``corosio_errors`` (autouse): fails the test if corosio_py logged an error
  (an exception swallowed in a done callback -- where a debug
  ``InvariantError`` raised by a join would end up -- or a task exception
  nobody retrieved).

The report header names the interpreter build (GIL or free-threaded).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from tests.stress._util import Stress, gil_enabled


def pytest_report_header(config: pytest.Config) -> str:
    """Name the build: the stress tests interleave differently without a GIL."""
    build = "GIL" if gil_enabled() else "free-threaded (no GIL)"
    return f"corosio_py stress: {sys.implementation.name} {sys.version.split()[0]}, {build} build"


@pytest.fixture
def stress(request: pytest.FixtureRequest) -> Iterator[Stress]:
    st = Stress(request.node.name)
    request.node._stress = st
    yield st


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def corosio_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    handler = _Collect()
    logger = logging.getLogger("corosio_py")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records:
        st = getattr(request.node, "_stress", None)
        seed = f" [seed={st.seed}]" if st is not None else ""
        first = handler.records[0]
        text = first.getMessage()
        if first.exc_info and first.exc_info[1] is not None:
            text += f": {first.exc_info[1]!r}"
        pytest.fail(
            f"corosio_py logged {len(handler.records)} error(s){seed}; first: {text}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    st = getattr(item, "_stress", None)
    if st is not None and report.failed:
        report.sections.append(("stress seed", st.repro))
    return report
