"""Approvals end to end with the real SDKs against the emulator: a production rollout of a promoted version waits,
warm and smoke-tested with no traffic, for an operator's approve or reject; decisions delivered twice, or two
operators deciding at once, carry out exactly one decision."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.harness import OfflineApp, model_registered
from devkit.promotion import Promotion, set_up
from devkit.stack import DevStack

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit", "promote": "true"}
APPROVALS = {"REQUIRE_APPROVAL": "true"}


@pytest.fixture
def promotion(stack: DevStack) -> Promotion:
    return set_up(stack)


@pytest.fixture
def app(stack: DevStack) -> OfflineApp:
    return OfflineApp(stack)


def _awaiting_in_production(promotion: Promotion, app: OfflineApp) -> None:
    """credit v1 proven in staging, promoted, and awaiting approval in production."""
    with promotion.staging():
        promotion.stack.aml.seed_model("credit", 1, tags=CREDIT)
        app.deliver(model_registered("credit", 1))
        app.run_until_settled()
        app.drain_followups()
    with promotion.production(**APPROVALS):
        app.deliver(*promotion.forward())
        app.run_until_settled()
        assert app.rollout("credit-v1")["state"] == "awaiting_approval"
    assert promotion.production_traffic("credit") == {}  # warm, smoke-tested, no traffic


def _decided(rollout: dict[str, object]) -> list[str]:
    """The decisions recorded on production's rollout (``effect`` per entry)."""
    history = rollout["progress"]["history"]  # type: ignore[index]
    return [entry["effect"] for entry in history if entry["action"] in ("approve", "reject")]


def test_an_approve_delivered_twice_rolls_out_once(promotion: Promotion, app: OfflineApp) -> None:
    _awaiting_in_production(promotion, app)
    with promotion.production(**APPROVALS):
        first = app.control("credit-v1", "approve", "reviewed")
        second = app.control("credit-v1", "approve", "reviewed")
        app.run_until_settled()
        rollout = app.rollout("credit-v1")
    assert first[0] == second[0] == 202
    assert second[1]["effect"] == "none"  # the same decision again changes nothing
    assert rollout["state"] == "live" and _decided(rollout) == ["request_approve"]
    assert promotion.production_traffic("credit") == {"credit-v1": 100}
    # One server serves (and logs) both workspaces: the path names production's.
    puts = promotion.stack.aml.requests(
        method="PUT", path_contains="/workspaces/mlw-prod/onlineEndpoints/credit/deployments/credit-v1"
    )
    assert len(puts) == 1  # deployed once, before the wait


def test_a_reject_delivered_twice_deletes_the_deployment_once(promotion: Promotion, app: OfflineApp) -> None:
    _awaiting_in_production(promotion, app)
    with promotion.production(**APPROVALS):
        first = app.control("credit-v1", "reject", "not now")
        second = app.control("credit-v1", "reject", "not now")
        app.run_until_settled()
        app.tick()  # cleanup
        promotion.production_workspace.wait_idle()
        rollout = app.rollout("credit-v1")
    assert first[0] == second[0] == 202 and second[1]["effect"] == "none"
    assert rollout["state"] == "rejected" and _decided(rollout) == ["request_reject"]
    assert promotion.production_workspace.deployment_state("credit", "credit-v1") is None
    deletes = promotion.stack.aml.requests(
        method="DELETE", path_contains="/workspaces/mlw-prod/onlineEndpoints/credit/deployments/credit-v1"
    )
    assert len(deletes) == 1
    assert promotion.production_traffic("credit") == {}


def test_two_operators_deciding_at_once_carry_out_exactly_one_decision(promotion: Promotion, app: OfflineApp) -> None:
    _awaiting_in_production(promotion, app)
    with promotion.production(**APPROVALS), ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda action: app.control("credit-v1", action, "at once"), ["approve", "reject"]))
        app.run_until_settled()
        app.tick()
        rollout = app.rollout("credit-v1")
    statuses = sorted(status for status, _ in answers)
    assert statuses == [202, 409]  # one decision wins; the other is refused, never both carried out
    won = next(body["action"] for status, body in answers if status == 202)
    assert _decided(rollout) == [f"request_{won}"]
    assert rollout["state"] == ("live" if won == "approve" else "rejected")
    assert promotion.production_traffic("credit") == ({"credit-v1": 100} if won == "approve" else {})
