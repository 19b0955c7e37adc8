"""The emulator's loop surface: components, pipeline jobs, model creation by the SDK, and the event outbox."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

pytestmark = pytest.mark.integration

INPUTS = {"monitor_name": "string", "drift_run_id": {"type": "string", "optional": True}, "lr": {"type": "number"}}


def _sequence(stack: DevStack) -> list[tuple[str, str, str | None, dict[str, str]]]:
    """(method, path relative to the workspace, api-version, other query) of every logged request."""
    return [
        (
            r.method,
            r.path.replace(stack.aml.workspace_id, "{ws}"),
            r.api_version,
            {k: v for k, v in r.query.items() if k != "api-version"},
        )
        for r in stack.aml.requests()
    ]


def _pipeline_job(stack: DevStack, name: str, inputs: dict[str, Any], version: str = "1") -> Any:
    from azure.ai.ml.entities import PipelineJob

    return PipelineJob(
        component=f"{stack.aml.workspace_id}/components/retrain/versions/{version}",
        inputs=inputs,
        name=name,
        experiment_name="drift-retraining",
        tags={"register_model": "credit_risk"},
    )


def test_components_get_list_and_latest_the_way_azure_ai_ml_asks(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_component("retrain", "10", INPUTS, created_at="2026-01-01T00:00:00Z")
    stack.aml.seed_component("retrain", "9", INPUTS, created_at="2026-06-01T00:00:00Z")
    stack.aml.seed_component("score", 1, ["data"], component_type="command")

    pinned = ml_client.components.get("retrain", "10")
    latest = ml_client.components.get("retrain", label="latest")

    assert (pinned.type, pinned.version, sorted(pinned.inputs)) == (
        "pipeline",
        "10",
        ["drift_run_id", "lr", "monitor_name"],
    )
    assert pinned.inputs["drift_run_id"].optional is True
    assert latest.version == "9"  # the most recently created, not the highest number
    assert latest.id.endswith("/components/retrain/versions/9")
    assert sorted(c.version for c in ml_client.components.list("retrain")) == ["10", "9"]
    assert sorted(c.name for c in ml_client.components.list()) == ["retrain", "score"]
    with pytest.raises(ResourceNotFoundError):
        ml_client.components.get("retrain", "404")
    assert _sequence(stack)[:2] == [
        ("GET", "{ws}/components/retrain/versions/10", "2024-01-01-preview", {}),
        (
            "GET",
            "{ws}/components/retrain/versions",
            "2024-01-01-preview",
            {"$orderBy": "createdtime desc", "$top": "1"},
        ),
    ]


def test_a_pipeline_job_is_one_put_and_its_inputs_are_checked(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_component("retrain", 1, INPUTS)

    job = ml_client.jobs.create_or_update(_pipeline_job(stack, "job-ok", {"monitor_name": "m", "lr": 0.1}))

    assert job.name == "job-ok" and job.status == "Starting" and job.tags == {"register_model": "credit_risk"}
    assert _sequence(stack) == [("PUT", "{ws}/jobs/job-ok", "2024-01-01-preview", {})]
    state = stack.aml.job_state("job-ok")
    assert state is not None and state["properties"]["jobType"] == "Pipeline"
    for inputs, message in [
        ({"monitor_name": "m", "lr": 1, "epochs": 3}, "Input(s) epochs are not declared"),
        ({"monitor_name": "m"}, "Required input(s) lr"),
    ]:
        with pytest.raises(HttpResponseError) as rejected:
            ml_client.jobs.create_or_update(_pipeline_job(stack, "job-bad", inputs))
        assert rejected.value.status_code == 400 and message in str(rejected.value)
    with pytest.raises(ResourceNotFoundError):
        ml_client.jobs.create_or_update(_pipeline_job(stack, "job-bad", {}, version="7"))
    assert stack.aml.job_state("job-bad") is None


def test_a_job_put_again_updates_tags_without_restarting(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_clock(frozen=True)  # emulated time moves only when the test moves it: no race with real time
    stack.aml.set_job_duration(0.15)
    body = {"properties": {"jobType": "Command", "command": "x", "tags": {"a": "1"}}}
    assert arm.call("PUT", "/jobs/j1", body).status_code == 201
    stack.aml.advance_clock(0.2)
    again = arm.call("PUT", "/jobs/j1", {"properties": {"jobType": "Command", "tags": {"a": "2"}}})
    assert again.status_code == 200
    assert again.json()["properties"]["status"] == "Completed"
    assert again.json()["properties"]["tags"] == {"a": "2"}
    assert [e["eventType"].rsplit(".", 1)[-1] for e in stack.aml.take_events()] == ["RunCompleted"]


def test_sdk_model_create_without_version_takes_the_next_and_announces_it(stack: DevStack, ml_client: MLClient) -> None:
    from azure.ai.ml.entities import Model

    stack.aml.seed_model("credit_risk", 1)
    assert stack.aml.take_events() == []  # seeding is not an ARM creation

    model = ml_client.models.create_or_update(
        Model(
            name="credit_risk",
            path="azureml://jobs/job-1/outputs/artifacts/paths/model",
            type="mlflow_model",
            tags={"deploy": "true"},
        )
    )

    assert model.version == "2"
    assert _sequence(stack) == [
        (
            "GET",
            "{ws}/models/credit_risk/versions",
            "2023-08-01-preview",
            {"$orderBy": "createdtime desc", "$top": "1"},
        ),
        ("GET", "{ws}/models/credit_risk", "2023-08-01-preview", {}),
        ("PUT", "{ws}/models/credit_risk/versions/2", "2023-08-01-preview", {}),
    ]
    [event] = stack.aml.take_events()
    assert event == {
        "id": event["id"],
        "topic": stack.aml.workspace_id,
        "subject": "models/credit_risk:2",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": event["eventTime"],
        "data": {
            "modelName": "credit_risk",
            "modelVersion": "2",
            "modelTags": {"deploy": "true"},
            "modelProperties": {},
        },
        "dataVersion": "2",
        "metadataVersion": "1",
    }
    model.tags = {"deploy": "false"}
    ml_client.models.create_or_update(model)  # an update of version 2 is no new registration
    assert stack.aml.take_events() == []


def test_jobs_announce_completion_and_failure_once(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_component("retrain", 1, INPUTS)
    stack.aml.set_clock(frozen=True)  # emulated time moves only when the test moves it: no race with real time
    stack.aml.set_job_duration(0.5)
    stack.aml.fail_jobs("job-red")
    for name in ("job-green", "job-red"):
        ml_client.jobs.create_or_update(_pipeline_job(stack, name, {"monitor_name": "m", "lr": 1}))
    assert stack.aml.take_events() == []

    stack.aml.wait_jobs()
    events = stack.aml.take_events()

    by_type = {e["eventType"].rsplit(".", 1)[-1]: e for e in events}
    assert sorted(by_type) == ["RunCompleted", "RunStatusChanged"]
    completed, failed = by_type["RunCompleted"], by_type["RunStatusChanged"]
    assert completed["topic"] == stack.aml.workspace_id
    assert completed["subject"] == f"experiments/{completed['data']['experimentId']}/runs/job-green"
    assert completed["data"] == {
        "experimentId": completed["data"]["experimentId"],
        "experimentName": "drift-retraining",
        "runId": "job-green",
        "runType": "azureml.PipelineRun",
        "runTags": {"register_model": "credit_risk"},
        "runProperties": completed["data"]["runProperties"],
    }
    assert failed["data"]["runId"] == "job-red" and failed["data"]["runStatus"] == "Failed"
    assert stack.aml.take_events() == []
    assert ml_client.jobs.get("job-green").status == "Completed"
    assert stack.aml.take_events() == []


def test_control_api_seeds_components_and_serves_the_outbox(stack: DevStack, arm: ArmSession) -> None:
    control = f"{stack.aml.url}/_emulator"
    seeded = arm.session.post(f"{control}/components", json={"name": "retrain", "version": "3", "inputs": ["a", "b"]})
    assert seeded.status_code == 201
    spec = arm.call("GET", "/components/retrain/versions/3").json()["properties"]["componentSpec"]
    assert (spec["type"], spec["inputs"]) == ("pipeline", {"a": {"type": "string"}, "b": {"type": "string"}})
    assert arm.call("GET", "/components/retrain").json()["properties"]["latestVersion"] == "3"

    arm.call("PUT", "/models/m/versions/1", {"properties": {"modelType": "mlflow_model"}})
    assert len(arm.session.get(f"{control}/events").json()["value"]) == 1
    [taken] = arm.session.post(f"{control}/events/take").json()["value"]
    assert taken["subject"] == "models/m:1"
    assert arm.session.get(f"{control}/events").json()["value"] == []


def test_a_5xx_can_carry_retry_after_to_keep_sdk_retries_fast(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model("m", 1)
    stack.aml.fail_next(3, 500, retry_after_s=0.01)
    started = time.monotonic()
    assert ml_client.models.get("m", "1").version == "1"
    assert time.monotonic() - started < 1.0
    assert [r.status for r in stack.aml.requests()] == [500, 500, 500, 200]
