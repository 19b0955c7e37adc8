"""Approve and reject on the operator route, on fakes: who is recorded, and what is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.api.callers import FUNCTION_KEY, Caller, caller_of, reason_of
from app.api.controls import operator_action
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


def test_approve_and_reject_are_routes_of_the_operator_api(live: FakeWorld) -> None:
    for action in ("approve", "REJECT"):
        status, body = _act(live, "credit-v1", action, b'{"reason": "looks good"}')
        assert status == 409 and body["rollout"]["state"] == "live"  # it awaits no approval
    assert _act(live, "credit-v9", "approve")[0] == 404
    assert _act(live, "credit-v1", "approve", b"not json")[0] == 400
    assert live.rollout("credit-v1").progress.history == ()  # nothing recorded


def test_the_caller_is_the_principal_app_service_authentication_validated() -> None:
    assert caller_of({}) == Caller(FUNCTION_KEY) and not caller_of({}).validated
    named = caller_of({"X-MS-CLIENT-PRINCIPAL-NAME": "ops@contoso", "x-ms-client-principal-id": "oid-1",
                       "X-MS-CLIENT-PRINCIPAL-IDP": "aad"})  # fmt: skip
    assert named == Caller("ops@contoso", "oid-1", "aad") and named.validated


def test_the_caller_is_read_from_the_principals_claims_when_only_they_are_passed() -> None:
    claims = {
        "auth_typ": "aad",
        "claims": [
            {"typ": "preferred_username", "val": "ops@contoso"},
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "oid-2"},
        ],
    }
    encoded = base64.b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    assert caller_of({"X-MS-CLIENT-PRINCIPAL": encoded}) == Caller("ops@contoso", "oid-2", "aad")
    assert caller_of({"X-MS-CLIENT-PRINCIPAL": "%%%not base64"}) == Caller(FUNCTION_KEY)


@pytest.mark.parametrize("body", [b"[1]", b'{"reason": 3}', b"{"])
def test_a_reason_must_be_a_string_in_a_json_object(body: bytes) -> None:
    with pytest.raises(ValueError, match="reason"):
        reason_of(body)
    assert reason_of(b"") == "" and reason_of(b'{"reason": "  ok "}') == "ok"
