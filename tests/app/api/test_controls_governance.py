"""Operator controls obey the same governance as the engine: the workspace allowlist (fail closed) and endpoint
ownership; and the audit records a caller only from an identity the platform validated."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from app.api.caller import FUNCTION_KEY, caller_of
from app.api.controls import operator_action
from app.rollout.decide.model import State
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}


def _act(world: FakeWorld, deployment: str, action: str, **settings: Any) -> tuple[int, Any]:
    deps = replace(world.deps, settings=replace(world.settings, **settings)) if settings else world.deps
    status, text = operator_action("credit", deployment, action, b'{"reason": "r"}', {}, deps)
    return status, json.loads(text)


@pytest.fixture
def adopted() -> FakeWorld:
    """``credit`` was made by hand and adopted (ADOPT_ENDPOINTS=credit); v1 then v2 went live on it."""
    world = FakeWorld(adopt_endpoints=frozenset({"credit"}))
    world.aml.create_endpoint("credit")
    world.wait_for_aml()
    world.aml.endpoints["credit"].tags = {"owner": "ml-platform"}  # not the app's managed-by tag
    for version in (1, 2):
        world.register("credit", version, CREDIT)
        world.settle()
    assert world.rollout("credit-v2").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v2": 100}
    return world


@pytest.mark.parametrize("action", ["rollback", "retry", "promote", "resume"])
def test_no_action_that_may_write_is_taken_on_an_endpoint_no_longer_adopted(adopted: FakeWorld, action: str) -> None:
    writes = len(adopted.aml.writes)

    status, body = _act(adopted, "credit-v2", action, adopt_endpoints=frozenset())

    assert status == 403 and "error" in body and body["rollout"]["state"] == "live"
    adopted.clock.advance(minutes=5)
    adopted.tick()
    assert len(adopted.aml.writes) == writes
    assert adopted.aml.traffic("credit") == {"credit-v2": 100}
    assert adopted.rollout("credit-v2").progress.history == ()  # nothing recorded for the engine to carry out


def test_while_adopted_the_operators_rollback_is_carried_out(adopted: FakeWorld) -> None:
    status, _ = _act(adopted, "credit-v2", "rollback")
    assert status == 202
    adopted.settle()
    assert adopted.aml.traffic("credit") == {"credit-v1": 100}


@pytest.mark.parametrize("action", ["pause", "abort"])
def test_actions_that_only_stop_the_app_stay_allowed_on_an_endpoint_it_may_not_change(
    adopted: FakeWorld, action: str
) -> None:
    # Nothing to stop on a live rollout: the answer is the state machine's (409), not a refusal for ownership.
    assert _act(adopted, "credit-v2", action, adopt_endpoints=frozenset())[0] == 409


@pytest.mark.parametrize("allowed", [frozenset(), frozenset({"/subscriptions/x/resourcegroups/y/providers/z/w/other"})])
@pytest.mark.parametrize("action", ["rollback", "abort", "pause", "retry"])
def test_every_action_is_refused_for_a_workspace_not_on_the_allowlist(
    adopted: FakeWorld, action: str, allowed: frozenset[str]
) -> None:
    writes, history = len(adopted.aml.writes), adopted.rollout("credit-v2").progress.history

    status, body = _act(adopted, "credit-v2", action, allowed_workspaces=allowed)

    assert status == 403 and "error" in body
    assert len(adopted.aml.writes) == writes and adopted.rollout("credit-v2").progress.history == history


# ---------------------------------------------------------------------------------------------- the audit's caller


def _principal(name: str, name_typ: str = "name", **extra: Any) -> str:
    """``x-ms-client-principal`` as App Service authentication injects it: base64 of its JSON."""
    body = {
        "auth_typ": "aad",
        "name_typ": name_typ,
        "role_typ": "roles",
        "claims": [{"typ": name_typ, "val": name}, {"typ": "roles", "val": "operator"}],
        **extra,
    }
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_without_easy_auth_a_client_sent_principal_is_not_trusted() -> None:
    forged = {"X-MS-CLIENT-PRINCIPAL-NAME": "ceo@contoso", "x-ms-client-principal": _principal("ceo@contoso")}
    assert caller_of(forged, easy_auth=False) == FUNCTION_KEY
    assert caller_of({}, easy_auth=False) == FUNCTION_KEY


def test_with_easy_auth_the_callers_name_comes_from_the_decoded_principal() -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": _principal("ops@contoso"), "x-ms-client-principal-name": "someone-else"}
    assert caller_of(headers, easy_auth=True) == "ops@contoso"
    upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
    assert caller_of({"x-ms-client-principal": _principal("ops@contoso", upn)}, easy_auth=True) == "ops@contoso"


@pytest.mark.parametrize(
    "value",
    [
        "not base64 !",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(json.dumps({"claims": "x"}).encode()).decode(),
        base64.b64encode(json.dumps({"name_typ": "name", "claims": [{"typ": "oid", "val": "1"}]}).encode()).decode(),
    ],
)
def test_with_easy_auth_a_principal_that_is_not_what_the_platform_sends_names_no_one(value: str) -> None:
    assert caller_of({"x-ms-client-principal": value}, easy_auth=True) == FUNCTION_KEY
    assert caller_of({"x-ms-client-principal-name": "ops@contoso"}, easy_auth=True) == FUNCTION_KEY


def test_the_forged_header_reaches_no_audit_entry(adopted: FakeWorld) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL-NAME": "ceo@contoso"}
    status, _ = operator_action("credit", "credit-v2", "rollback", b"", headers, adopted.deps)
    assert status == 202
    [entry] = adopted.rollout("credit-v2").progress.history
    assert entry["caller"] == FUNCTION_KEY

    signed = {"x-ms-client-principal": _principal("ops@contoso")}
    easy = replace(adopted.deps, settings=replace(adopted.settings, easy_auth_enabled=True))
    adopted.settle()
    assert operator_action("credit", "credit-v2", "retry", b"", signed, easy)[0] == 202
    assert [h["caller"] for h in adopted.rollout("credit-v2").progress.history] == [FUNCTION_KEY, "ops@contoso"]
