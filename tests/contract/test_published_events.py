"""Events in the shape of Microsoft's published Azure ML samples, both schemas, through the app's real parsing path.

The fixtures are our own (tests/events/published/spec/README.md says what shape they keep and where the samples are).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from app.intake.events import (
    DatasetDriftDetectedData,
    ModelDeployedData,
    ModelRegisteredData,
    RunCompletedData,
    RunStatusChangedData,
    envelope_from_function_event,
    parse,
)
from app.platform.workspace import WorkspaceRef
from devkit.runner import load_events, to_function_event

PUBLISHED = Path(__file__).parents[1] / "events" / "published" / "spec"
KINDS = ("model_registered", "model_deployed", "run_completed", "run_status_changed", "dataset_drift_detected")
SCHEMAS = ("eventgrid", "cloudevents")
SAMPLE_TIME = dt.datetime(2024, 3, 14, 9, 26, 53, 589793, tzinfo=dt.UTC)  # seven digits on the wire
WORKSPACE = WorkspaceRef("7d1e4c2a-9b3f-4e6d-8a15-2c9f0b6e4d31", "rg-fraud-ml", "mlw-fraud")
IDS = {
    "model_registered": "4a8f2c6e-1d3b-4e7a-9c05-b6e1f3a2d8c4",
    "model_deployed": "b3d9e1a7-6c2f-4b8e-a4d0-7e5c9f1b3a62",
    "run_completed": "c7e2a5f9-3b1d-4c6e-8f0a-2d9b4e7c1a35",
    "run_status_changed": "d1f8b4c2-9e6a-4d3b-b7c0-5a2e8f1d6b49",
    "dataset_drift_detected": "e9a4c7b2-5d1f-4e3a-9b8c-3f6d0a2e7c14",
}
RUN = {
    "experiment_id": "e2a6c4f1-7b39-4d8e-a05c-93f1b2d7c6e8",
    "experiment_name": "fraud-automl",
    "run_id": "AutoML_3b7e91c4-58d2-4f0a-9e6b-1d2c7a4f8e05_3",
    "run_type": "",  # sent as null
    "run_tags": {},
}
EXPECTED: dict[str, Any] = {
    "model_registered": ModelRegisteredData(
        model_name="fraud_classifier",
        model_version="7",  # sent as the integer 7
        model_tags={"team": "payments", "stage": "candidate"},
        model_properties={"framework": "lightgbm"},
    ),
    "model_deployed": ModelDeployedData(
        service_name="fraud-scoring",
        service_compute_type="AKS",
        model_ids=("fraud_classifier:6", "fraud_classifier:7"),
        service_tags={"team": "payments", "tier": "gold"},
        service_properties={"owner": "mlops"},
    ),
}


def _parsed(kind: str, schema: str) -> Any:
    (body,) = load_events(PUBLISHED / f"{kind}.{schema}.json")
    worker_event = to_function_event(body)  # the azure.functions object the worker hands the trigger
    return parse(envelope_from_function_event(worker_event))


def test_both_schemas_of_every_type_are_there() -> None:
    assert sorted(p.name for p in PUBLISHED.glob("*.json")) == sorted(f"{k}.{s}.json" for k in KINDS for s in SCHEMAS)


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("kind", KINDS)
def test_the_envelope_of_every_event(kind: str, schema: str) -> None:
    event = _parsed(kind, schema)

    assert event.envelope.schema == {"eventgrid": "EventGrid", "cloudevents": "CloudEvents"}[schema]
    assert event.id == IDS[kind]
    assert event.event_type == f"Microsoft.MachineLearningServices.{''.join(p.title() for p in kind.split('_'))}"
    assert event.envelope.time == SAMPLE_TIME
    assert event.workspace == WORKSPACE


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("kind", ["model_registered", "model_deployed"])
def test_model_events_parse_to_their_values(kind: str, schema: str) -> None:
    assert _parsed(kind, schema).data == EXPECTED[kind]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_run_completed_event_parses_to_its_values(schema: str) -> None:
    data = _parsed("run_completed", schema).data

    assert type(data) is RunCompletedData
    assert {k: getattr(data, k) for k in RUN} == RUN
    assert data.run_properties["run_algorithm"] == "LightGBM"
    assert data.run_properties == load_events(PUBLISHED / f"run_completed.{schema}.json")[0]["data"]["runProperties"]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_run_status_changed_event_keeps_its_lowercase_status(schema: str) -> None:
    data = _parsed("run_status_changed", schema).data

    assert type(data) is RunStatusChangedData
    assert {k: getattr(data, k) for k in RUN} == RUN
    assert data.run_status == "failed"


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_drift_event_parses_to_its_values(schema: str) -> None:
    data = _parsed("dataset_drift_detected", schema).data

    assert data == DatasetDriftDetectedData(
        data_drift_id="f5c3a9e1-2b7d-4f6c-8e0a-1c4b9d3f7a26",
        data_drift_name="paymentsDriftMonitor",
        run_id="f5c3a9e1-2b7d-4f6c-8e0a-1c4b9d3f7a26_1710408413207",
        base_dataset_id="8e1b4d7a-3c9f-4a2e-b6d5-0f7c2a9e4b13",
        target_dataset_id="2a7d5c1e-9f4b-4e8a-a3c6-6b0e1d8f5c27",
        drift_coefficient=0.6172839506172839,
        start_time=dt.datetime(2024, 3, 13, tzinfo=dt.UTC),  # the same instant in both files' offsets
        end_time=dt.datetime(2024, 3, 14, tzinfo=dt.UTC),
    )
