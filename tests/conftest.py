"""Shared pytest fixtures for every test directory (unit and stress).

``backend`` runs a test once per reactor backend usable on this machine
(``corosio_py.available_backends()``), with the backend name as the test id:
``test_x[epoll]``, ``test_x[kqueue]``, ``test_x[poll]``, ``test_x[select]``.
"""

from __future__ import annotations

import pytest


def _available_backends() -> list[str]:
    """Import corosio_py lazily so an import error in the package shows up as
    a collection error on the tests that ask for ``backend``, with the real
    traceback, instead of breaking conftest loading for the whole suite."""
    import corosio_py

    names = [str(name) for name in corosio_py.available_backends()]
    if not names:
        raise RuntimeError("corosio_py.available_backends() returned no backends")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = _available_backends()
        metafunc.parametrize("backend", names, ids=names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the reactor backend under test (pass to ``IOContext(backend=...)``)."""
    name: str = request.param
    return name
