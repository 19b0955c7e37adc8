"""The fast layer's guard: a test marked ``fast`` fails if it opens a socket, starts a process or sleeps.

``make test-fast`` runs the tests marked ``fast`` (``pytestmark = pytest.mark.fast`` in their module): pure
decisions, and the engine, ledger, controls and status API on the in-memory fakes of ``tests/fakes``. The guard
keeps them that way: each forbidden call raises at once and, since code under test may catch and log what it
raises, is also reported when the test ends. Code that backs off with ``time.sleep`` (an ETag conflict) is
tested with the ``slept`` fixture, which records the sleeps instead of waiting them out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

FIX = (
    "the fast layer runs on the fakes in tests/fakes (no sockets, processes or sleeps); "
    "use them, or move this test out of the fast layer (drop its 'fast' marker)"
)


class FastLayerViolation(AssertionError):
    """A test of the fast layer touched the network, the process table or the wall clock."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"fast: the fast layer (make test-fast): {FIX}")


@pytest.fixture
def slept() -> list[float]:
    """``time.sleep`` calls of the code under test, in seconds, recorded instead of slept (fast layer only)."""
    return []


@pytest.fixture(autouse=True)
def _fast_layer_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("fast") is None:
        yield
        return
    # urllib3 probes IPv6 with a socket when it is first imported (the app imports requests lazily): an import's
    # side effect, not the test's doing, so it happens before the guard is up.
    import requests  # noqa: F401

    violations: list[str] = []

    def forbid(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            violations.append(what)
            raise FastLayerViolation(f"{request.node.nodeid} {what}: {FIX}")

        return refuse

    for name in ("create_connection", "socketpair", "getaddrinfo"):
        monkeypatch.setattr(socket, name, forbid(f"called socket.{name}"))
    monkeypatch.setattr(socket, "socket", _refusing_socket(forbid("opened a socket")))
    monkeypatch.setattr(subprocess, "Popen", forbid("started a subprocess"))
    for name in ("system", "popen", "fork", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, forbid(f"called os.{name}"))
    if "slept" in request.fixturenames:
        record: list[float] = request.getfixturevalue("slept")
        monkeypatch.setattr(time, "sleep", record.append)
    else:
        monkeypatch.setattr(time, "sleep", forbid("slept (time.sleep; request the 'slept' fixture to record it)"))
    yield
    if violations:
        pytest.fail(f"{request.node.nodeid} {'; '.join(dict.fromkeys(violations))}: {FIX}", pytrace=False)


def _refusing_socket(refuse: Callable[..., Any]) -> type:
    class RefusingSocket(socket.socket):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return refuse(*args, **kwargs)

    return RefusingSocket
