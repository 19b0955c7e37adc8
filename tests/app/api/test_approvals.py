"""Approve and reject on the operator route, on fakes: who is recorded, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.api.controls import operator_action
from app.api.reason import reason_of
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}


def _act(world: FakeWorld, deployment: str, action: str, body: bytes = b"", **headers: str) -> tuple[int, Any]:
    status, text = operator_action("credit", deployment, action, body, headers, world.deps)
    return status, json.loads(text)


@pytest.fixture
def live() -> FakeWorld:
    world = FakeWorld()
    world.register("credit", 1, CREDIT)
    world.settle()
    return world


def test_approve_and_reject_obey_the_operator_apis_governance(live: FakeWorld) -> None:
    from dataclasses import replace

    live.deps = replace(live.deps, settings=replace(live.deps.settings, allowed_workspaces=frozenset()))
    for action in ("approve", "reject"):
        status, body = _act(live, "credit-v1", action)
        assert status == 403 and "AML_ALLOWED_WORKSPACES" in body["error"]


def test_approve_and_reject_are_routes_of_the_operator_api(live: FakeWorld) -> None:
    for action in ("approve", "REJECT"):
        status, body = _act(live, "credit-v1", action, b'{"reason": "looks good"}')
        assert status == 409 and body["rollout"]["state"] == "live"  # it awaits no approval
    assert _act(live, "credit-v9", "approve")[0] == 404
    assert _act(live, "credit-v1", "approve", b"not json")[0] == 400
    assert live.rollout("credit-v1").progress.history == ()  # nothing recorded


@pytest.mark.parametrize("body", [b"[1]", b'{"reason": 3}', b"{"])
def test_a_reason_must_be_a_string_in_a_json_object(body: bytes) -> None:
    with pytest.raises(ValueError, match="reason"):
        reason_of(body)
    assert reason_of(b"") == "" and reason_of(b'{"reason": "  ok "}') == "ok"


def test_a_decision_answers_503_when_azure_ml_cannot_be_read_and_records_nothing(live: FakeWorld) -> None:
    """The governance check reads the endpoint; a failed read is an answer to retry, not an error of the app."""
    live.aml.fail_next("observe", 503)
    status, body = _act(live, "credit-v1", "approve")
    assert status == 503 and "error" in body
    assert live.rollout("credit-v1").progress.history == ()
