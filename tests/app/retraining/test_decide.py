"""Drift → retraining decisions: threshold, cooldown, job naming, input selection, tags (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest

from app.handlers import HANDLERS
from app.intake import events
from app.intake.dispatch import process
from app.intake.events import DatasetDriftDetectedData, parse
from app.intake.outcome import OutcomeKind
from app.platform.errors import EventValidationError, RetryableError
from app.platform.idempotency import Claimed, Idempotency
from app.retraining.decide import (
    BELOW_THRESHOLD,
    COOLDOWN,
    NOT_CONFIGURED,
    PLAN_ONLY,
    Cooldown,
    Hold,
    SkipRetraining,
    Submit,
    claim_record,
    cooldown_key,
    cooldown_of,
    decide_retraining,
    job_name,
    job_tags,
    pipeline_job_request,
    released_record,
    select_inputs,
    skipped_record,
    submission_key,
    submission_payload,
)
from app.retraining.jobs import ComponentInfo, ComponentRef
from tests.envelopes import envelope
from tests.fakes import (
    WORKSPACE,
    WORKSPACE_ID,
    FakeNotifier,
    FakeTableStore,
    ForbiddenFactory,
    make_deps,
    make_settings,
)

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
DRIFT = DatasetDriftDetectedData(
    data_drift_id="4e694bf5-712e-4e40-b06a-d2a2755212d4",
    data_drift_name="credit-monitor",
    run_id="drift_run_1",
    base_dataset_id="base-ds-1",
    target_dataset_id="target-ds-1",
    drift_coefficient=0.83,
    start_time=dt.datetime(2026, 11, 14, tzinfo=dt.UTC),
    end_time=dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
)
CONFIGURED = make_settings(retrain_pipeline_component="retrain:3", retrain_compute="cpu")
#: Azure ML job names: letters, digits, '-' and '_', starting with a letter or digit, at most 255.
AML_JOB_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}$")


def _cooldown(minutes_ago: float, run_id: str = "drift_run_0", state: Hold = Hold.HELD) -> Cooldown:
    return Cooldown(run_id, "retrain-old", NOW - dt.timedelta(minutes=minutes_ago), state)


# ------------------------------------------------------------------------------ threshold and configuration


@pytest.mark.parametrize(
    ("coefficient", "threshold", "retrains"),
    [(0.83, 0.5, True), (0.5, 0.5, True), (0.4999, 0.5, False), (0.0, 0.0, True), (0.99, 1.0, False)],
)
def test_retrains_when_the_coefficient_reaches_the_threshold(
    coefficient: float, threshold: float, retrains: bool
) -> None:
    settings = replace(CONFIGURED, drift_threshold=threshold)
    decision = decide_retraining(replace(DRIFT, drift_coefficient=coefficient), settings, None, NOW)
    assert isinstance(decision, Submit) is retrains
    if not retrains:
        assert isinstance(decision, SkipRetraining) and decision.kind == BELOW_THRESHOLD
        assert "DRIFT_THRESHOLD" in decision.reason  # the setting it is compared with


def test_not_configured_is_a_skip_that_names_the_setting() -> None:
    decision = decide_retraining(DRIFT, make_settings(), None, NOW)
    assert isinstance(decision, SkipRetraining) and decision.kind == NOT_CONFIGURED
    assert "RETRAIN_PIPELINE_COMPONENT" in decision.reason


def test_plan_mode_says_what_it_would_submit() -> None:
    decision = decide_retraining(DRIFT, replace(CONFIGURED, deploy_mode="plan"), None, NOW)
    assert isinstance(decision, SkipRetraining) and decision.kind == PLAN_ONLY
    # What it would submit: the component and version, as which job, in which experiment.
    names = ("retrain:3", job_name(DRIFT.data_drift_id, DRIFT.run_id), "drift-retraining")
    assert all(name in decision.reason for name in names)


def test_submit_carries_component_experiment_compute_and_the_deterministic_name() -> None:
    decision = decide_retraining(DRIFT, CONFIGURED, None, NOW)
    assert decision == Submit(
        job_name=job_name(DRIFT.data_drift_id, "drift_run_1"),
        component=ComponentRef("retrain", version="3"),
        experiment="drift-retraining",
        compute="cpu",
        monitor="credit-monitor",
        drift_run_id="drift_run_1",
    )


# ------------------------------------------------------------------------------ cooldown


@pytest.mark.parametrize(("minutes_ago", "held"), [(0, True), (359.9, True), (360, False), (5000, False)])
def test_one_retraining_per_monitor_per_cooldown(minutes_ago: float, held: bool) -> None:
    decision = decide_retraining(DRIFT, CONFIGURED, _cooldown(minutes_ago), NOW)
    assert (isinstance(decision, SkipRetraining) and decision.kind == COOLDOWN) is held
    if held:
        assert isinstance(decision, SkipRetraining)
        assert "retrain-old" in decision.reason and "drift_run_0" in decision.reason  # the job that holds it
        assert "RETRAIN_COOLDOWN_MINUTES=360" in decision.reason


def test_the_same_drift_run_inside_the_cooldown_is_a_duplicate_submit_not_a_skip() -> None:
    decision = decide_retraining(DRIFT, CONFIGURED, _cooldown(1, run_id="drift_run_1"), NOW)
    assert isinstance(decision, Submit) and decision.duplicate


def test_a_released_claim_does_not_hold_the_monitor() -> None:
    decision = decide_retraining(DRIFT, CONFIGURED, _cooldown(1, state=Hold.RELEASED), NOW)
    assert isinstance(decision, Submit) and not decision.duplicate


def test_a_zero_cooldown_never_holds() -> None:
    decision = decide_retraining(DRIFT, replace(CONFIGURED, retrain_cooldown_minutes=0), _cooldown(0), NOW)
    assert isinstance(decision, Submit)


def test_the_record_round_trips_and_remembers_skipped_runs_once() -> None:
    submit = decide_retraining(DRIFT, CONFIGURED, None, NOW)
    assert isinstance(submit, Submit)
    record = claim_record(submit, "evt-1", NOW)
    assert cooldown_of(record) == Cooldown("drift_run_1", submit.job_name, NOW, Hold.HELD)
    assert cooldown_of(None) is None and cooldown_of({}) is None
    naive = {**record, "ClaimedAt": NOW.replace(tzinfo=None)}
    assert cooldown_of(naive) == cooldown_of(record)
    released = released_record(record, "drift_run_1")
    assert released is not None and cooldown_of(released) == Cooldown(
        "drift_run_1", submit.job_name, NOW, Hold.RELEASED
    )
    assert released_record(released, "drift_run_1") is None and released_record(record, "drift_run_0") is None
    once = skipped_record(record, "drift_run_2")
    assert once is not None and once["Skipped"] == '["drift_run_2"]'
    assert skipped_record(once, "drift_run_2") is None


# ------------------------------------------------------------------------------ job naming


def test_job_names_are_deterministic_valid_and_distinct() -> None:
    name = job_name("4e694bf5-712e-4e40-b06a-d2a2755212d4", "drift_run_1")
    assert name == job_name("4e694bf5-712e-4e40-b06a-d2a2755212d4", "drift_run_1")
    assert name.startswith("retrain-4e694bf5-712e-4e40-b06a-drift-run-1-")
    names = {
        job_name(monitor, run)
        for monitor, run in [
            ("m", "run.1"),
            ("m", "run_1"),
            ("M", "run_1"),
            ("m/x", "1"),
            ("m", "x/1"),
            ("ü" * 300, "🙂"),
            ("", ""),
        ]
    }
    assert len(names) == 7
    assert all(AML_JOB_NAME.match(n) and len(n) <= 70 for n in names), names


# ------------------------------------------------------------------------------ inputs and tags


def test_only_declared_inputs_are_selected() -> None:
    declared = ("target_dataset_id", "window_end", "learning_rate")
    assert select_inputs(declared, DRIFT) == {
        "target_dataset_id": "target-ds-1",
        "window_end": "2026-11-21T00:00:00+00:00",
    }
    assert select_inputs((), DRIFT) == {}


def test_all_drift_inputs_and_empty_values_left_out() -> None:
    drift = replace(DRIFT, base_dataset_id="", start_time=None)
    assert select_inputs(
        ("monitor_name", "drift_run_id", "base_dataset_id", "target_dataset_id", "window_start", "window_end"), drift
    ) == {
        "monitor_name": "credit-monitor",
        "drift_run_id": "drift_run_1",
        "target_dataset_id": "target-ds-1",
        "window_end": "2026-11-21T00:00:00+00:00",
    }


def test_job_tags_add_the_trigger_to_retrain_job_tags_and_win() -> None:
    settings = replace(CONFIGURED, retrain_job_tags=(("register_model", "credit"), ("drift_run_id", "spoofed")))
    assert job_tags(settings, "evt-9", DRIFT) == {
        "register_model": "credit",
        "trigger_event_id": "evt-9",
        "drift_run_id": "drift_run_1",
        "drift_monitor": "credit-monitor",
    }


def test_the_job_request_uses_the_resolved_component() -> None:
    submit = decide_retraining(DRIFT, CONFIGURED, None, NOW)
    assert isinstance(submit, Submit)
    component = ComponentInfo("retrain", "3", "/subs/.../components/retrain/versions/3", "pipeline", ("drift_run_id",))
    request = pipeline_job_request(submit, component, CONFIGURED, "evt-1", DRIFT)
    assert (request.name, request.component_id, request.compute) == (submit.job_name, component.id, "cpu")
    assert request.inputs == {"drift_run_id": "drift_run_1"}
    assert request.tags["trigger_event_id"] == "evt-1"


@pytest.mark.parametrize(
    ("spec", "ref"),
    [
        ("retrain:3", ComponentRef("retrain", version="3")),
        ("azureml:retrain:3", ComponentRef("retrain", version="3")),
        ("retrain@latest", ComponentRef("retrain", label="latest")),
    ],
)
def test_component_specs(spec: str, ref: ComponentRef) -> None:
    assert ComponentRef.parse(spec) == ref
    assert str(ref) == spec.removeprefix("azureml:")


def test_record_keys_are_per_workspace_and_monitor_and_per_job() -> None:
    key = cooldown_key(WORKSPACE, DRIFT)
    assert key.partition.startswith("retraining~mlw-devkit~") and key.row == DRIFT.data_drift_id
    with pytest.raises(EventValidationError) as bad:
        cooldown_key(WORKSPACE, replace(DRIFT, data_drift_id="a#b"))
    assert bad.value.field == "data.dataDriftId"
    submit = decide_retraining(DRIFT, CONFIGURED, None, NOW)
    assert isinstance(submit, Submit)
    job = submission_key(WORKSPACE, submit)
    assert job.partition.startswith("retraining-job~mlw-devkit~") and job.row == submit.job_name


@pytest.mark.parametrize(
    "state", [("submitting", Hold.HELD), ("submitted", Hold.HELD), ("failed", Hold.RELEASED), ("", Hold.HELD)]
)
def test_cooldown_records_written_before_the_enum_still_read(state: tuple[str, Hold]) -> None:
    written, hold = state
    record = {"DriftRunId": "drift_run_0", "JobName": "retrain-old", "ClaimedAt": NOW, "State": written}
    assert cooldown_of(record) == Cooldown("drift_run_0", "retrain-old", NOW, hold)


def test_a_drift_runs_submission_payload_ignores_the_retraining_settings() -> None:
    assert submission_payload(DRIFT) == {
        "monitor": DRIFT.data_drift_id,
        "driftRunId": "drift_run_1",
        "driftCoefficient": 0.83,
    }


# ------------------------------------------------------------------------------ the handler's no-I/O paths


def _drift_event(coefficient: float) -> Any:
    return envelope(
        {
            "id": "evt-drift",
            "topic": WORKSPACE_ID,
            "eventType": events.DATASET_DRIFT_DETECTED,
            "subject": "datadrift/d-1/run/r-1",
            "data": {"dataDriftName": "credit-monitor", "driftCoefficient": coefficient},
        }
    )


@pytest.mark.parametrize(
    ("settings", "coefficient", "kind", "outcome_kind"),
    [
        (make_settings(), 0.9, NOT_CONFIGURED, OutcomeKind.SKIPPED),
        (CONFIGURED, 0.2, BELOW_THRESHOLD, OutcomeKind.SKIPPED),
        (replace(CONFIGURED, deploy_mode="plan"), 0.9, PLAN_ONLY, OutcomeKind.PLANNED),
    ],
)
def test_skips_decided_without_io_create_no_client(
    settings: Any, coefficient: float, kind: str, outcome_kind: OutcomeKind
) -> None:
    notifier, aml, table = FakeNotifier(), ForbiddenFactory("aml"), ForbiddenFactory("table")
    outcome = process(_drift_event(coefficient), make_deps(settings, notifier, aml, table), HANDLERS)
    assert outcome.kind is outcome_kind
    assert notifier.types == ["AmlEvents.Drift.Detected", "AmlEvents.Retraining.Skipped"]
    assert notifier.sent[1].facts["kind"] == kind
    assert notifier.sent[1].links["driftRun"].startswith("https://ml.azure.com/runs/r-1?wsid=")
    assert (aml.calls, table.calls) == ([], [])


def test_a_drift_run_being_submitted_by_another_delivery_is_redelivered_without_an_aml_call() -> None:
    store, aml = FakeTableStore(), ForbiddenFactory("aml")
    body = _drift_event(0.9)
    drift = parse(body).data
    submit = decide_retraining(drift, CONFIGURED, None, NOW)
    assert isinstance(submit, Submit)
    other = Idempotency(store, in_progress_for=dt.timedelta(seconds=120))
    assert isinstance(other.claim(submission_key(WORKSPACE, submit), submission_payload(drift), NOW), Claimed)

    with pytest.raises(RetryableError, match="being submitted by another delivery"):
        process(body, make_deps(CONFIGURED, FakeNotifier(), aml, lambda name: store), HANDLERS)
    assert aml.calls == []
