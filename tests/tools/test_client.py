"""Each documented answer of the operator API becomes one line and its own exit code; what a retry can fix is
retried within a bound (against a scripted server: these are the answers a healthy dev kit never gives)."""

from __future__ import annotations

import socket

import pytest

from aml_rollouts.client import ATTEMPTS
from aml_rollouts.errors import Exit
from tests.tools.conftest import ScriptedApp, run_cli

PAGE = {"count": 0, "rollouts": [], "endpoints": [], "continuation": None}
ROLLOUT = {"endpoint": "credit", "deployment": "credit-v7", "state": "rolled_back", "progress": {}}


def _env(url: str) -> dict[str, str]:
    return {"AML_ROLLOUTS_URL": url, "AML_ROLLOUTS_KEY": "k"}


@pytest.mark.parametrize(
    ("status", "body", "argv", "code", "says"),
    [
        (401, None, ["list"], Exit.AUTH, "was refused"),
        (403, None, ["list"], Exit.AUTH, "was refused"),
        (404, {"error": "no rollout of deployment 'x' on endpoint 'credit'"}, ["pause", "credit", "x"], Exit.NOT_FOUND,
         "no rollout of deployment 'x'"),
        (404, None, ["list"], Exit.NOT_FOUND, "no rollout API there"),
        (409, {"error": "rollout is rolled_back: it has already ended", "rollout": ROLLOUT},
         ["abort", "credit", "credit-v7"], Exit.CONFLICT, "(state rolled_back)"),
        (400, {"error": "state='nope' is not one of pending, ..."}, ["list", "--state", "nope"], Exit.USAGE,
         "state='nope'"),
        (200, "not the API", ["list"], Exit.APP_ERROR, "not the status API"),
    ],
    ids=["401", "403", "404-rollout", "404-route", "409", "400", "not-the-api"],
)  # fmt: skip
def test_each_answer_is_one_line_with_its_own_exit_code(
    scripted: tuple[ScriptedApp, str], status: int, body: object, argv: list[str], code: Exit, says: str
) -> None:
    app, url = scripted
    app.answers.append((status, body))
    ran = run_cli(argv, _env(url))
    assert ran.code == code
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aml-rollouts: ") and says in lines[0], ran.err
    assert len(app.requests) == 1, "a 4xx is not retried"


def test_a_5xx_is_retried_and_then_reported(scripted: tuple[ScriptedApp, str]) -> None:
    app, url = scripted
    app.answers.extend([(503, None), (500, None), (200, PAGE)])
    ran = run_cli(["list"], _env(url))
    assert ran.code == Exit.OK and len(app.requests) == 3
    app.answers.extend([(500, None)] * ATTEMPTS)
    failed = run_cli(["list"], _env(url))
    assert failed.code == Exit.APP_ERROR and "answered 500" in failed.err
    assert len(failed.slept) == ATTEMPTS - 1


def test_a_429_waits_as_long_as_retry_after_says_within_a_bound(scripted: tuple[ScriptedApp, str]) -> None:
    app, url = scripted
    app.headers["Retry-After"] = "7"
    app.answers.extend([(429, None), (200, PAGE)])
    ran = run_cli(["list"], _env(url))
    assert ran.code == Exit.OK and ran.slept == [7.0]


def test_an_unreachable_app_is_retried_then_one_line_naming_where(tmp_path: object) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    ran = run_cli(["get", "credit"], _env(f"http://127.0.0.1:{port}"))
    assert ran.code == Exit.UNREACHABLE
    assert ran.err.strip() == (
        f"aml-rollouts: cannot reach http://127.0.0.1:{port} (ConnectionError) after {ATTEMPTS} attempts; "
        "check the URL (AML_ROLLOUTS_URL) and your network"
    )
    assert len(ran.slept) == ATTEMPTS - 1


def test_an_action_posts_its_reason_and_reports_the_effect(scripted: tuple[ScriptedApp, str]) -> None:
    app, url = scripted
    answer = {"action": "pause", "effect": "pause", "note": "paused: bakes do not advance", "rollout": ROLLOUT}
    app.answers.append((202, answer))
    ran = run_cli(["pause", "credit", "credit-v7", "--reason", "incident 42", "-o", "json"], _env(url))
    assert ran.code == Exit.OK
    [request] = app.requests
    assert (request.method, request.path) == ("POST", "/api/rollouts/credit/credit-v7/pause")
    assert request.json() == {"reason": "incident 42"}
    assert request.headers["x-functions-key"] == "k"
    assert '"effect": "pause"' in ran.out


def test_bad_usage_exits_3_not_2_which_means_still_in_progress() -> None:
    for argv in (["frobnicate"], ["status"], ["status", "credit", "--timeout", "soon"], []):
        ran = run_cli(argv, {"AML_ROLLOUTS_URL": "http://127.0.0.1:9"})
        assert ran.code == Exit.USAGE, argv
        assert len(ran.err.strip().splitlines()) == 1 and "--help" in ran.err
