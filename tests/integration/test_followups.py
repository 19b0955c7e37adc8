"""Follow-up checks: after each AML write a queue message brings the engine back when AML should be done.

Real clients throughout: azure-storage-queue against Azurite's queue service, azure-ai-ml against the emulator.
No timer tick is fired in these tests unless the test says so: the follow-ups alone carry the rollout.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import pytest

from app.intake.outcome import OutcomeKind
from devkit import runner
from devkit.harness import OfflineApp, app_environment, model_registered
from devkit.stack import WORKSPACE_ID, DevStack

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}
FINAL = ("live", "canary", "dark", "failed", "rolled_back", "aborted", "superseded", "rejected")


@pytest.fixture
def app(stack: DevStack) -> Iterator[OfflineApp]:
    with app_environment(stack):
        yield OfflineApp(stack)


def _drain_until_final(app: OfflineApp, deployment: str, wait_s: float = 20.0) -> dict[str, object]:
    """Deliver follow-ups (never a timer tick) until the rollout is final or nothing more is scheduled."""
    for _ in range(30):
        app.drain_followups(wait_s=wait_s)
        rollout = app.rollout(deployment)
        if rollout["state"] in FINAL or not app.pending_followups():
            return rollout
    return app.rollout(deployment)


def _writes(app: OfflineApp) -> list[tuple[str, str]]:
    """The writes Azure ML received, as (method, the resource's name)."""
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in app.stack.aml.requests() if r.is_write]


def _queue_bodies(app: OfflineApp) -> list[dict[str, object]]:
    return [json.loads(m.content) for m in app._followup_queue().peek_messages(max_messages=32)]


def test_a_write_schedules_a_follow_up_for_its_endpoint(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    assert app.pending_followups() == 0
    [delivery] = app.deliver(model_registered("credit", 1))
    assert delivery.acknowledged
    # The event's pass sent PUT endpoint; its follow-up is in the queue, invisible until AML should be done.
    assert app.pending_followups() == 1
    assert _queue_bodies(app) == []  # not visible yet
    app.drain_followups(wait_s=5)
    assert _writes(app)[:2] == [("PUT", "credit"), ("PUT", "credit-v1")]  # the follow-up created the deployment


def test_a_rollout_goes_live_on_follow_ups_alone_with_zero_timer_ticks(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    rollout = _drain_until_final(app, "credit-v1")
    assert rollout["state"] == "live", rollout
    assert app.traffic("credit") == {"credit-v1": 100}
    # Blue/green onto the existing endpoint, again without the timer.
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    assert _drain_until_final(app, "credit-v2")["state"] == "live"
    assert app.traffic("credit") == {"credit-v2": 100}


def test_without_follow_ups_the_same_rollout_waits_for_the_timer(stack: DevStack) -> None:
    with app_environment(stack, FOLLOWUP_DELAYS="off"):
        app = OfflineApp(stack)
        app.stack.aml.seed_model("credit", 1, tags=CREDIT)
        app.deliver(model_registered("credit", 1))
        app.stack.aml.wait_idle()
        assert app.pending_followups() == 0
        assert app.rollout("credit-v1")["state"] == "deploying"
        assert app.run_until_settled() >= 2  # the timer carries it, tick by tick


def test_a_duplicate_or_late_follow_up_changes_nothing(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    assert _drain_until_final(app, "credit-v1")["state"] == "live"
    before, requests = app.rollout("credit-v1"), len(app.stack.aml.requests())
    late = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "credit", "reason": "traffic"})
    for _ in range(2):
        runner.follow_up("late-1", late, 1)
    assert app.rollout("credit-v1") == before
    assert len(app.stack.aml.requests()) == requests  # not even a read: nothing is in flight there


@pytest.mark.parametrize(
    "body",
    [
        "not json {",
        json.dumps(["a", "list"]),
        json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "x"}),  # not an endpoint name
        json.dumps({"workspaceId": "not-an-arm-id", "endpoint": "credit"}),
        json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "never-seen"}),  # unknown endpoint
        json.dumps({"workspaceId": WORKSPACE_ID.replace("rg-devkit", "rg-other"), "endpoint": "credit"}),
    ],
    ids=["bad-json", "not-an-object", "bad-endpoint", "bad-workspace", "unknown-endpoint", "other-workspace"],
)
def test_a_poison_message_is_logged_and_dropped_not_retried(
    app: OfflineApp, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue = app._followup_queue()
    queue.send_message(body)
    with caplog.at_level("INFO", logger="app.rollout.run.followup"):
        assert app.drain_followups() == 1  # handled on the first delivery: the function did not raise
    assert app.pending_followups() == 0
    assert app._followup_queue("rollout-followups-poison").get_queue_properties().approximate_message_count == 0
    assert any(r.name == "app.rollout.run.followup" for r in caplog.records), caplog.text
    assert app.rollouts() == []


def test_the_message_is_base64_as_the_host_expects_and_carries_no_secret(app: OfflineApp) -> None:
    """The Functions host decodes Base64 queue bodies by default (host.json messageEncoding): the app sends them so."""
    from azure.storage.queue import QueueClient

    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    raw = QueueClient.from_connection_string(app.stack.env["AzureWebJobsStorage"], "rollout-followups")
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        got = list(raw.peek_messages(max_messages=5))
        time.sleep(0.1)
    assert got, "no follow-up became visible"
    decoded = json.loads(base64.b64decode(got[0].content))
    assert decoded["endpoint"] == "credit" and decoded["workspaceId"] == WORKSPACE_ID
    assert set(decoded) == {"workspaceId", "endpoint", "reason", "rechecks", "dueAt"}  # nothing secret rides along


def test_a_model_deployed_event_advances_its_endpoint(app: OfflineApp) -> None:
    from devkit.harness import model_deployed

    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.stack.aml.wait_idle()
    assert app.rollout("credit-v1")["actions"] == ["PUT endpoint credit"]
    # AML announces the endpoint: the rollout's next step is taken in the event's pass (no tick, no follow-up).
    [delivery] = app.deliver(model_deployed("credit", "credit:1"))
    assert delivery.acknowledged and delivery.kind is OutcomeKind.HANDLED, delivery.attempts
    assert _writes(app) == [("PUT", "credit"), ("PUT", "credit-v1")]
    assert len(app.rollout("credit-v1")["actions"]) == 2
    # An endpoint with nothing in flight: only the notification, as before, and no Azure ML call.
    requests = len(app.stack.aml.requests())
    [other] = app.deliver(model_deployed("other-svc", "x:1"))
    assert other.acknowledged and other.kind is OutcomeKind.HANDLED
    assert len(app.stack.aml.requests()) == requests
    assert "AmlEvents.Model.Deployed" in app.published_types()


def test_a_bake_ends_on_its_follow_up_not_at_the_next_tick(stack: DevStack) -> None:
    from app.azure.queue import FollowUpQueue

    settings = {"GATE_METRIC_LAG": "0s", "GATE_MAX_EXTENSIONS": "0", "GATE_INCONCLUSIVE": "promote"}
    with app_environment(stack, **settings):
        app = OfflineApp(stack)
        app.stack.aml.seed_model("credit", 1, tags={**CREDIT, "traffic_steps": "50,100", "bake": "2s"})
        FollowUpQueue.sent.clear()
        app.deliver(model_registered("credit", 1))
        rollout = _drain_until_final(app, "credit-v1")
    assert rollout["state"] == "live", rollout
    assert FollowUpQueue.sent["bake"] == 2  # one per step: each bake's end was followed up
    assert rollout["progress"]["gate"]["outcome"] in ("inconclusive", "pass")


def test_a_follow_up_that_cannot_be_sent_never_fails_the_write(
    app: OfflineApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.azure.queue import FollowUpQueue

    def unavailable(self: FollowUpQueue, followup: object, delay: object) -> None:
        raise ConnectionError("queue service unreachable")

    monkeypatch.setattr(FollowUpQueue, "schedule", unavailable)
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    with caplog.at_level("WARNING", logger="app.rollout.run.engine"):
        [delivery] = app.deliver(model_registered("credit", 1))
    assert delivery.acknowledged
    assert app.rollout("credit-v1")["actions"] == ["PUT endpoint credit"]  # recorded all the same
    # Logged as a warning naming the error; the write stands.
    assert any(r.levelno == logging.WARNING and "ConnectionError" in r.getMessage() for r in caplog.records)
    app.run_until_settled()  # the safety net carries it
    assert app.rollout("credit-v1")["state"] == "live"


def test_the_tick_leaves_an_endpoint_to_its_follow_up_until_the_follow_up_is_overdue(stack: DevStack) -> None:
    delays = "endpoint=90,deployment=300,traffic=30,delete=60,recheck=30"
    with app_environment(stack, TICK_WAITS_FOR_FOLLOWUPS="true", FOLLOWUP_DELAYS=delays):
        app = OfflineApp(stack)
        aml = stack.aml
        aml.set_operation_durations({"endpoint:create": 90.0})
        with app.emulated_time():
            for name in ("credit", "fraud"):  # two endpoints: one alone is passed without a triage
                aml.seed_model(name, 1, tags={"deploy": "true", "endpoint": name})
                app.deliver(model_registered(name, 1))
            aml.clear_requests()
            app.tick(settle=False)
            looks = [r for r in aml.requests() if r.method == "GET" and "/onlineEndpoints/" in r.path]
            assert looks == []  # both wait for their endpoint's follow-up: no ARM read
            app.advance(90 + 30 + 1)  # the follow-ups are overdue (never delivered here): the tick looks again
            app.tick(settle=False)
            looks = [r for r in aml.requests() if r.method == "GET" and "/onlineEndpoints/" in r.path]
            assert {r.path.split("/onlineEndpoints/")[1].split("/")[0] for r in looks} == {"credit", "fraud"}
            assert all("PUT deployment" in " ".join(app.rollout(f"{n}-v1")["actions"]) for n in ("credit", "fraud"))


def test_a_traffic_writes_follow_up_reads_the_endpoint_without_listing_its_deployments(app: OfflineApp) -> None:
    aml = app.stack.aml
    aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    assert _drain_until_final(app, "credit-v1")["state"] == "live"
    aml.seed_model("credit", 2, tags=CREDIT)
    aml.clear_requests()
    app.deliver(model_registered("credit", 2))  # blue/green onto the endpoint v1 serves, on follow-ups alone
    assert _drain_until_final(app, "credit-v2")["state"] == "live"
    assert app.traffic("credit") == {"credit-v2": 100}

    reads = [r.path.split("/onlineEndpoints/", 1)[-1] for r in aml.requests() if r.method == "GET"]
    endpoint_reads, list_reads = reads.count("credit"), reads.count("credit/deployments")
    splits = [r for r in aml.requests() if r.method == "PUT" and r.path.endswith("/onlineEndpoints/credit")]
    assert len(splits) >= 1
    # Each observation reads the endpoint; all but the traffic writes' follow-ups also list its deployments.
    assert endpoint_reads - list_reads == len(splits)


def test_a_delay_on_a_time_lapsed_clock_hides_the_message_for_that_many_of_its_seconds(app: OfflineApp) -> None:
    import datetime as dt

    from app.azure.queue import FollowUpQueue
    from app.platform import clock
    from app.platform.settings_reader import get_settings
    from app.rollout.decide.followup import FollowUp

    queue = FollowUpQueue.from_settings(get_settings(), lambda: None)  # type: ignore[arg-type,return-value]
    with clock.following(lambda: dt.datetime.now(dt.UTC), rate=120):
        queue.schedule(FollowUp(WORKSPACE_ID, "credit", "traffic"), 120)  # 120 of its seconds: one on the wall
    queue.schedule(FollowUp(WORKSPACE_ID, "fraud", "traffic"), 120)  # at the wall's pace: two minutes
    deadline, seen = time.monotonic() + 10, []
    while not seen and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _queue_bodies(app)
    assert [body["endpoint"] for body in seen] == ["credit"]
