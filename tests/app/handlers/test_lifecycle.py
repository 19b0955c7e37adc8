"""Lifecycle handlers, dispatched from the real fixtures, with a recording notifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.handlers import HANDLERS
from app.intake.dispatch import process
from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import RetryableError
from devkit.runner import load_events
from tests.envelopes import envelope
from tests.fakes import FakeJobReader, FakeNotifier, ForbiddenFactory, make_deps, make_settings

EVENTS = Path(__file__).parents[2] / "events"
pytestmark = pytest.mark.fast


RUN = "train_20261122_02"


def _dispatch(
    name: str,
    notifier: FakeNotifier,
    schema: str = "eventgrid",
    aml: object = None,
    env: object = None,
    **changes: object,
) -> Outcome:
    body = load_events(EVENTS / f"{name}.{schema}.camel.json")[0]
    body["data"].update(changes)
    deps = make_deps(settings=env, notifier=notifier, aml=aml)  # type: ignore[arg-type]
    return process(envelope(body), deps, HANDLERS)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_failed_run_is_rechecked_against_aml_and_notifies_with_link(schema: str) -> None:
    notifier, aml = FakeNotifier(), FakeJobReader({RUN: "Failed"})
    outcome = _dispatch("run_status_changed", notifier, schema, aml=aml)
    assert outcome.kind is OutcomeKind.HANDLED
    assert aml.reads == [RUN]
    [sent] = notifier.sent
    assert sent.type == "AmlEvents.Run.Failed"
    assert sent.severity == "error"
    assert sent.facts["experiment"] == "credit-train" and sent.facts["runType"] == "azureml.scriptrun"
    assert sent.facts["amlStatus"] == "Failed"
    assert sent.links["run"].startswith(f"https://ml.azure.com/runs/{RUN}?wsid=/subscriptions/")


@pytest.mark.parametrize("status", ["Running", "running", "Queued", "Completed", "Finalizing", "NotStarted", "Paused"])
def test_non_failure_statuses_are_ignored_without_reading_aml(status: str) -> None:
    notifier, aml = FakeNotifier(), ForbiddenFactory("aml")
    outcome = _dispatch("run_status_changed", notifier, aml=aml, runStatus=status)
    assert outcome.kind is OutcomeKind.IGNORED and "NOTIFY_RUN_STATUSES" in outcome.text
    assert (notifier.sent, aml.calls) == ([], [])


def test_lowercase_failed_is_a_failure() -> None:
    notifier = FakeNotifier()
    outcome = _dispatch("run_status_changed", notifier, aml=FakeJobReader({RUN: "Failed"}), runStatus="failed")
    assert outcome.kind is OutcomeKind.HANDLED
    assert notifier.types == ["AmlEvents.Run.Failed"]


def test_a_late_failure_event_for_a_run_aml_now_reports_running_is_not_notified() -> None:
    # The run failed once and was resubmitted under the same name; the old event arrives late.
    notifier = FakeNotifier()
    aml = FakeJobReader({RUN: "Running"})
    outcome = _dispatch("run_status_changed", notifier, aml=aml)
    assert outcome.kind is OutcomeKind.IGNORED
    assert aml.reads == [RUN] and notifier.sent == []


def test_a_failure_of_a_run_aml_does_not_know_is_notified_as_the_event_says() -> None:
    notifier = FakeNotifier()
    assert _dispatch("run_status_changed", notifier, aml=FakeJobReader({})).kind is OutcomeKind.HANDLED
    assert notifier.types == ["AmlEvents.Run.Failed"]
    assert notifier.sent[0].facts["amlStatus"] == "unknown (no such job in Azure ML)"


def test_notify_run_statuses_decides_which_statuses_notify() -> None:
    only_canceled = make_settings(notify_run_statuses=frozenset({"canceled"}))
    notifier = FakeNotifier()
    ignored = _dispatch("run_status_changed", notifier, aml=ForbiddenFactory("aml"), env=only_canceled)
    assert ignored.kind is OutcomeKind.IGNORED and "NOTIFY_RUN_STATUSES" in ignored.text
    assert notifier.sent == []
    outcome = _dispatch(
        "run_status_changed", notifier, aml=FakeJobReader({RUN: "Canceled"}), env=only_canceled, runStatus="Canceled"
    )
    assert outcome.kind is OutcomeKind.HANDLED
    [sent] = notifier.sent
    assert (sent.type, sent.severity) == ("AmlEvents.Run.Canceled", "warning")


def test_completed_run_notifies() -> None:
    notifier = FakeNotifier()
    assert _dispatch("run_completed", notifier).kind is OutcomeKind.HANDLED
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
    assert outcome.kind is OutcomeKind.SKIPPED and "RETRAIN_PIPELINE_COMPONENT" in outcome.text


def test_a_failing_sink_makes_the_event_redeliverable() -> None:
    with pytest.raises(RetryableError):
        _dispatch("run_completed", FakeNotifier(fail=True))
