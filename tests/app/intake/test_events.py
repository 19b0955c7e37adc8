"""Parsing: every fixture, both schemas and casings, and every tolerance rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from azure.eventgrid import SystemEventNames

from app.intake import events
from app.intake.events import envelope_from_function_event, parse
from app.platform.errors import EventValidationError
from devkit.runner import load_events, to_function_event
from tests.envelopes import envelope
from tests.fakes import WORKSPACE, WORKSPACE_ID

EVENTS = Path(__file__).parents[2] / "events"
pytestmark = pytest.mark.fast
FIXTURES = sorted(EVENTS.glob("*.*.*.json"))


def _event(event_type: str, data: dict[str, Any], subject: str = "", schema: str = "EventGrid") -> Any:
    body: dict[str, Any]
    if schema == "CloudEvents":
        body = {
            "specversion": "1.0",
            "id": "e1",
            "source": WORKSPACE_ID,
            "type": event_type,
            "subject": subject,
            "time": "2026-11-22T10:00:00Z",
            "data": data,
        }
    else:
        body = {
            "id": "e1",
            "topic": WORKSPACE_ID,
            "eventType": event_type,
            "subject": subject,
            "eventTime": "2026-11-22T10:00:00Z",
            "data": data,
            "dataVersion": "1",
        }
    return parse(envelope(body))


def test_event_type_constants_match_the_sdk() -> None:
    assert SystemEventNames.MachineLearningServicesModelRegisteredEventName == events.MODEL_REGISTERED
    assert SystemEventNames.MachineLearningServicesModelDeployedEventName == events.MODEL_DEPLOYED
    assert SystemEventNames.MachineLearningServicesRunCompletedEventName == events.RUN_COMPLETED
    assert SystemEventNames.MachineLearningServicesRunStatusChangedEventName == events.RUN_STATUS_CHANGED
    assert SystemEventNames.MachineLearningServicesDatasetDriftDetectedEventName == events.DATASET_DRIFT_DETECTED


def test_there_is_a_fixture_for_every_type_schema_and_casing() -> None:
    names = {path.name for path in FIXTURES}
    for kind in ("model_registered", "model_deployed", "run_completed", "run_status_changed", "dataset_drift_detected"):
        for schema in ("eventgrid", "cloudevents"):
            for casing in ("camel", "pascal"):
                assert f"{kind}.{schema}.{casing}.json" in names


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_every_fixture_parses_through_the_worker_objects(path: Path) -> None:
    for body in load_events(path):
        from_worker = parse(envelope_from_function_event(to_function_event(body)))
        assert from_worker.id == body["id"]
        assert from_worker.event_type == (body.get("eventType") or body["type"])
        assert from_worker.workspace == WORKSPACE
        assert from_worker.envelope.schema == ("CloudEvents" if "specversion" in body else "EventGrid")
        assert from_worker.envelope.time == dt.datetime(2026, 11, 22, 10, 15, 30, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_pascal_and_camel_case_parse_to_equal_data(schema: str) -> None:
    for kind in ("model_registered", "model_deployed", "run_completed", "run_status_changed", "dataset_drift_detected"):
        camel = parse(envelope(load_events(EVENTS / f"{kind}.{schema}.camel.json")[0]))
        pascal = parse(envelope(load_events(EVENTS / f"{kind}.{schema}.pascal.json")[0]))
        assert camel.data == pascal.data, kind


def test_model_registered_fields() -> None:
    event = parse(envelope(load_events(EVENTS / "model_registered.eventgrid.pascal.json")[0]))
    assert event.data == events.ModelRegisteredData(
        model_name="credit_risk.v2",
        model_version="1",
        model_tags={"deploy": "true", "endpoint": "credit-risk", "traffic": "100"},
        model_properties={"flavors": "python_function"},
    )


def test_integer_version_becomes_a_string() -> None:
    event = _event(events.MODEL_REGISTERED, {"ModelName": "m", "ModelVersion": 20})
    assert event.data.model_version == "20"


def test_non_numeric_version_is_kept() -> None:
    event = _event(events.MODEL_REGISTERED, {"modelName": "m", "modelVersion": "2026-11-rc1"})
    assert event.data.model_version == "2026-11-rc1"


@pytest.mark.parametrize("schema", ["EventGrid", "CloudEvents"])
def test_model_fields_recovered_from_subject(schema: str) -> None:
    event = _event(events.MODEL_REGISTERED, {"modelTags": {"deploy": "true"}}, "models/fraud.model:7", schema)
    assert (event.data.model_name, event.data.model_version) == ("fraud.model", "7")
    assert event.data.model_tags == {"deploy": "true"}


def test_run_fields_recovered_from_subject() -> None:
    event = _event(events.RUN_STATUS_CHANGED, {"runStatus": "Failed"}, "experiments/exp-1/runs/run-9")
    assert (event.data.experiment_id, event.data.run_id, event.data.run_status) == ("exp-1", "run-9", "Failed")
    assert event.data.run_tags == {}


@pytest.mark.parametrize("subject", ["datadrift/d-1/run/r-2", "datadrifts/d-1/runs/r-2", "DataDrift/d-1/Run/r-2"])
def test_drift_fields_recovered_from_either_subject_spelling(subject: str) -> None:
    event = _event(events.DATASET_DRIFT_DETECTED, {"driftCoefficient": 0.7}, subject)
    assert (event.data.data_drift_id, event.data.run_id) == ("d-1", "r-2")
    assert event.data.drift_coefficient == 0.7


def test_endpoint_name_recovered_from_subject_and_model_ids_split() -> None:
    event = _event(events.MODEL_DEPLOYED, {"modelIds": "a:1, b:2"}, "endpoints/svc-1")
    assert event.data.service_name == "svc-1"
    assert event.data.model_ids == ("a:1", "b:2")


def test_unknown_fields_are_ignored() -> None:
    event = _event(events.MODEL_REGISTERED, {"modelName": "m", "modelVersion": "1", "brandNew": {"x": 1}})
    assert event.data.model_name == "m"


def test_drift_times_are_parsed() -> None:
    event = parse(envelope(load_events(EVENTS / "dataset_drift_detected.cloudevents.camel.json")[0]))
    assert event.data.start_time == dt.datetime(2026, 11, 14, tzinfo=dt.UTC)
    assert event.data.end_time == dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("event_type", "data", "subject", "field"),
    [
        (events.MODEL_REGISTERED, {"modelVersion": "1"}, "", "data.modelName"),
        (events.MODEL_REGISTERED, {"modelName": "m"}, "models/garbage", "data.modelVersion"),
        (events.MODEL_REGISTERED, {"modelName": "m", "modelVersion": "1", "modelTags": ["x"]}, "", "data.modelTags"),
        (events.MODEL_REGISTERED, {"modelName": {"a": 1}, "modelVersion": "1"}, "", "data.modelName"),
        (events.RUN_STATUS_CHANGED, {"runId": "r"}, "", "data.experimentId"),
        (events.RUN_STATUS_CHANGED, {"experimentId": "e", "runId": "r"}, "", "data.runStatus"),
        (events.DATASET_DRIFT_DETECTED, {}, "datadrift/d/run/r", "data.driftCoefficient"),
        (events.DATASET_DRIFT_DETECTED, {"driftCoefficient": "high"}, "datadrift/d/run/r", "data.driftCoefficient"),
        (events.DATASET_DRIFT_DETECTED, {"driftCoefficient": 3}, "datadrift/d/run/r", "data.driftCoefficient"),
        (
            events.DATASET_DRIFT_DETECTED,
            {"driftCoefficient": 0.5, "startTime": "yesterday"},
            "datadrift/d/run/r",
            "data.startTime",
        ),
        (events.MODEL_DEPLOYED, {}, "", "data.serviceName"),
    ],
)
def test_bad_payloads_name_the_field(event_type: str, data: dict[str, Any], subject: str, field: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        _event(event_type, data, subject)
    assert caught.value.field == field
    assert field in str(caught.value)  # the message names it too


def test_bad_topic_names_the_field_and_expected_shape() -> None:
    body = {
        "id": "e1",
        "topic": "/subscriptions/x/resourceGroups/y",
        "eventType": events.MODEL_REGISTERED,
        "subject": "models/m:1",
        "data": {},
    }
    with pytest.raises(EventValidationError) as caught:
        parse(envelope(body))
    assert caught.value.field == "topic"
    assert "workspaces/{ws}" in str(caught.value)


def test_bad_source_of_a_cloud_event_names_source() -> None:
    body = {
        "specversion": "1.0",
        "id": "e1",
        "source": "urn:nowhere",
        "type": events.RUN_COMPLETED,
        "subject": "experiments/e/runs/r",
        "data": {},
    }
    with pytest.raises(EventValidationError) as caught:
        parse(envelope(body))
    assert caught.value.field == "source"


def test_non_object_data_is_a_validation_error() -> None:
    body = {"id": "e1", "topic": WORKSPACE_ID, "eventType": events.RUN_COMPLETED, "subject": "s", "data": "oops"}
    with pytest.raises(EventValidationError) as caught:
        parse(envelope_from_function_event(to_function_event(body)))
    assert caught.value.field == "data"


def test_workspace_id_is_compared_case_insensitively() -> None:
    body = {
        "id": "e1",
        "topic": WORKSPACE_ID.upper().replace("/PROVIDERS/", "/providers/"),
        "eventType": events.RUN_COMPLETED,
        "subject": "experiments/e/runs/r",
        "data": {},
    }
    assert parse(envelope(body)).workspace.key == WORKSPACE.key
