"""Lifecycle handlers, dispatched from the real fixtures, with a recording notifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.runner import load_events
from handlers import HANDLERS
from shared.dispatch import process
from shared.errors import RetryableError
from tests.envelopes import envelope
from tests.fakes import FakeNotifier, make_deps

EVENTS = Path(__file__).parents[1] / "events"


def _dispatch(name: str, notifier: FakeNotifier, schema: str = "eventgrid", **changes: object) -> str:
    body = load_events(EVENTS / f"{name}.{schema}.camel.json")[0]
    body["data"].update(changes)
    return process(envelope(body), make_deps(notifier=notifier), HANDLERS)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_failed_run_notifies_with_link(schema: str) -> None:
    notifier = FakeNotifier()
    outcome = _dispatch("run_status_changed", notifier, schema)
    assert outcome == "notified: run train_20261122_02 failed"
    [sent] = notifier.sent
    assert sent.type == "AmlEvents.Run.Failed"
    assert sent.severity == "error"
    assert sent.facts["experiment"] == "credit-train" and sent.facts["runType"] == "azureml.scriptrun"
    assert sent.links["run"].startswith("https://ml.azure.com/runs/train_20261122_02?wsid=/subscriptions/")


def test_other_run_statuses_are_only_logged() -> None:
    notifier = FakeNotifier()
    assert _dispatch("run_status_changed", notifier, runStatus="Running") == "logged: run train_20261122_02 is Running"
    assert notifier.sent == []


def test_completed_run_notifies() -> None:
    notifier = FakeNotifier()
    assert _dispatch("run_completed", notifier) == "notified: run train_20261122_01 completed"
    assert notifier.types == ["AmlEvents.Run.Completed"]


def test_model_deployed_notifies_with_service_compute_and_models() -> None:
    notifier = FakeNotifier()
    _dispatch("model_deployed", notifier)
    [sent] = notifier.sent
    assert sent.type == "AmlEvents.Model.Deployed"
    assert sent.facts == {
        "service": "credit-svc",
        "computeType": "ACI",
        "modelIds": ["credit_risk.v2:1", "credit_risk.v2:2"],
    }


def test_drift_notifies_with_monitor_coefficient_and_window() -> None:
    notifier = FakeNotifier()
    outcome = _dispatch("dataset_drift_detected", notifier)
    [sent, skipped] = notifier.sent
    assert sent.type == "AmlEvents.Drift.Detected"
    assert sent.facts["monitor"] == "credit-monitor"
    assert sent.facts["driftCoefficient"] == 0.83
    assert sent.facts["window"] == "2026-11-14T00:00:00+00:00 .. 2026-11-21T00:00:00+00:00"
    # No RETRAIN_PIPELINE_COMPONENT: retraining is skipped without creating any client (make_deps forbids it).
    assert skipped.type == "AmlEvents.Retraining.Skipped"
    assert skipped.facts["kind"] == "not configured"
    assert "RETRAIN_PIPELINE_COMPONENT" in skipped.facts["reason"]
    assert outcome.endswith("retraining skipped (not configured): " + skipped.facts["reason"])


def test_a_failing_sink_makes_the_event_redeliverable() -> None:
    with pytest.raises(RetryableError):
        _dispatch("run_completed", FakeNotifier(fail=True))
