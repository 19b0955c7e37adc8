"""The edges of the rollout against the emulator: endpoints the app may touch, region-unique names, tag quoting."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pytest
import requests

from app.handlers.model_registered import MODEL_READ_WINDOW
from app.intake.outcome import OutcomeKind
from app.platform.errors import RetryableError
from app.rollout.decide.naming import endpoint_name
from devkit.aml_emulator import ARM_AUDIENCE
from devkit.harness import OfflineApp, app_environment, model_registered, run_completed
from devkit.stack import DevStack
from tests import receiver

pytestmark = pytest.mark.integration


def _arm(stack: DevStack, workspace_id: str, method: str, path: str, body: Any = None) -> requests.Response:
    """A hand-made ARM call (someone else's script or the portal), not the app's."""
    assert stack.ca is not None
    token, _ = stack.issuer.issue(ARM_AUDIENCE)
    response = requests.request(
        method,
        f"{stack.aml.url}{workspace_id}{path}",
        params={"api-version": "2023-04-01"},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(stack.ca.ca_path),
        timeout=10,
    )
    assert response.status_code < 300, response.text
    return response


def _hand_made_endpoint(stack: DevStack, name: str, *, workspace_id: str = "", model: str = "") -> None:
    """An endpoint (with a deployment ``blue`` taking all traffic when ``model`` is given) the app did not create."""
    workspace_id = workspace_id or stack.aml.workspace_id
    endpoint = {"location": "eastus", "properties": {"authMode": "Key"}, "tags": {"owner": "risk-team"}}
    _arm(stack, workspace_id, "PUT", f"/onlineEndpoints/{name}", endpoint)
    stack.aml.wait_idle()
    if not model:
        return
    blue = {
        "location": "eastus",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{workspace_id}/models/{model}/versions/1",
            "instanceType": "Standard_DS3_v2",
        },
    }
    _arm(stack, workspace_id, "PUT", f"/onlineEndpoints/{name}/deployments/blue", blue)
    stack.aml.wait_idle()
    endpoint["properties"] = {"authMode": "Key", "traffic": {"blue": 100}}
    _arm(stack, workspace_id, "PUT", f"/onlineEndpoints/{name}", endpoint)
    stack.aml.wait_idle()


# -- item 10: the app only touches endpoints it may touch ----------------------------------------


def test_an_endpoint_the_app_did_not_create_is_refused_with_a_notification_and_no_write(app: OfflineApp) -> None:
    app.stack.aml.seed_model("legacy", 1)
    _hand_made_endpoint(app.stack, "shared", model="legacy")
    before = len(app.stack.aml.requests())
    app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "shared"})
    [delivery] = app.deliver(model_registered("credit", 1))
    assert delivery.acknowledged and delivery.kind is OutcomeKind.HANDLED, delivery.attempts
    assert app.rollout("credit-v1")["state"] == "rejected"  # by the event's own pass
    app.run_until_settled()
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "rejected"
    assert "ADOPT_ENDPOINTS" in rollout["reason"]  # the setting that would let the app adopt it
    assert [r for r in app.stack.aml.requests()[before:] if r.is_write] == []
    assert app.traffic("shared") == {"blue": 100}
    assert app.published_types() == ["AmlEvents.Rollout.Rejected"]


def test_an_adopted_endpoint_gets_traffic_but_its_hand_made_deployment_is_never_deleted(app: OfflineApp) -> None:
    app.stack.aml.seed_model("legacy", 1)
    _hand_made_endpoint(app.stack, "shared", model="legacy")
    with app_environment(app.stack, ADOPT_ENDPOINTS="other-one, shared"):
        for version in (1, 2, 3):
            app.stack.aml.seed_model("credit", version, tags={"deploy": "true", "endpoint": "shared"})
            [delivery] = app.deliver(model_registered("credit", version))
            assert delivery.acknowledged, delivery.attempts
            app.run_until_settled()
            assert app.rollout(f"credit-v{version}")["state"] == "live"
            assert app.traffic("shared") == {f"credit-v{version}": 100}
        for _ in range(3):  # later ticks may clean up more; none may touch blue
            app.tick()
    deployments = app.stack.aml.snapshot()["endpoints"]["shared"]["deployments"]
    assert "blue" in deployments  # idle, old, and not the app's: kept
    assert "credit-v1" not in deployments  # the app's own, beyond KEEP_DEPLOYMENTS=2
    assert not app.stack.aml.requests(method="DELETE", path_contains="/deployments/blue")


# -- item 11: endpoint names are unique per region ----------------------------------------------


def test_two_workspaces_in_one_region_each_get_their_own_default_endpoint(app: OfflineApp) -> None:
    other = app.stack.aml.add_workspace("mlw-team-b")
    both = f"{app.stack.aml.workspace_id},{other.workspace_id}"
    with app_environment(app.stack, AML_ALLOWED_WORKSPACES=both):
        for ws in (app.stack.aml, other):
            ws.seed_model("credit", 1, tags={"deploy": "true"})  # no endpoint tag: the default name
            [delivery] = app.deliver(model_registered("credit", 1, workspace_id=ws.workspace_id))
            assert delivery.acknowledged, delivery.attempts
        app.run_until_settled()
        states = {(r["workspace"], r["endpoint"]): r["state"] for r in app.rollouts()}
    mine, theirs = (endpoint_name("credit", ws.workspace_id) for ws in (app.stack.aml, other))
    assert mine != theirs
    assert states == {(app.stack.aml.workspace_id, mine): "live", (other.workspace_id, theirs): "live"}
    assert other.endpoint_state(theirs) is not None and app.stack.aml.endpoint_state(mine) is not None


def test_an_endpoint_name_taken_in_the_region_is_a_rejection_that_says_to_set_the_endpoint_tag(
    app: OfflineApp,
) -> None:
    other = app.stack.aml.add_workspace("mlw-team-b")
    _hand_made_endpoint(app.stack, "credit", workspace_id=other.workspace_id)  # team B took "credit"
    app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
    app.deliver(model_registered("credit", 1))
    app.run_until_settled()
    rollout = app.rollout("credit-v1")
    assert rollout["state"] == "rejected", rollout
    # It names the taken name and the fix: the model's endpoint tag.
    assert "credit" in rollout["reason"] and "endpoint tag" in rollout["reason"]
    assert app.published_types()[-1] == "AmlEvents.Rollout.Rejected"
    assert len(app.stack.aml.requests(method="PUT", path_contains="/onlineEndpoints/credit")) == 2  # B's, and ours
    assert not app.stack.aml.requests(path_contains="/deployments/credit-v1")


# -- item 10: tag values are quoted wherever they are shown ---------------------------------------


def test_a_tag_with_newlines_and_slack_markup_reaches_no_log_or_notification_raw(
    app: OfflineApp, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = "Standard_DS3_v2\nINFO fake log line <!channel> <https://evil.example|log in>"
    app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit", "instance_type": hostile})
    with caplog.at_level(logging.INFO):
        app.deliver(model_registered("credit", 1))
    [rejected] = app.published()
    assert rejected["type"] == "AmlEvents.Rollout.Rejected"
    text = rejected["data"]["text"]
    assert "<!channel>" not in text and "<https://" not in text and "\nINFO fake" not in text
    assert "\\nINFO fake log line" in text  # still shown, escaped
    assert rejected["data"]["facts"]["instanceType"] == "Standard_DS3_v2"  # not the tag's payload
    for record in caplog.records:
        message = record.getMessage()
        assert "\nINFO fake" not in message and "<!channel>" not in message, message


# -- item 9: a model that is not yet readable -----------------------------------------------------


def test_a_model_not_yet_readable_is_read_again_on_redelivery_and_then_deployed(app: OfflineApp) -> None:
    app.stack.aml.set_model_read_lag(60, "credit")  # GET of the new version answers 404 for a minute
    model = app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
    event = model_registered("credit", 1)
    [first] = app.deliver(event, max_attempts=2)
    assert not first.acknowledged  # the host answers 500: Event Grid redelivers (10 s, 30 s, 1 min ...)
    assert len(first.errors) == 2 and all(isinstance(err, RetryableError) for err in first.errors)
    assert app.rollouts() == []
    model.readable_at = time.time()  # the lag ends before the next redelivery
    [redelivered] = app.deliver(event, max_attempts=1)
    assert redelivered.acknowledged, redelivered.attempts
    app.run_until_settled()
    assert app.rollout("credit-v1")["state"] == "live"
    assert app.published_types() == ["AmlEvents.Rollout.Started", "AmlEvents.Rollout.Live"]


def test_a_model_still_missing_after_the_window_is_a_permanent_model_not_found(app: OfflineApp) -> None:
    event = model_registered("ghost", 1)
    event["eventTime"] = (dt.datetime.now(dt.UTC) - MODEL_READ_WINDOW - dt.timedelta(seconds=1)).isoformat()
    [late] = app.deliver(event)
    assert late.acknowledged and len(late.attempts) == 1  # not read again
    assert late.kind is OutcomeKind.REJECTED and "ghost:1" in late.outcome
    fresh = model_registered("ghost", 2)  # registered just now: within the window, so retried
    [delivery] = app.deliver(fresh, max_attempts=2)
    assert not delivery.acknowledged
    assert len(delivery.errors) == 2 and all(isinstance(err, RetryableError) for err in delivery.errors)


# -- item 8: exactly one notification per transition ----------------------------------------------


def test_duplicate_deliveries_and_a_failing_sink_that_recovers_give_exactly_one_message(app: OfflineApp) -> None:
    with receiver.running() as hook, app_environment(app.stack, NOTIFY_WEBHOOK_URL=hook.url + "/hook"):
        hook.statuses = [500, 500, 500]  # one failed publish: the webhook sink retries twice itself
        event = run_completed("train_7")
        first, duplicate = app.deliver(event, event)
        assert first.acknowledged and duplicate.acknowledged  # kept in the outbox, not an Event Grid retry
        assert hook.accepted == []
        app.tick()  # the sink is back: the tick sends what it kept
        app.tick()
        [late] = app.deliver(event)  # Event Grid may deliver again even after a success
        assert late.acknowledged
        assert [body["type"] for body in hook.accepted] == ["AmlEvents.Run.Completed"]
        assert hook.accepted[0]["sourceEventId"] == event["id"]
    assert app.published_types() == ["AmlEvents.Run.Completed"]  # the topic, which never failed, got it once too


def test_a_transition_whose_sink_fails_is_notified_once_by_a_later_tick(app: OfflineApp) -> None:
    with receiver.running() as hook, app_environment(app.stack, NOTIFY_WEBHOOK_URL=hook.url + "/hook"):
        hook.statuses = [503, 503, 503]  # the Started notification fails
        app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
        event = model_registered("credit", 1)
        app.deliver(event, event)
        app.run_until_settled()
        app.tick()
        assert app.rollout("credit-v1")["state"] == "live"
        assert sorted(body["type"] for body in hook.accepted) == ["AmlEvents.Rollout.Live", "AmlEvents.Rollout.Started"]
    assert sorted(app.published_types()) == ["AmlEvents.Rollout.Live", "AmlEvents.Rollout.Started"]


def test_plan_mode_redeliveries_notify_planned_once(app: OfflineApp) -> None:
    with (
        receiver.running() as hook,
        app_environment(app.stack, NOTIFY_WEBHOOK_URL=hook.url + "/hook", DEPLOY_MODE="plan"),
    ):
        hook.statuses = [500, 500, 500]
        app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
        event = model_registered("credit", 1)
        app.deliver(event, event)
        app.tick()
        app.deliver(event)
        assert [body["type"] for body in hook.accepted] == ["AmlEvents.Rollout.Planned"]
