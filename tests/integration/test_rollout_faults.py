"""The rollout engine under the faults real Azure produces: refused deletes, 403 windows, stacked canaries, long
queues, Failed endpoints, Canceled and Scaling deployments. Real SDKs against the emulators."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from app.intake.outcome import OutcomeKind
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.rows import partition_key
from app.wiring import production_deps
from devkit.harness import OfflineApp, app_environment, model_registered

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}
ENDPOINT_WRITE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"


def _ledger() -> RolloutLedger:
    return RolloutLedger(production_deps().table("rollouts"))


def _register(app: OfflineApp, version: int, model: str = "credit", **tags: str) -> None:
    app.stack.aml.seed_model(model, version, tags={**CREDIT, **tags})
    [delivery] = app.deliver(model_registered(model, version))
    assert delivery.acknowledged, delivery.attempts


def _go_live(app: OfflineApp, version: int, **tags: str) -> None:
    _register(app, version, **tags)
    app.run_until_settled()


def _due_now(app: OfflineApp) -> None:
    """Let every back-off (a rollout's and cleanup's) elapse now; the real ones are 30 s and up."""
    ledger = _ledger()
    for row in ledger.store.query("Active eq true"):
        data = dict(row.data)
        data["NextAttemptAt"] = ""
        if data.get("Cleanup"):
            data["Cleanup"] = json.dumps({**json.loads(str(data["Cleanup"])), "nextAttemptAt": None})
        ledger.store.replace(row, data)


def _set_row(app: OfflineApp, deployment: str, **values: Any) -> None:
    ledger = _ledger()
    row = ledger.store.get(partition_key(app.stack.aml.workspace_id, "credit"), deployment)
    assert row is not None
    ledger.store.replace(row, {**row.data, **values})


def _deployments(app: OfflineApp) -> list[str]:
    app.stack.aml.wait_idle()
    return sorted(app.stack.aml.snapshot()["endpoints"]["credit"]["deployments"])


def _writes(app: OfflineApp) -> list[tuple[str, str]]:
    """The writes Azure ML received, as (method, the resource's name)."""
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in app.stack.aml.requests() if r.is_write]


def _settle_cleanup(app: OfflineApp, ticks: int = 6) -> None:
    for _ in range(ticks):
        app.tick()
        if not [r for r in app.rollouts() if r.get("cleanup")]:
            return
    raise AssertionError(f"cleanup still owed after {ticks} ticks: {app.rollouts()}")


# -- 1. cleanup never fails a live rollout -------------------------------------------------------


def test_a_refused_cleanup_delete_never_fails_a_live_rollout_and_is_retried(app: OfflineApp) -> None:
    with app_environment(app.stack, KEEP_DEPLOYMENTS="1"):
        _go_live(app, 1)
        app.stack.aml.fail_deletes("credit", "credit-v1", status=403)  # the identity may not delete (yet)
        _go_live(app, 2)
        v2 = app.rollout("credit-v2")
        assert v2["state"] == "live", v2
        assert app.traffic("credit") == {"credit-v2": 100}
        assert v2["cleanup"]["attempts"] == 1
        assert "403" in v2["cleanup"]["lastError"]
        assert "AmlEvents.Rollout.Failed" not in app.published_types()
        # Retried with back-off, reported once, and it does not hold the endpoint's write turn: v3 goes live meanwhile.
        _due_now(app)
        app.tick()
        _go_live(app, 3)
        assert app.traffic("credit") == {"credit-v3": 100}
        assert app.published_types().count("AmlEvents.Rollout.CleanupFailed") == 1
        assert {r["deployment"]: r["state"] for r in app.rollouts()} == {
            "credit-v1": "live",
            "credit-v2": "live",
            "credit-v3": "live",
        }
        # Once deletes are allowed, the next tries remove what KEEP_DEPLOYMENTS=1 does not keep.
        app.stack.aml.clear_faults()
        _due_now(app)
        _settle_cleanup(app)
        assert _deployments(app) == ["credit-v3"]


# -- 2. permission and identity errors never lose an event ---------------------------------------


def test_models_registered_during_a_window_of_403s_are_deployed_after_it(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.stack.aml.seed_model("fraud", 1, tags={"deploy": "true", "endpoint": "fraud"})
    events = [model_registered("credit", 1), model_registered("fraud", 1)]
    # A fresh role assignment still propagating (up to 10 minutes); the window runs on the emulator's clock, so it
    # lasts however long the first deliveries take and ends when the test moves the clock past it.
    app.stack.aml.deny_requests(403, seconds=600)
    deliveries = app.deliver(*events, max_attempts=1)
    for delivery in deliveries:  # raised, so Event Grid redelivers; today they were acknowledged and lost
        assert not delivery.acknowledged, delivery.attempts
        [denied] = delivery.errors
        assert isinstance(denied, HttpResponseError) and denied.status_code == 403
    app.stack.aml.advance_clock(600)  # the role assignment took effect
    assert all(d.acknowledged for d in app.deliver(*events))  # Event Grid's redelivery
    app.run_until_settled()
    assert app.rollout("credit-v1")["state"] == "live"
    assert app.rollout("fraud-v1")["state"] == "live"


def test_a_denied_write_waits_naming_the_permission_then_proceeds(app: OfflineApp) -> None:
    app.stack.aml.deny_requests(403, methods=["PUT"], path_pattern="onlineEndpoints/credit$", seconds=600)
    _register(app, 1)
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "deploying", rollout  # it took the endpoint's turn for that write
    assert ENDPOINT_WRITE in rollout["reason"]
    assert rollout["errorSource"] == "permission"
    app.stack.aml.clear_faults()  # the role assignment took effect
    _due_now(app)
    app.run_until_settled()
    assert app.rollout("credit-v1")["state"] == "live"
    assert app.rollout("credit-v1")["errorSource"] is None


def test_a_permission_still_missing_after_the_budget_fails_clearly(app: OfflineApp) -> None:
    app.stack.aml.deny_requests(403, methods=["PUT"], path_pattern="onlineEndpoints/credit$")
    _register(app, 1)
    _set_row(app, "credit-v1", DeniedSince=(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)).isoformat())
    _due_now(app)
    app.tick()
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "failed" and rollout["errorSource"] == "permission"
    assert "PERMISSION_RETRY_MINUTES" in rollout["reason"] and ENDPOINT_WRITE in rollout["reason"]
    assert "AmlEvents.Rollout.Failed" in app.published_types()


def test_an_event_denied_for_longer_than_the_budget_is_acknowledged_and_reported(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.stack.aml.deny_requests(403)
    event = model_registered("credit", 1)
    event["eventTime"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)).isoformat()
    [delivery] = app.deliver(event, max_attempts=1)
    assert delivery.acknowledged and delivery.kind is OutcomeKind.FAILED
    assert "PERMISSION_RETRY_MINUTES" in delivery.outcome
    assert "Microsoft.MachineLearningServices/workspaces/models/versions/read" in delivery.outcome
    assert app.rollouts() == []


# -- 4. reasons name their source ----------------------------------------------------------------


def test_an_internal_error_is_not_reported_as_azure_ml_refusing(
    app: OfflineApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.azure.aml import AmlGateway

    def broken(self: AmlGateway, plan: Any, now: dt.datetime) -> None:
        raise KeyError("instance_type")

    monkeypatch.setattr(AmlGateway, "create_deployment", broken)
    _go_live(app, 1)
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "failed"
    assert "KeyError" in rollout["reason"]  # the error itself, not "Azure ML refused"
    assert rollout["errorSource"] == "internal"


# -- 5. canaries and mirrors don't pile up -------------------------------------------------------


def test_a_new_canary_replaces_the_earlier_canary_of_the_same_model(app: OfflineApp) -> None:
    _go_live(app, 1)
    _go_live(app, 2, traffic="20")
    assert app.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
    _go_live(app, 3, traffic="20")
    assert app.traffic("credit") == {"credit-v1": 80, "credit-v3": 20}  # not v1 64%, v2 16%, v3 20%
    v2 = app.rollout("credit-v2")
    assert v2["state"] == "superseded"
    assert "credit-v3" in v2["reason"]  # the deployment that took over its traffic
    _settle_cleanup(app)
    assert _deployments(app) == ["credit-v1", "credit-v3"]


def test_a_dark_deployments_mirror_does_not_survive_a_later_cut_over(app: OfflineApp) -> None:
    _go_live(app, 1)
    _go_live(app, 2, traffic="0", mirror="10")
    assert app.stack.aml.endpoint_state("credit")["properties"]["mirrorTraffic"] == {"credit-v2": 10}
    _go_live(app, 3)
    properties = app.stack.aml.endpoint_state("credit")["properties"]
    assert {k: v for k, v in properties.get("mirrorTraffic", {}).items() if v} == {}
    assert app.traffic("credit") == {"credit-v3": 100}
    _settle_cleanup(app)
    assert app.rollout("credit-v2")["state"] == "superseded"
    assert _deployments(app) == ["credit-v1", "credit-v3"]


def test_cleanup_removes_every_surplus_deployment_over_later_ticks(app: OfflineApp) -> None:
    for version in (1, 2):
        _go_live(app, version)
    with app_environment(app.stack, KEEP_DEPLOYMENTS="1"):
        _go_live(app, 3)
        _settle_cleanup(app)
    assert _deployments(app) == ["credit-v3"]  # one cut-over, two surplus deployments removed


# -- 6. timeouts count the rollout's own time ----------------------------------------------------


def test_time_spent_queued_does_not_count_toward_the_timeout(app: OfflineApp) -> None:
    app.stack.aml.set_operation_duration(600)  # the endpoint stays Creating: fraud-v1 holds the turn meanwhile
    app.stack.aml.seed_model("fraud", 1, tags=CREDIT)
    app.deliver(model_registered("fraud", 1))
    _register(app, 1)
    hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    for deployment in ("fraud-v1", "credit-v1"):  # both were queued hours ago; fraud-v1 took its turn just now
        _set_row(app, deployment, CreatedAt=hours_ago)
    app.tick(settle=False)
    assert app.rollout("fraud-v1")["state"] == "deploying"
    queued = app.rollout("credit-v1")
    assert queued["state"] == "pending" and queued["actions"] == []
    assert "fraud-v1" in queued["reason"]  # the rollout it waits for


# -- 12. states the emulator never showed --------------------------------------------------------


def test_a_failed_endpoint_is_put_again_once_and_the_rollout_proceeds(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.set_provisioning_state("credit", state="Failed")
    app.stack.aml.clear_requests()
    _go_live(app, 2)
    rollout = app.rollout("credit-v2")
    assert rollout["state"] == "live", rollout
    assert _writes(app)[:2] == [("PUT", "credit"), ("PUT", "credit-v2")]  # the endpoint recovered first
    assert app.traffic("credit") == {"credit-v2": 100}


def test_an_endpoint_failing_again_after_its_re_put_fails_the_rollout(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.set_provisioning_state("credit", state="Failed")
    app.stack.aml.end_next_operations("credit", state="Failed")
    app.stack.aml.clear_requests()
    _go_live(app, 2)
    rollout = app.rollout("credit-v2")
    assert rollout["state"] == "failed"
    assert _writes(app) == [("PUT", "credit")]  # one PUT to recover it, and no deployment
    assert app.traffic("credit") == {"credit-v1": 100}


def test_a_canceled_deployment_is_put_again_once(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.end_next_operations("credit", "credit-v2", state="Canceled")
    app.stack.aml.clear_requests()
    _go_live(app, 2)
    rollout = app.rollout("credit-v2")
    assert rollout["state"] == "live", rollout
    assert [w for w in _writes(app) if w[1] == "credit-v2"] == [("PUT", "credit-v2")] * 2


def test_a_scaling_deployment_counts_as_busy(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.set_provisioning_state("credit", "credit-v1", state="Scaling", seconds=3)
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.stack.aml.clear_requests()
    [delivery] = app.deliver(model_registered("credit", 2))
    assert delivery.kind is OutcomeKind.HANDLED
    waiting = app.rollout("credit-v2")
    assert waiting["state"] == "pending" and "credit-v1" in waiting["reason"]  # the deployment AML is busy with
    assert [r for r in app.stack.aml.requests() if r.is_write] == []
    app.run_until_settled()
    assert app.rollout("credit-v2")["state"] == "live"
