"""The lifecycle end to end with the real SDKs: monitoring breaches, run statuses, pipeline registration, resync."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.intake import events
from app.intake.outcome import OutcomeKind
from app.retraining.decide import MONITOR_INPUTS, job_name
from devkit.harness import OfflineApp, app_environment, model_registered, monitor_breach, run_status_changed
from devkit.runner import Delivery
from devkit.stack import DevStack

pytestmark = pytest.mark.integration

COMPONENT = "retrain_fraud"
MONITOR = "fraud-monitor"
MONITOR_RUN = "fraud-monitor-20261122-0300"
RETRAIN = {"RETRAIN_PIPELINE_COMPONENT": f"{COMPONENT}@latest", "RETRAIN_JOB_TAGS": "register_model=fraud"}


@pytest.fixture
def loop(stack: DevStack) -> Iterator[OfflineApp]:
    stack.aml.set_job_duration(0.2)
    with app_environment(stack, **RETRAIN):
        yield OfflineApp(stack)


def _acknowledged(deliveries: list[Delivery]) -> list[Delivery]:
    assert all(d.acknowledged for d in deliveries), [d.attempts for d in deliveries]
    return deliveries


def _job_puts(app: OfflineApp) -> list[Any]:
    return app.stack.aml.requests(method="PUT", path_contains="/jobs/")


def _types(app: OfflineApp, kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in app.published() if event["type"] == kind]


# ------------------------------------------------------------------------ model monitoring → one retraining job


def test_a_monitoring_breach_ends_in_exactly_one_tagged_job_under_duplicate_delivery(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    step = "5b0c1d2e-0000-4000-8000-00000000a001"
    first = monitor_breach(MONITOR, "fraud-monitor_data_drift", step, MONITOR_RUN, status="Running")
    # The same signal run again: Event Grid's duplicate, then its later status changes and its RunCompleted.
    again = [
        first,
        monitor_breach(MONITOR, "fraud-monitor_data_drift", step, MONITOR_RUN, status="Finalizing"),
        monitor_breach(MONITOR, "fraud-monitor_data_drift", step, MONITOR_RUN, status="completed"),
        monitor_breach(MONITOR, "fraud-monitor_data_drift", step, MONITOR_RUN, event_type=events.RUN_COMPLETED),
    ]

    [outcome, *duplicates] = _acknowledged(loop.deliver(first, *again))

    name = job_name(MONITOR, MONITOR_RUN)
    assert outcome.kind is OutcomeKind.HANDLED
    assert [d.kind for d in duplicates] == [OutcomeKind.DUPLICATE] * len(again)
    [put] = _job_puts(loop)
    assert put.path.endswith(f"/jobs/{name}")
    job = loop.stack.aml.job_state(name)
    assert job is not None
    props = job["properties"]
    assert {k: v["value"] for k, v in props["inputs"].items()} == {
        "monitor_name": MONITOR,
        "monitor_run_id": MONITOR_RUN,
        "signal_name": "fraud-monitor_data_drift",
        "signal_run_id": step,
    }
    assert props["tags"] == {
        "register_model": "fraud",
        "trigger_event_id": first["id"],
        "trigger_kind": "monitor",
        "monitor_run_id": MONITOR_RUN,
        "monitor_name": MONITOR,
        "monitor_signal": "fraud-monitor_data_drift",
    }
    assert loop.published_types() == ["AmlEvents.Monitor.ThresholdBreached", "AmlEvents.Retraining.Submitted"]
    [breach] = _types(loop, "AmlEvents.Monitor.ThresholdBreached")
    assert breach["facts"]["signal"] == "fraud-monitor_data_drift"
    assert "violating metric thresholds" in breach["facts"]["breach"]
    assert breach["links"]["monitorRun"].startswith(f"https://ml.azure.com/runs/{MONITOR_RUN}?wsid=")


def test_two_breached_signals_of_one_monitor_run_share_its_one_job(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    drift = monitor_breach(MONITOR, "fraud-monitor_data_drift", "step-drift", MONITOR_RUN)
    quality = monitor_breach(MONITOR, "fraud-monitor_data_quality", "step-quality", MONITOR_RUN)

    first, second = _acknowledged(loop.deliver(drift, quality))

    assert first.kind is OutcomeKind.HANDLED
    assert second.kind is OutcomeKind.DUPLICATE and job_name(MONITOR, MONITOR_RUN) in second.outcome
    assert len(_job_puts(loop)) == 1
    assert len(_types(loop, "AmlEvents.Monitor.ThresholdBreached")) == 2  # one per signal


def test_the_next_monitor_run_inside_the_cooldown_is_skipped(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    _acknowledged(loop.deliver(monitor_breach(MONITOR, "fraud-monitor_data_drift", "s-1", MONITOR_RUN)))
    [outcome] = _acknowledged(loop.deliver(monitor_breach(MONITOR, "fraud-monitor_data_drift", "s-2", "next-run")))
    assert outcome.kind is OutcomeKind.SKIPPED and job_name(MONITOR, MONITOR_RUN) in outcome.outcome
    assert [n["facts"]["kind"] for n in _types(loop, "AmlEvents.Retraining.Skipped")] == ["cooldown"]
    assert len(_job_puts(loop)) == 1


def test_plan_mode_reports_the_job_it_would_submit_and_submits_nothing(stack: DevStack) -> None:
    stack.aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    with app_environment(stack, DEPLOY_MODE="plan", **RETRAIN):
        app = OfflineApp(stack)
        [outcome] = _acknowledged(app.deliver(monitor_breach(MONITOR, "sig", "s-1", MONITOR_RUN)))
    # What it would submit: the component, as which job.
    assert outcome.kind is OutcomeKind.PLANNED
    assert f"{COMPONENT}@latest" in outcome.outcome and job_name(MONITOR, MONITOR_RUN) in outcome.outcome
    assert _job_puts(app) == []


def test_a_monitor_run_that_merely_completes_starts_nothing_and_calls_no_aml(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    step = run_status_changed("s-1", "Completed", properties={"azureml.pipelinerunid": MONITOR_RUN}, experiment=MONITOR)
    [outcome] = _acknowledged(loop.deliver(step))
    assert outcome.kind is OutcomeKind.IGNORED and "NOTIFY_RUN_STATUSES" in outcome.outcome
    assert loop.stack.aml.requests() == []
    assert loop.published() == []


def test_an_unrelated_failed_run_is_rechecked_notified_and_starts_no_retraining(loop: OfflineApp) -> None:
    aml = loop.stack.aml
    aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    # A real job that fails: the retraining job of a breach, made to fail.
    name = job_name(MONITOR, MONITOR_RUN)
    aml.fail_jobs(name)
    _acknowledged(loop.deliver(monitor_breach(MONITOR, "sig", "s-1", MONITOR_RUN)))
    aml.wait_jobs()
    failed = [e for e in aml.take_events() if e["data"]["runId"] == name]
    assert [e["eventType"] for e in failed] == [events.RUN_STATUS_CHANGED]
    aml.clear_requests()

    [outcome] = _acknowledged(loop.deliver(*failed))

    assert outcome.kind is OutcomeKind.HANDLED
    assert [r.method for r in aml.requests()] == ["GET"]  # the re-check, and nothing submitted
    [notice] = _types(loop, "AmlEvents.Run.Failed")
    assert notice["facts"]["amlStatus"] == "Failed"


def test_a_late_failure_event_is_rechecked_and_not_notified_when_aml_says_otherwise(loop: OfflineApp) -> None:
    aml = loop.stack.aml
    aml.seed_component(COMPONENT, 1, MONITOR_INPUTS)
    _acknowledged(loop.deliver(monitor_breach(MONITOR, "sig", "s-1", MONITOR_RUN)))
    aml.wait_jobs()
    name = job_name(MONITOR, MONITOR_RUN)
    stale = run_status_changed(name, "failed")
    since = time.time()
    [outcome] = _acknowledged(loop.deliver(stale))
    assert outcome.kind is OutcomeKind.IGNORED
    assert [r.method for r in aml.requests(since=since)] == ["GET"]  # the re-check
    assert _types(loop, "AmlEvents.Run.Failed") == []


# ------------------------------------------------------------------------ pipelines register once, from their output


def test_a_pipeline_with_step_runs_registers_once_from_its_named_output(loop: OfflineApp) -> None:
    aml = loop.stack.aml
    aml.seed_component(COMPONENT, 1, MONITOR_INPUTS, outputs={"trained_model": "mlflow_model", "report": "uri_folder"})
    aml.seed_model("fraud", 1, tags={})
    _acknowledged(loop.deliver(monitor_breach(MONITOR, "sig", "s-1", MONITOR_RUN)))
    aml.wait_jobs()
    name = job_name(MONITOR, MONITOR_RUN)
    *steps, pipeline = aml.take_events()
    assert steps and all(e["data"]["runProperties"] == {"azureml.pipelinerunid": name} for e in steps)
    assert pipeline["data"]["runId"] == name

    stepped = _acknowledged(loop.deliver(*steps))
    # A step is notified; its registration (if it carried the tags) is the pipeline's.
    assert {d.kind for d in stepped} <= {OutcomeKind.HANDLED, OutcomeKind.SKIPPED}
    assert aml.model_state("fraud", 2) is None
    deliveries = _acknowledged(loop.deliver(pipeline, pipeline))
    assert [d.kind for d in deliveries] == [OutcomeKind.HANDLED, OutcomeKind.DUPLICATE]
    assert all("fraud:2" in d.outcome for d in deliveries)
    model = aml.model_state("fraud", 2)
    assert model is not None
    # The pipeline's named output by its URI (azure-ai-ml spells the datastore out), not the parent's empty
    # artifact store.
    assert model["properties"]["modelUri"].endswith(
        f"/datastores/workspaceblobstore/paths/azureml/{name}/trained_model/"
    )
    assert "/outputs/artifacts/" not in model["properties"]["modelUri"]
    assert model["properties"]["modelType"] == "mlflow_model"
    assert aml.model_state("fraud", 3) is None


# ------------------------------------------------------------------------ resync


def test_resync_deploys_a_tagged_model_that_got_no_event_once_even_if_the_event_arrives_later(app: OfflineApp) -> None:
    aml = app.stack.aml
    aml.seed_model("churn", 1, tags={})
    aml.seed_model("churn", 2, tags={"deploy": "true", "endpoint": "churn"})  # its event was lost
    aml.seed_model("legacy", 1, tags={})  # not opted in

    app.resync()

    [rollout] = app.rollouts()
    assert (rollout["model"], rollout["version"], rollout["state"]) == ("churn", "2", "pending")
    assert rollout["eventIds"] == ["resync:churn:2"]
    app.run_until_settled()
    assert app.traffic("churn") == {"churn-v2": 100}

    # The event arrives late, and the next resync runs: nothing is deployed twice.
    puts = len(aml.requests(method="PUT"))
    [outcome] = _acknowledged(app.deliver(model_registered("churn", 2, {"deploy": "true", "endpoint": "churn"})))
    assert outcome.kind is OutcomeKind.DUPLICATE
    app.resync()
    app.run_until_settled()
    assert len(aml.requests(method="PUT")) == puts
    [rollout] = app.rollouts()
    assert rollout["eventIds"][0] == "resync:churn:2" and len(rollout["eventIds"]) == 2


def test_resync_picks_up_tags_added_after_registration(app: OfflineApp) -> None:
    aml = app.stack.aml
    aml.seed_model("churn", 1, tags={})
    app.resync()
    assert app.rollouts() == []
    aml.set_model_tags("churn", 1, {"deploy": "true", "endpoint": "churn"})  # Azure ML raises no event for this
    app.resync()
    [rollout] = app.rollouts()
    assert rollout["eventIds"] == ["resync:churn:1"]


def test_resync_reads_a_bounded_number_of_times(stack: DevStack) -> None:
    for index in range(5):
        stack.aml.seed_model(f"m{index}", 1, tags={"deploy": "true"} if index % 2 else {})
    with app_environment(stack, RESYNC_MAX_MODELS="3"):
        app = OfflineApp(stack)
        since = time.time()
        app.resync()
        reads = stack.aml.requests(since=since)
    assert all(r.method == "GET" for r in reads)
    # 1 workspace read + 1 container page + 1 version list for each of the first 3 models.
    assert len(reads) == 5
    assert [r["model"] for r in app.rollouts()] == ["m1"]


def test_an_empty_resync_schedule_turns_the_resync_off(stack: DevStack) -> None:
    stack.aml.seed_model("churn", 1, tags={"deploy": "true"})
    with app_environment(stack, RESYNC_SCHEDULE=""):
        app = OfflineApp(stack)
        app.resync()
        assert stack.aml.requests() == []
        assert app.rollouts() == []
