"""Fencing, drift and bad rows, end to end: two instances, a write that lands late, a hand-made traffic change."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from app.platform.workspace import WorkspaceRef
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.rows import LEASE_KEY, partition_key
from app.wiring import production_deps
from devkit import runner
from devkit.harness import OfflineApp, app_environment, model_registered
from devkit.stack import WORKSPACE_ID
from tests.conditions import wait_until

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}
#: Short ARM timeouts so a stalled request is given up on quickly; a lease that still fits them.
FAST = {"ARM_READ_TIMEOUT_SECONDS": "2", "ENDPOINT_LEASE_SECONDS": "120"}


def _go_live(app: OfflineApp, version: int, tags: dict[str, str] | None = None) -> None:
    app.stack.aml.seed_model("credit", version, tags={**CREDIT, **(tags or {})})
    [delivery] = app.deliver(model_registered("credit", version))
    assert delivery.acknowledged, delivery.attempts
    app.run_until_settled()


def _ledger() -> RolloutLedger:
    return RolloutLedger(production_deps().table("rollouts"))


def _expire_lease(endpoint: str) -> None:
    """The stalled instance's lease runs out (time passing, compressed): only ``Until`` changes."""
    ledger = _ledger()
    row = ledger.store.get(partition_key(WORKSPACE_ID, endpoint), LEASE_KEY)
    assert row is not None
    ledger.store.replace(row, {**row.data, "Until": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)})


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    wait_until(condition, timeout_s=seconds, what=what)


def _published(app: OfflineApp, kind: str, deployment: str = "") -> list[dict[str, Any]]:
    return [
        e for e in app.published() if e["type"] == kind and (not deployment or e["subject"].endswith(f"/{deployment}"))
    ]


def test_a_traffic_write_that_lands_after_its_lease_never_downgrades(app: OfflineApp) -> None:
    with app_environment(app.stack, **FAST):
        _go_live(app, 1)
        app.stack.aml.seed_model("credit", 2, tags=CREDIT)
        app.deliver(model_registered("credit", 2))  # v2's deployment is created
        app.stack.aml.wait_idle()
        # Instance A sends v2's traffic PUT; it hangs on the wire and is applied when the stall ends.
        stall = app.stack.aml.stall_requests(10, methods=["PUT"], path_pattern=r"/onlineEndpoints/credit$")
        instance_a = threading.Thread(target=runner.tick)
        instance_a.start()
        _wait_for(
            lambda: any(r["id"] == stall and r["hits"] for r in app.stack.aml.request_rules()), 20, "A's traffic PUT"
        )
        _expire_lease("credit")
        # Instance B takes the endpoint: v3 supersedes v2 (which has no traffic yet) and takes the traffic.
        app.stack.aml.seed_model("credit", 3, tags=CREDIT)
        app.deliver(model_registered("credit", 3))
        app.stack.aml.wait_idle()
        app.tick()
        assert app.traffic("credit") == {"credit-v3": 100}
        # A's PUT lands last, giving v2 everything: once A has given up waiting for its answer, the stall ends.
        _wait_for(lambda: not instance_a.is_alive(), 30, "instance A to give up on its PUT")
        app.stack.aml.release_stalls()
        _wait_for(lambda: app.traffic("credit") == {"credit-v2": 100}, 30, "A's late PUT to land")
        instance_a.join(30)
        app.run_until_settled()
        app.tick()
        app.tick()

    assert app.traffic("credit") == {"credit-v3": 100}
    assert app.rollout("credit-v3")["state"] == "live"
    assert app.rollout("credit-v2")["state"] == "superseded"
    assert not _published(app, "AmlEvents.Rollout.Live", "credit-v2")
    [restored] = _published(app, "AmlEvents.Rollout.TrafficRestored")
    facts = restored["data"]["facts"]
    assert (facts["late"]["traffic"], facts["restored"]["traffic"]) == ({"credit-v2": 100}, {"credit-v3": 100})
    # v3's row records both of its traffic writes: the cut-over, and the restore.
    assert sum("credit-v3=100%" in action for action in app.rollout("credit-v3")["actions"]) == 2
    assert not [r for r in app.stack.aml.requests(method="DELETE") if r.path.endswith("/credit-v3")]


def test_a_manual_traffic_change_is_drift_reported_once_and_never_fought(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    app.stack.aml.wait_idle()
    app.tick()  # v2's traffic is set
    assert app.traffic("credit") == {"credit-v2": 100}
    # An operator rolls back by hand before the app has finished v2's rollout.
    production_deps().aml(WorkspaceRef.from_arm_id(WORKSPACE_ID)).set_traffic("credit", {"credit-v1": 100}, {})
    app.stack.aml.wait_idle()
    writes_before = len([r for r in app.stack.aml.requests() if r.is_write])
    for _ in range(3):
        app.tick()

    assert app.traffic("credit") == {"credit-v1": 100}
    assert len([r for r in app.stack.aml.requests() if r.is_write]) == writes_before  # no traffic write at all
    assert len(_published(app, "AmlEvents.Rollout.TrafficDrift")) == 1
    rollout = app.rollout("credit-v2")
    assert rollout["state"] == "deploying"
    assert rollout["drift"] is True and rollout["observed"]["traffic"] == 0
    status, body = runner.get_status({"endpoint": "credit", "observe": "true"})
    assert status == 200
    [endpoint] = body["endpoints"]
    assert (endpoint["observedBy"], endpoint["drift"]) == ("aml", True)
    assert endpoint["observedTraffic"] == {"credit-v1": 100}
    assert endpoint["intendedTraffic"] == {"credit-v2": 100}

    # A new rollout for the endpoint is the go-ahead: it starts from the traffic as it is.
    _go_live(app, 3)
    assert app.traffic("credit") == {"credit-v3": 100}
    assert app.rollout("credit-v2")["state"] == "superseded"
    assert app.rollouts(endpoint="credit")[0]["drift"] is False


def test_status_reports_the_traffic_aml_shows_next_to_the_recorded_state(app: OfflineApp) -> None:
    _go_live(app, 1)
    production_deps().aml(WorkspaceRef.from_arm_id(WORKSPACE_ID)).set_traffic("credit", {}, {})
    app.stack.aml.wait_idle()
    cached = app.rollout("credit-v1")
    assert (cached["state"], cached["observed"]["by"]) == ("live", "last tick")
    status, body = runner.get_status({"observe": "true"})
    assert status == 200
    [fresh] = body["rollouts"]
    assert fresh["state"] == "live"
    assert fresh["observed"]["traffic"] == 0 and fresh["observed"]["by"] == "aml"
    assert fresh["drift"] is True
    assert runner.get_status({"observe": "maybe"})[0] == 400


def _row(plan: dict[str, Any], **data: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "Workspace": WORKSPACE_ID,
        "Endpoint": "credit",
        "Deployment": plan["deployment"],
        "State": "pending",
        "Active": True,
        "Plan": json.dumps(plan),
        "CreatedAt": now,
        "UpdatedAt": now,
        **data,
    }


def test_hand_edited_rows_never_stop_the_endpoints_other_rollouts(app: OfflineApp) -> None:
    _go_live(app, 1)
    ledger = _ledger()
    pk = partition_key(WORKSPACE_ID, "credit")
    plan = {
        "workspace_id": WORKSPACE_ID,
        "endpoint": "credit",
        "deployment": "credit-v9",
        "model_name": "credit",
        "model_version": "9",
        "instance_type": "Standard_DS3_v2",
        "some_future_field": "ignored",
    }
    ledger.store.insert(pk, "credit-v8", _row({**plan, "deployment": "credit-v8"}, State="paused"))
    ledger.store.insert(pk, "credit-v7", _row(plan, Plan="{not json"))
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    [delivery] = app.deliver(model_registered("credit", 2))
    assert delivery.acknowledged
    app.run_until_settled()

    assert app.traffic("credit") == {"credit-v2": 100}
    assert {r["deployment"]: r["state"] for r in app.rollouts()} == {"credit-v1": "live", "credit-v2": "live"}
    bad = ledger.store.get(pk, "credit-v8")
    assert bad is not None and bad.data["Active"] is False and "paused" in bad.data["DecodeError"]


def test_a_row_whose_step_raises_fails_alone(app: OfflineApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.rollout.run import effects

    original = effects.transition

    def step_that_trips_on_v2(rollout: Any, *args: Any) -> Any:
        if rollout.plan.deployment == "credit-v2":
            raise TypeError("can't compare offset-naive and offset-aware datetimes")
        return original(rollout, *args)

    monkeypatch.setattr(effects, "transition", step_that_trips_on_v2)
    # credit-v2 is recorded first, so it comes first in every pass over the endpoint.
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    app.stack.aml.seed_model("loans", 1, tags=CREDIT)
    app.deliver(model_registered("loans", 1))
    app.run_until_settled()

    v2 = app.rollout("credit-v2")
    assert v2["state"] == "failed" and "TypeError" in v2["reason"]  # the error itself, for the operator
    assert app.rollout("loans-v1")["state"] == "live"
    assert app.traffic("credit") == {"loans-v1": 100}
