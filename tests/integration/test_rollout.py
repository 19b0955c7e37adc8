"""ModelRegistered → rollout, end to end: real azure-ai-ml / mgmt / data-tables / eventgrid SDKs, local emulators."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from app.intake.outcome import OutcomeKind
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.rows import partition_key
from app.wiring import production_deps
from devkit import runner
from devkit.harness import OfflineApp, app_environment, model_registered
from tests.conditions import pollers_left, wait_until
from tests.fakes import OTHER_WORKSPACE_ID

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}


def _deployment_puts(app: OfflineApp) -> list[Any]:
    return [r for r in app.stack.aml.requests(method="PUT", path_contains="/deployments/")]


def _writes(app: OfflineApp) -> list[Any]:
    return [r for r in app.stack.aml.requests() if r.is_write]


def _go_live(app: OfflineApp, version: int, tags: dict[str, str] | None = None) -> None:
    app.stack.aml.seed_model("credit", version, tags={**CREDIT, **(tags or {})})
    [delivery] = app.deliver(model_registered("credit", version))
    assert delivery.acknowledged, delivery.attempts
    app.run_until_settled()


def test_new_endpoint_goes_live_blue_green(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit_risk.v2", 1, tags=CREDIT)
    [delivery] = app.deliver(model_registered("credit_risk.v2", 1))
    # The event's own pass creates the endpoint and leaves the rest to follow-ups and the timer.
    assert delivery.kind is OutcomeKind.HANDLED
    assert app.rollout("credit-risk-v2-v1")["state"] == "deploying"
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in _writes(app)] == [("PUT", "credit")]
    ticks = app.run_until_settled()
    rollout = app.rollout("credit-risk-v2-v1")
    assert rollout["state"] == "live", rollout
    assert app.traffic("credit") == {"credit-risk-v2-v1": 100}
    assert ticks <= 3
    assert app.published_types() == ["AmlEvents.Rollout.Started", "AmlEvents.Rollout.Live"]
    assert rollout["actions"] == [
        "PUT endpoint credit",
        "PUT deployment credit-risk-v2-v1 (1 x Standard_DS3_v2)",
        "PUT endpoint credit traffic credit-risk-v2-v1=100%",
    ]


def test_canary_onto_an_existing_live_deployment(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.seed_model("credit", 2, tags={**CREDIT, "traffic": "20"})
    app.deliver(model_registered("credit", 2))
    ticks = app.run_until_settled()
    assert ticks <= 2
    assert app.rollout("credit-v2")["state"] == "canary"
    assert app.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
    assert app.published_types()[-1] == "AmlEvents.Rollout.Canary"


def test_blue_green_cut_over_keeps_previous_and_deletes_older(app: OfflineApp) -> None:
    for version in (1, 2, 3):
        _go_live(app, version)
    assert app.traffic("credit") == {"credit-v3": 100}
    app.stack.aml.wait_idle()
    deployments = app.stack.aml.snapshot()["endpoints"]["credit"]["deployments"]
    assert sorted(deployments) == ["credit-v2", "credit-v3"]  # KEEP_DEPLOYMENTS=2: live + previous


def test_the_same_event_three_times_in_sequence_deploys_once(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    event = model_registered("credit", 1)
    deliveries = app.deliver(event, event, event)
    assert [d.kind for d in deliveries] == [OutcomeKind.HANDLED, OutcomeKind.DUPLICATE, OutcomeKind.DUPLICATE]
    app.run_until_settled()
    assert len(_deployment_puts(app)) == 1
    assert app.rollout("credit-v1")["eventIds"] == [event["id"]]


def test_the_same_event_three_times_concurrently_deploys_once(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.stack.aml.set_latency(30)  # widen the race window
    events = [model_registered("credit", 1, eid=f"dup-{n}") for n in range(3)]
    threads = [threading.Thread(target=app.deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.stack.aml.set_latency(0)
    app.run_until_settled()
    assert len(_deployment_puts(app)) == 1
    assert sorted(app.rollout("credit-v1")["eventIds"]) == ["dup-0", "dup-1", "dup-2"]
    assert app.rollout("credit-v1")["state"] == "live"


def test_out_of_order_older_version_is_superseded_and_never_gets_traffic(app: OfflineApp) -> None:
    _go_live(app, 3)
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    [delivery] = app.deliver(model_registered("credit", 2))
    assert delivery.kind is OutcomeKind.HANDLED
    assert app.rollout("credit-v2")["state"] == "superseded"  # by the event's own pass
    app.run_until_settled()
    assert app.rollout("credit-v2")["state"] == "superseded"
    assert app.traffic("credit") == {"credit-v3": 100}
    assert not app.stack.aml.requests(path_contains="/deployments/credit-v2")  # never even deployed
    assert "AmlEvents.Rollout.Superseded" in app.published_types()


def test_two_versions_within_one_tick_end_with_the_newer_live_and_no_409_failure(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.stack.aml.seed_model("credit", 3, tags=CREDIT)
    app.deliver(model_registered("credit", 2), model_registered("credit", 3))
    app.run_until_settled()
    states = {r["deployment"]: r["state"] for r in app.rollouts()}
    assert states == {"credit-v1": "live", "credit-v2": "superseded", "credit-v3": "live"}
    assert app.traffic("credit") == {"credit-v3": 100}
    assert not [r for r in app.rollouts() if r["state"] == "failed"]


def test_injected_429_and_500_on_a_fifth_of_requests_still_converge(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.stack.aml.seed_model("credit", 2, tags={**CREDIT, "traffic": "20"})
    app.stack.aml.inject_faults(rate_429=0.1, rate_500=0.1, retry_after_s=0.05, seed=7)
    with app_environment(app.stack, ROLLOUT_MAX_ATTEMPTS="50"):
        app.deliver(model_registered("credit", 1), max_attempts=10)
        for _ in range(30):
            runner.tick()
            app.stack.aml.wait_idle()
            _clear_backoff(app)
            if app.rollouts() and app.rollouts()[0]["state"] == "live":
                break
        app.deliver(model_registered("credit", 2), max_attempts=10)
        for _ in range(30):
            runner.tick()
            app.stack.aml.wait_idle()
            _clear_backoff(app)
            if app.rollout("credit-v2")["state"] == "canary":
                break
    injected = [r for r in app.stack.aml.requests() if r.injected]
    assert injected, "the fault plan injected nothing"
    assert app.rollout("credit-v1")["state"] == "canary" or app.rollout("credit-v1")["state"] == "live"
    assert app.rollout("credit-v2")["state"] == "canary"
    assert app.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
    assert len(_deployment_puts(app)) - sum(1 for r in _deployment_puts(app) if r.injected) == 2


def _clear_backoff(app: OfflineApp) -> None:
    """Simulate the back-off delay elapsing (the real one is 30 s and up)."""
    ledger = RolloutLedger(production_deps().table("rollouts"))
    for row in ledger.store.query("Active eq true"):
        if row.data.get("NextAttemptAt"):
            ledger.store.replace(row, {**row.data, "NextAttemptAt": ""})


def test_a_failed_deployment_leaves_traffic_alone_and_reports_its_logs(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.fail_deployments("credit-v2")
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    app.run_until_settled()
    rollout = app.rollout("credit-v2")
    assert rollout["state"] == "failed"
    assert rollout["logs"]
    assert app.traffic("credit") == {"credit-v1": 100}
    [failed] = [e for e in app.published() if e["type"] == "AmlEvents.Rollout.Failed"]
    assert failed["data"]["facts"]["logs"]
    app.stack.aml.wait_idle()
    assert "credit-v2" not in app.stack.aml.snapshot()["endpoints"]["credit"]["deployments"]  # deleted


def test_a_rollout_times_out(app: OfflineApp) -> None:
    app.stack.aml.set_operation_duration(600)  # the endpoint never finishes creating
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    ledger = RolloutLedger(production_deps().table("rollouts"))
    row = ledger.store.get(partition_key(app.stack.aml.workspace_id, "credit"), "credit-v1")
    assert row is not None
    took_turn = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61)).isoformat()
    ledger.store.replace(row, {**row.data, "TurnTakenAt": took_turn})
    app.tick(settle=False)
    # One tick while the endpoint is still being created: only the timeout fails it (otherwise it waits).
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "failed"
    assert "AmlEvents.Rollout.Failed" in app.published_types()


def test_a_crash_between_put_and_ledger_update_recovers_without_a_second_put(
    app: OfflineApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _go_live(app, 1)
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    original = RolloutLedger.save
    calls = {"n": 0}

    def crash_after_the_put(self: RolloutLedger, rollout: Any, now: dt.datetime) -> Any:
        if rollout.actions and rollout.actions[-1].startswith("PUT deployment credit-v2"):
            calls["n"] += 1
            raise KeyboardInterrupt("the instance died after sending the PUT")
        return original(self, rollout, now)

    monkeypatch.setattr(RolloutLedger, "save", crash_after_the_put)
    with pytest.raises(KeyboardInterrupt):
        runner.deliver([model_registered("credit", 2)], max_attempts=1)
    monkeypatch.setattr(RolloutLedger, "save", original)
    assert calls["n"] == 1
    _expire_leases(app)
    app.run_until_settled()
    assert app.rollout("credit-v2")["state"] == "live"
    assert len([r for r in _deployment_puts(app) if "credit-v2" in r.path]) == 1


def _expire_leases(app: OfflineApp) -> None:
    """The crashed instance's lease would expire on its own; make it so now."""
    ledger = RolloutLedger(production_deps().table("rollouts"))
    for row in ledger.store.query("RowKey eq '~lease'"):
        ledger.store.replace(row, {"Owner": "", "Until": dt.datetime.now(dt.UTC)})


def test_plan_mode_writes_nothing_to_azure_ml(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    with app_environment(app.stack, DEPLOY_MODE="plan"):
        [delivery] = app.deliver(model_registered("credit", 1))
        app.tick()
        assert delivery.kind is OutcomeKind.PLANNED
        planned = app.rollout("credit-v1")
        assert planned["state"] == "planned"
        assert (planned["endpoint"], planned["instanceCount"], planned["instanceType"]) == (
            "credit",
            1,
            "Standard_DS3_v2",
        )
    assert _writes(app) == []
    assert app.published_types() == ["AmlEvents.Rollout.Planned"]


@pytest.mark.parametrize(
    ("tags", "names"),
    [
        ({"instance_count": "9"}, ["instance_count", "'9'"]),
        (
            {"instance_type": "Standard_NC96ads_A100_v4"},
            ["instance_type", "Standard_NC96ads_A100_v4", "ALLOWED_INSTANCE_TYPES"],
        ),
        ({"traffic": "150"}, ["traffic", "'150'"]),
    ],
)
def test_guardrails_reject_and_write_nothing(app: OfflineApp, tags: dict[str, str], names: list[str]) -> None:
    app.stack.aml.seed_model("credit", 1, tags={**CREDIT, **tags})
    [delivery] = app.deliver(model_registered("credit", 1))
    assert delivery.acknowledged and delivery.kind is OutcomeKind.REJECTED
    # The log line and the notification name the tag, its value and the setting that bounds it.
    assert all(name in delivery.outcome for name in names)
    assert app.rollout("credit-v1")["state"] == "rejected"
    assert _writes(app) == []
    [rejected] = app.published()
    assert rejected["type"] == "AmlEvents.Rollout.Rejected"
    assert all(name in rejected["data"]["summary"] for name in names)


def test_a_foreign_workspace_writes_nothing_and_calls_nothing(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    [delivery] = app.deliver(model_registered("credit", 1, workspace_id=OTHER_WORKSPACE_ID))
    assert delivery.kind is OutcomeKind.IGNORED and "AML_ALLOWED_WORKSPACES" in delivery.outcome
    assert app.stack.aml.requests() == []
    assert app.rollouts() == []
    assert app.published() == []


def test_model_not_opted_in_is_skipped_after_one_read(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags={"deploy": "false"})
    [delivery] = app.deliver(model_registered("credit", 1, tags={"deploy": "true"}))  # the event's tags lie
    assert delivery.kind is OutcomeKind.SKIPPED and "deploy=true" in delivery.outcome  # the tag that opts in
    assert [r.method for r in app.stack.aml.requests()] == ["GET"]
    assert app.rollouts() == []


def test_a_deleted_model_is_a_clear_permanent_error(app: OfflineApp) -> None:
    event = model_registered("ghost", 1)
    event["eventTime"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()  # past the read-lag window
    [delivery] = app.deliver(event)
    assert delivery.acknowledged and delivery.kind is OutcomeKind.REJECTED
    assert "ghost:1" in delivery.outcome
    assert app.rollouts() == []


def test_the_status_shows_each_endpoint_s_traffic_writes_over_time(app: OfflineApp) -> None:
    """``endpoints[].trafficHistory``: the splits the app set, oldest first, when and for which rollout."""
    _go_live(app, 1)
    _go_live(app, 2, {"traffic": "20"})
    _, body = runner.get_status({"endpoint": "credit"})
    [endpoint] = body["endpoints"]
    history = endpoint["trafficHistory"]
    assert [(h["traffic"], h["by"], h["status"]) for h in history] == [
        ({"credit-v1": 100}, "credit-v1", "accepted"),
        ({"credit-v1": 80, "credit-v2": 20}, "credit-v2", "accepted"),
    ]
    times = [dt.datetime.fromisoformat(h["at"]) for h in history]
    assert times == sorted(times)


def test_rollout_status_filters(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.seed_model("fraud", 4, tags={"deploy": "true", "endpoint": "fraud", "instance_count": "99"})
    app.deliver(model_registered("fraud", 4))
    assert [r["deployment"] for r in app.rollouts()] == ["fraud-v4", "credit-v1"]  # newest first
    assert [r["deployment"] for r in app.rollouts(endpoint="credit")] == ["credit-v1"]
    assert [r["deployment"] for r in app.rollouts(model="FRAUD")] == ["fraud-v4"]
    assert [r["deployment"] for r in app.rollouts(state="rejected")] == ["fraud-v4"]
    assert app.rollouts(state="live", endpoint="fraud") == []
    status, body = runner.get_status({"state": "bogus"})
    assert status == 400
    assert "state" in body["error"] and "bogus" in body["error"]
    status, body = runner.get_status({"colour": "blue"})
    assert status == 400


def test_ack_path_makes_few_arm_calls_and_leaves_no_poller(app: OfflineApp) -> None:
    app.stack.aml.set_poll_interval(0.1)  # a lingering poller would come back ten times a second
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    started = time.time()
    [delivery] = app.deliver(model_registered("credit", 1))
    returned = time.time()
    assert delivery.acknowledged
    during = app.stack.aml.requests(since=started)
    assert len(during) <= 4, [(r.method, r.path) for r in during]
    assert returned - started < 10
    app.stack.aml.wait_idle()  # the operations end: a poller left behind would come back for their outcome
    wait_until(lambda: not pollers_left(), timeout_s=5, what="every SDK poller to end")
    assert app.stack.aml.requests(since=returned) == []


def test_reconciler_with_nothing_in_flight_makes_no_azure_call(app: OfflineApp) -> None:
    _go_live(app, 1)
    app.stack.aml.clear_requests()
    for _ in range(3):
        app.tick()
    assert app.stack.aml.requests() == []


def test_a_failing_observation_backs_off_and_a_refusal_fails_the_rollout(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    # Every endpoint GET answers 500: the ack path records the rollout and backs off, without redelivery.
    app.stack.aml.inject_faults(rate_500=1.0, methods=["GET"], path_pattern="onlineEndpoints", retry_after_s=0.01)
    [delivery] = app.deliver(model_registered("credit", 1))
    assert delivery.kind is OutcomeKind.HANDLED and len(delivery.attempts) == 1  # acknowledged, not redelivered
    rollout = app.rollout("credit-v1")
    assert (rollout["state"], rollout["attempts"]) == ("pending", 1)
    assert "HttpResponseError" in rollout["lastError"]
    assert rollout["nextAttemptAt"]
    # A refusal no retry can fix (Azure ML says the request is invalid) fails the rollout, naming its source.
    app.stack.aml.clear_faults()
    _clear_backoff(app)
    app.stack.aml.fail_requests(400, path_pattern="onlineEndpoints", count=1, message="The endpoint is unsupported.")
    app.tick()
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "failed"
    assert "The endpoint is unsupported." in rollout["reason"]  # Azure ML's own words, for the operator
    assert rollout["errorSource"] == "azureml"
    assert "AmlEvents.Rollout.Failed" in app.published_types()


def test_two_instances_ticking_at_once_never_advance_the_same_rollout_twice(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.stack.aml.set_latency(30)  # widen the race window
    for _ in range(6):
        app.stack.aml.wait_idle()
        instances = [threading.Thread(target=runner.tick) for _ in range(2)]
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.join()
    app.stack.aml.wait_idle()
    writes = [(r.method, r.path.rsplit("/", 1)[-1]) for r in _writes(app)]
    assert writes == [("PUT", "credit"), ("PUT", "credit-v1"), ("PUT", "credit")]  # endpoint, deployment, traffic
    assert app.rollout("credit-v1")["state"] == "live"
