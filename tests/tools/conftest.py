"""Fixtures for the operator CLI's tests: a scripted HTTP server, the local host over the dev kit, a CLI runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from aml_rollouts import cli
from devkit._server import BackgroundServer, Request, Response
from devkit.harness import app_environment
from devkit.host import HostKeys, LocalHost
from devkit.stack import DevStack

KEYS = HostKeys(function="cli-function-key", eventgrid="cli-eventgrid-key", master="cli-master-key")


@dataclass
class Ran:
    """One CLI run: its exit code, what it printed, and the pauses it asked for (never slept)."""

    code: int
    out: str
    err: str
    slept: list[float] = field(default_factory=list)


def run_cli(
    argv: list[str], env: Mapping[str, str], *, sleep: Callable[[float], None] | None = None, terminal: bool = False
) -> Ran:
    slept: list[float] = []
    out, err = StringIO(), StringIO()

    def record(seconds: float) -> None:
        slept.append(seconds)
        if sleep is not None:
            sleep(seconds)

    code = cli.main(
        argv,
        env=env,
        out=Console(file=out, width=160, color_system=None, force_terminal=terminal),
        err=Console(file=err, width=400, color_system=None),
        sleep=record,
    )
    return Ran(code, out.getvalue(), err.getvalue(), slept)


@dataclass
class ScriptedApp:
    """A fake app: answers each request with the next queued (status, body), recording what it was sent."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if self.answers else (500, {"error": "no answer queued"})
        return Response(status, body, dict(self.headers))


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedApp, str]]:
    app = ScriptedApp()
    server = BackgroundServer("scripted-app", app).start()
    try:
        yield app, server.url
    finally:
        server.stop()


@pytest.fixture
def host(stack: DevStack) -> Iterator[LocalHost]:
    """The unchanged app behind the local host, its timer and follow-ups running, on real (not emulated) time."""
    with app_environment(stack), LocalHost(stack, keys=KEYS, tick_s=0.3, followup_s=0.1) as served:
        yield served


def env_for(host: LocalHost, **extra: str) -> dict[str, str]:
    """What an operator sets for a deployed app: its URL and a function key in the environment."""
    return {"AML_ROLLOUTS_URL": host.url, "AML_ROLLOUTS_KEY": KEYS.function, **extra}
