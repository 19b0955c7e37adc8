"""Closing the loop, end to end: drift → retraining job → run completed → model registered → rollout (real SDKs)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from app.intake.outcome import OutcomeKind
from app.platform.idempotency import Idempotency, Status
from app.platform.workspace import WorkspaceRef
from app.retraining.decide import job_name
from app.retraining.registration import registration_key
from app.wiring import production_deps
from devkit.harness import OfflineApp, app_environment, drift_detected, model_registered, run_completed
from devkit.runner import Delivery
from devkit.stack import DevStack

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

COMPONENT = "retrain_credit"
MONITOR_ID = "drift-monitor-1"  # what harness.drift_detected sends as dataDriftId
ALL_INPUTS = ("monitor_name", "drift_run_id", "base_dataset_id", "target_dataset_id", "window_start", "window_end")
JOB_TAGS = "register_model=credit_risk,model.deploy=true,model.endpoint=credit,model.traffic=20"
RETRAIN = {
    "RETRAIN_PIPELINE_COMPONENT": f"{COMPONENT}@latest",
    "RETRAIN_COMPUTE": "cpu-cluster",
    "RETRAIN_JOB_TAGS": JOB_TAGS,
}


@pytest.fixture
def loop(stack: DevStack) -> Iterator[OfflineApp]:
    """The offline app with a retraining target, and fast jobs."""
    stack.aml.set_job_duration(0.2)
    with app_environment(stack, **RETRAIN):
        yield OfflineApp(stack)


def _job_puts(app: OfflineApp) -> list[Any]:
    return app.stack.aml.requests(method="PUT", path_contains="/jobs/")


def _created_jobs(app: OfflineApp) -> list[str]:
    return sorted(app.stack.aml.snapshot()["jobs"])


def _notifications(app: OfflineApp, kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in app.published() if event["type"] == kind]


def _one(deliveries: list[Delivery]) -> Delivery:
    [delivery] = deliveries
    assert delivery.acknowledged, delivery.attempts
    return delivery


def _models(app: OfflineApp, name: str) -> dict[str, Mapping[str, str]]:
    return {m["version"]: m["tags"] for m in app.stack.aml.snapshot()["models"] if m["name"] == name}


# ----------------------------------------------------------------------------------------- drift → job


def test_drift_above_the_threshold_submits_the_component_as_a_tagged_pipeline_job(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    loop.stack.aml.seed_component(COMPONENT, 2, ALL_INPUTS)  # @latest is the newest
    event = drift_detected("credit-monitor", "drift_run_7", 0.81)

    delivery = _one(loop.deliver(event))

    name = job_name(MONITOR_ID, "drift_run_7")
    assert delivery.kind is OutcomeKind.HANDLED
    [put] = _job_puts(loop)
    assert put.path.endswith(f"/jobs/{name}")
    job = loop.stack.aml.job_state(name)
    assert job is not None
    props = job["properties"]
    assert props["jobType"] == "Pipeline"
    assert props["componentId"].endswith(f"/components/{COMPONENT}/versions/2")
    assert props["experimentName"] == "drift-retraining"
    assert props["settings"]["default_compute"].endswith("/computes/cpu-cluster")
    assert {k: v["value"] for k, v in props["inputs"].items()} == {
        "monitor_name": "credit-monitor",
        "drift_run_id": "drift_run_7",
        "base_dataset_id": "base-dataset",
        "target_dataset_id": "target-dataset",
        "window_start": "2026-11-14T00:00:00+00:00",
        "window_end": "2026-11-21T00:00:00+00:00",
    }
    assert props["tags"] == {
        "register_model": "credit_risk",
        "model.deploy": "true",
        "model.endpoint": "credit",
        "model.traffic": "20",
        "trigger_event_id": event["id"],
        "drift_run_id": "drift_run_7",
        "drift_monitor": "credit-monitor",
    }
    assert loop.published_types() == ["AmlEvents.Drift.Detected", "AmlEvents.Retraining.Submitted"]
    [submitted] = _notifications(loop, "AmlEvents.Retraining.Submitted")
    assert submitted["links"]["job"].startswith(f"https://ml.azure.com/runs/{name}?wsid=")
    assert "0.81" in submitted["facts"]["reason"] and "DRIFT_THRESHOLD" in submitted["facts"]["reason"]  # the evidence


def test_drift_below_the_threshold_is_reported_and_submits_nothing(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    delivery = _one(loop.deliver(drift_detected("credit-monitor", "drift_run_1", 0.31)))
    assert delivery.kind is OutcomeKind.SKIPPED and "DRIFT_THRESHOLD" in delivery.outcome
    assert loop.stack.aml.requests() == []
    [skipped] = _notifications(loop, "AmlEvents.Retraining.Skipped")
    assert skipped["facts"]["kind"] == "below threshold"
    assert skipped["links"]["driftRun"].startswith("https://ml.azure.com/runs/drift_run_1?wsid=")


def test_drift_without_a_retraining_target_is_reported_as_not_configured(stack: DevStack) -> None:
    with app_environment(stack):
        app = OfflineApp(stack)
        delivery = _one(app.deliver(drift_detected("credit-monitor", "drift_run_1", 0.9)))
    assert delivery.kind is OutcomeKind.SKIPPED
    assert stack.aml.requests() == []
    [skipped] = _notifications(app, "AmlEvents.Retraining.Skipped")
    assert skipped["facts"]["kind"] == "not configured" and "RETRAIN_PIPELINE_COMPONENT" in skipped["facts"]["reason"]


def test_a_duplicate_drift_event_finds_the_job_and_submits_nothing(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    event = drift_detected("credit-monitor", "drift_run_2", 0.7)
    same_run_other_event = drift_detected("credit-monitor", "drift_run_2", 0.7)

    deliveries = loop.deliver(event, event, same_run_other_event)

    assert [d.kind for d in deliveries] == [OutcomeKind.HANDLED, OutcomeKind.DUPLICATE, OutcomeKind.DUPLICATE]
    assert len(_job_puts(loop)) == 1
    assert _created_jobs(loop) == [job_name(MONITOR_ID, "drift_run_2")]
    assert loop.published_types().count("AmlEvents.Retraining.Submitted") == 1


def test_a_second_drift_run_inside_the_cooldown_is_recorded_and_reported_not_submitted(
    loop: OfflineApp, stack: DevStack
) -> None:
    stack.aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    _one(loop.deliver(drift_detected("credit-monitor", "drift_run_3", 0.7)))
    held = _one(loop.deliver(drift_detected("credit-monitor", "drift_run_4", 0.95)))

    assert held.kind is OutcomeKind.SKIPPED
    assert "RETRAIN_COOLDOWN_MINUTES=360" in held.outcome  # the setting, and its value
    assert len(_job_puts(loop)) == 1
    [skipped] = _notifications(loop, "AmlEvents.Retraining.Skipped")
    assert skipped["facts"]["kind"] == "cooldown" and skipped["facts"]["driftRunId"] == "drift_run_4"
    deps = production_deps()
    workspace = WorkspaceRef.from_arm_id(stack.aml.workspace_id)
    [record] = [
        row
        for row in deps.table(deps.settings.idempotency_table).query("RowKey eq @key", key=MONITOR_ID)
        if row.partition.startswith(f"retraining~{workspace.workspace_name}~")
    ]
    assert record.data["DriftRunId"] == "drift_run_3" and record.data["Skipped"] == '["drift_run_4"]'

    with app_environment(stack, **RETRAIN, RETRAIN_COOLDOWN_MINUTES="0"):
        after = _one(OfflineApp(stack).deliver(drift_detected("credit-monitor", "drift_run_5", 0.9)))
    assert after.kind is OutcomeKind.HANDLED
    assert len(_job_puts(loop)) == 2


def test_only_the_inputs_the_component_declares_are_passed(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(
        COMPONENT,
        1,
        {"target_dataset_id": "uri_folder", "drift_run_id": "string", "epochs": {"type": "integer", "default": 5}},
    )
    _one(loop.deliver(drift_detected("credit-monitor", "drift_run_6", 0.6)))
    job = loop.stack.aml.job_state(job_name(MONITOR_ID, "drift_run_6"))
    assert job is not None
    assert {k: v["value"] for k, v in job["properties"]["inputs"].items()} == {
        "target_dataset_id": "target-dataset",
        "drift_run_id": "drift_run_6",
    }


def test_a_500_on_submit_is_redelivered_and_converges_on_one_job(loop: OfflineApp) -> None:
    loop.stack.aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    loop.stack.aml.inject_faults(methods=["PUT"], path_pattern="/jobs/")
    # azure-core retries a 500 three times itself; four make the delivery fail (Retry-After keeps it fast).
    loop.stack.aml.fail_next(4, 500, retry_after_s=0.01)

    delivery = _one(loop.deliver(drift_detected("credit-monitor", "drift_run_8", 0.9), max_attempts=3))

    assert len(delivery.attempts) == 2
    [raised] = delivery.errors
    assert isinstance(raised, HttpResponseError) and raised.status_code == 500
    assert delivery.kind is OutcomeKind.HANDLED
    assert [r.status for r in _job_puts(loop)] == [500, 500, 500, 500, 201]
    assert _created_jobs(loop) == [job_name(MONITOR_ID, "drift_run_8")]
    assert loop.published_types().count("AmlEvents.Retraining.Submitted") == 1


# ----------------------------------------------------------------------------------------- run → model


def test_a_tagged_run_registers_its_output_with_the_model_tags(loop: OfflineApp) -> None:
    loop.stack.aml.seed_model("credit_risk", 1)
    tags = {
        "register_model": "credit_risk",
        "model_path": "outputs/model",
        "model.deploy": "true",
        "model.endpoint": "credit",
        "owner": "risk-team",
    }
    delivery = _one(loop.deliver(run_completed("train_42", tags, experiment="credit-train")))

    assert delivery.kind is OutcomeKind.HANDLED
    model = loop.stack.aml.snapshot()["models"]
    [created] = [m for m in model if m["version"] == "2"]
    assert created["type"] == "mlflow_model"
    assert created["tags"] == {
        "deploy": "true",
        "endpoint": "credit",
        "source_run_id": "train_42",
        "source_experiment": "credit-train",
    }
    [put] = loop.stack.aml.requests(method="PUT", path_contains="/models/")
    assert put.path.endswith("/models/credit_risk/versions/2")
    [registered] = loop.stack.aml.take_events()
    assert registered["eventType"] == "Microsoft.MachineLearningServices.ModelRegistered"
    assert registered["data"]["modelTags"]["source_run_id"] == "train_42"
    assert loop.published_types() == ["AmlEvents.Run.Completed", "AmlEvents.Model.RegisteredFromRun"]
    [notice] = _notifications(loop, "AmlEvents.Model.RegisteredFromRun")
    assert notice["facts"]["path"] == "azureml://jobs/train_42/outputs/artifacts/paths/outputs/model"
    assert notice["links"]["model"].startswith("https://ml.azure.com/models/credit_risk/version/2?wsid=")


def test_a_duplicate_run_completed_registers_one_version(loop: OfflineApp, stack: DevStack) -> None:
    event = run_completed("train_43", {"register_model": "credit_risk"})
    deliveries = loop.deliver(event, event)
    late = _one(loop.deliver(run_completed("train_43", {"register_model": "credit_risk"})))

    assert [d.kind for d in deliveries] == [OutcomeKind.HANDLED, OutcomeKind.DUPLICATE]
    assert late.kind is OutcomeKind.DUPLICATE
    assert all("credit_risk:1" in d.outcome for d in (*deliveries, late))  # the version the run registered
    assert len(stack.aml.requests(method="PUT", path_contains="/models/credit_risk/versions/")) == 1
    assert list(_models(loop, "credit_risk")) == ["1"]
    deps = production_deps()
    records = Idempotency(deps.table(deps.settings.idempotency_table), in_progress_for=dt.timedelta(0))
    record = records.get(registration_key(WorkspaceRef.from_arm_id(stack.aml.workspace_id), "train_43"))
    assert record is not None and record.status is Status.COMPLETED
    assert record.result == {"model_version": "1"} and record.fields["Notified"] is True


def test_the_same_run_asking_for_another_model_is_rejected_not_registered(loop: OfflineApp, stack: DevStack) -> None:
    _one(loop.deliver(run_completed("train_46", {"register_model": "credit_risk"})))
    other = _one(loop.deliver(run_completed("train_46", {"register_model": "fraud"})))

    assert other.kind is OutcomeKind.REJECTED
    assert "credit_risk" in other.outcome and "fraud" in other.outcome  # the model it registered, the one asked
    assert [r.path.rsplit("/models/", 1)[-1] for r in stack.aml.requests(method="PUT", path_contains="/models/")] == [
        "credit_risk/versions/1"
    ]


def test_a_run_without_the_tag_is_only_notified(loop: OfflineApp) -> None:
    delivery = _one(loop.deliver(run_completed("train_44", {"owner": "risk-team", "model.deploy": "true"})))
    assert delivery.kind is OutcomeKind.HANDLED
    assert loop.stack.aml.requests() == []
    assert loop.published_types() == ["AmlEvents.Run.Completed"]


def test_a_bad_model_type_is_a_permanent_error_and_creates_nothing(loop: OfflineApp) -> None:
    event = run_completed("train_45", {"register_model": "credit_risk", "model_type": "onnx"})
    delivery = _one(loop.deliver(event))
    assert len(delivery.attempts) == 1 and delivery.kind is OutcomeKind.REJECTED
    # The tag, its value and the values it may take.
    assert all(
        name in delivery.outcome for name in ("model_type", "onnx", "custom_model", "mlflow_model", "triton_model")
    )
    assert loop.stack.aml.requests() == []
    assert loop.stack.aml.take_events() == []


# ----------------------------------------------------------------------------------------- the loop


def test_the_loop_drift_to_canary_replayed_as_events(loop: OfflineApp, caplog: pytest.LogCaptureFixture) -> None:
    aml = loop.stack.aml
    aml.seed_component(COMPONENT, 1, ALL_INPUTS)
    aml.seed_model("credit_risk", 1, tags={"deploy": "true", "endpoint": "credit"})
    timeline: list[str] = []

    def deliver(event: dict[str, Any]) -> Delivery:
        delivery = _one(loop.deliver(event))
        line = f"{event['eventType'].rsplit('.', 1)[-1]} {event['subject']} -> {delivery.outcome}"
        timeline.append(line)
        return delivery

    deliver(model_registered("credit_risk", 1))
    loop.run_until_settled()
    assert loop.traffic("credit") == {"credit-risk-v1": 100}

    assert deliver(drift_detected("credit-monitor", "drift_run_9", 0.77)).kind is OutcomeKind.HANDLED
    assert _created_jobs(loop) == [job_name(MONITOR_ID, "drift_run_9")]
    aml.wait_jobs()
    step, completed = aml.take_events()  # the pipeline's step run ends first, then the pipeline job
    pipeline = job_name(MONITOR_ID, "drift_run_9")
    assert [step["eventType"], completed["eventType"]] == ["Microsoft.MachineLearningServices.RunCompleted"] * 2
    assert step["data"]["runProperties"] == {"azureml.pipelinerunid": pipeline}
    assert completed["data"]["runId"] == pipeline
    assert completed["data"]["runType"] == "azureml.PipelineRun"

    assert deliver(step).kind is OutcomeKind.HANDLED  # notified: a step has no registration tags of its own
    assert aml.take_events() == []
    assert deliver(completed).kind is OutcomeKind.HANDLED
    [registered] = aml.take_events()
    assert registered["subject"] == "models/credit_risk:2"
    assert registered["data"]["modelTags"]["traffic"] == "20"

    deliver(registered)
    ticks = loop.run_until_settled()
    timeline.append(f"reconciler: settled after {ticks} ticks; traffic {loop.traffic('credit')}")

    assert loop.rollout("credit-risk-v2")["state"] == "canary"
    assert loop.traffic("credit") == {"credit-risk-v1": 80, "credit-risk-v2": 20}
    assert loop.published_types()[-1] == "AmlEvents.Rollout.Canary"
    assert aml.take_events() == []
    with caplog.at_level(logging.INFO, logger=__name__):
        for line in timeline:
            logger.info("loop: %s", line)
    print("\n".join(["", "closed loop timeline:", *timeline]))
    assert [line.split(" ", 1)[0] for line in timeline] == [
        "ModelRegistered",
        "DatasetDriftDetected",
        "RunCompleted",
        "RunCompleted",
        "ModelRegistered",
        "reconciler:",
    ]
