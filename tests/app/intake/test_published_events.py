"""Published Azure ML event shapes (SDK test vectors, the docs page, derived variants) through the real parse path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from app.handlers import HANDLERS
from app.intake import events
from app.intake.dispatch import process
from app.intake.events import AmlEvent, envelope_from_function_event, parse
from app.intake.outcome import OutcomeKind
from app.notify.notifier import Notifier
from app.platform.errors import EventValidationError
from app.platform.settings import Settings
from app.ports import Deps
from devkit.runner import load_events, to_function_event
from tests.envelopes import envelope

PUBLISHED = Path(__file__).parents[2] / "events" / "published" / "sdk"
pytestmark = pytest.mark.fast

PRICING_WS = ("3f2b8c1e-7a4d-4e0b-9c55-2d1e6f8a9b01", "rg-pricing", "ws-pricing-dev")
DRIFT_WS = ("8d4e2f6a-1b3c-4d5e-8f90-a1b2c3d4e5f6", "rgDriftShapes", "wsDriftShapes")
DOCS_WS = ("6c1d0e9b-4a2f-4b7e-a3d8-5f0e1c2b3a49", "rg-docs-shapes", "ws-docs-shapes")
DOCS_WORKSPACE_ID = (
    "/subscriptions/6c1d0e9b-4a2f-4b7e-a3d8-5f0e1c2b3a49/resourceGroups/rg-docs-shapes/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-docs-shapes"
)
DOCS_TIME = dt.datetime(2026, 3, 17, 10, 5, 27, 441837, tzinfo=dt.UTC)

SDK_RUN_ID = "AutoML_4c7e21b9-0d58-4a3f-b6e2-97f1c0a8d315"
SDK_EXPERIMENT_ID = "e2a81f3c-5b7d-4c09-a6e4-3d9b0f12c7a8"
SDK_RUN_TAGS = {
    "experiment_status": "FeaturesGeneration",
    "experiment_status_descr": "Generating features for the dataset.",
}
SDK_RUN_PROPERTIES = {"num_iterations": "25", "target": "cpu-cluster"}
DOCS_RUN_ID = "AutoML_4c7e21b9-0d58-4a3f-b6e2-97f1c0a8d315_3"

SDK_MODEL_REGISTERED = events.ModelRegisteredData(
    model_name="ridge_price_model",
    model_version="7",
    model_tags={"team": "pricing", "task": "regression-v2"},
    model_properties={"owner": "fixtures"},
)
SDK_MODEL_DEPLOYED = events.ModelDeployedData(
    service_name="aci-price-api",
    service_compute_type="ACI",
    model_ids=("price_model_a:4", "price_model_b:2"),
    service_tags={"costcenter": "cc-1042"},
    service_properties={"tier": "bronze"},
)
SDK_RUN_COMPLETED = events.RunCompletedData(
    experiment_id=SDK_EXPERIMENT_ID,
    experiment_name="automl-housing-prices",
    run_id=SDK_RUN_ID,
    run_type="automl",
    run_tags=SDK_RUN_TAGS,  # spelled "RunTags" among camelCase keys in the published payload
    run_properties=SDK_RUN_PROPERTIES,
)
SDK_RUN_STATUS_CHANGED = events.RunStatusChangedData(
    experiment_id=SDK_EXPERIMENT_ID,
    experiment_name="automl-housing-prices",
    run_id=SDK_RUN_ID,
    run_type="automl",
    run_tags=SDK_RUN_TAGS,
    run_properties=SDK_RUN_PROPERTIES,
    run_status="Running",
)
SDK_DRIFT = events.DatasetDriftDetectedData(
    data_drift_id="7b3e9d20-4c1f-4a86-b25d-e0f7a3c91d64",
    data_drift_name="pricesDriftMonitor2",
    run_id="7b3e9d20-4c1f-4a86-b25d-e0f7a3c91d64_1769608542318",
    base_dataset_id="f1a2b3c4-d5e6-4f70-8a9b-0c1d2e3f4a5b",
    target_dataset_id="",  # the published vector misspells it "tarAsSystemEventDatasetId"
    drift_coefficient=0.6120458813324571,
    start_time=dt.datetime(2026, 1, 20, tzinfo=dt.UTC),
    end_time=dt.datetime(2026, 1, 27, tzinfo=dt.UTC),
)
DOCS_MODEL_REGISTERED = events.ModelRegisteredData(
    model_name="ridge_price_model",
    model_version="42",  # an integer in the published payload
    model_tags={"team": "pricing", "task": "regression-v2"},
    model_properties={"owner": "fixtures"},
)
DOCS_MODEL_DEPLOYED = events.ModelDeployedData(
    service_name="price-api-docs",
    service_compute_type="ACI",
    model_ids=("ridge_price_model:5", "ridge_price_model:6"),
    service_tags={"team": "pricing", "task": "regression-v2"},
    service_properties={"owner": "fixtures"},
)
DOCS_DRIFT = events.DatasetDriftDetectedData(
    data_drift_id="7b3e9d20-4c1f-4a86-b25d-e0f7a3c91d64",
    data_drift_name="docsPriceDriftMonitor",
    run_id="7b3e9d20-4c1f-4a86-b25d-e0f7a3c91d64_1769608542318",
    base_dataset_id="f1a2b3c4-d5e6-4f70-8a9b-0c1d2e3f4a5b",
    target_dataset_id="a9b8c7d6-e5f4-4a3b-9c2d-1e0f9a8b7c6d",
    drift_coefficient=0.6120458813324571,
    start_time=dt.datetime(2026, 1, 20, tzinfo=dt.UTC),
    end_time=dt.datetime(2026, 1, 27, tzinfo=dt.UTC),
)

# file -> (schema, workspace (sub, rg, ws), envelope time, typed data)
EXPECTED: dict[str, tuple[str, tuple[str, str, str], dt.datetime, Any]] = {
    "sdk_eventgrid_model_registered.json": (
        "EventGrid",
        PRICING_WS,
        dt.datetime(2026, 2, 3, 8, 14, 21, 662041, tzinfo=dt.UTC),
        SDK_MODEL_REGISTERED,
    ),
    "sdk_eventgrid_model_deployed.json": (
        "EventGrid",
        PRICING_WS,
        dt.datetime(2026, 2, 5, 11, 47, 39, 209331, tzinfo=dt.UTC),
        SDK_MODEL_DEPLOYED,
    ),
    "sdk_eventgrid_run_completed.json": (
        "EventGrid",
        PRICING_WS,
        dt.datetime(2026, 2, 4, 16, 2, 10, 551220, tzinfo=dt.UTC),
        SDK_RUN_COMPLETED,
    ),
    "sdk_eventgrid_run_status_changed.json": (
        "EventGrid",
        PRICING_WS,
        dt.datetime(2026, 2, 9, 6, 31, 52, 773019, tzinfo=dt.UTC),
        SDK_RUN_STATUS_CHANGED,
    ),
    "sdk_eventgrid_dataset_drift_detected.json": (
        "EventGrid",
        DRIFT_WS,
        dt.datetime(2026, 1, 28, 13, 55, 42, 318604, tzinfo=dt.UTC),
        SDK_DRIFT,
    ),
    "sdk_cloudevents_model_deployed.json": (
        "CloudEvents",
        PRICING_WS,
        dt.datetime(2026, 2, 5, 11, 47, 39, 209331, tzinfo=dt.UTC),
        SDK_MODEL_DEPLOYED,
    ),
    "sdk_cloudevents_run_completed.json": (
        "CloudEvents",
        PRICING_WS,
        dt.datetime(2026, 2, 4, 16, 2, 10, 551220, tzinfo=dt.UTC),
        SDK_RUN_COMPLETED,
    ),
    "sdk_cloudevents_run_status_changed.json": (
        "CloudEvents",
        PRICING_WS,
        dt.datetime(2026, 2, 9, 6, 31, 52, 773019, tzinfo=dt.UTC),
        SDK_RUN_STATUS_CHANGED,
    ),
    "sdk_cloudevents_dataset_drift_detected.json": (
        "CloudEvents",
        DRIFT_WS,
        dt.datetime(2026, 1, 28, 13, 55, 42, 318604, tzinfo=dt.UTC),
        SDK_DRIFT,
    ),
}
for _schema in ("eventgrid", "cloudevents"):
    _name = "EventGrid" if _schema == "eventgrid" else "CloudEvents"
    EXPECTED[f"docs_{_schema}_model_registered.json"] = (_name, DOCS_WS, DOCS_TIME, DOCS_MODEL_REGISTERED)
    EXPECTED[f"docs_{_schema}_model_deployed.json"] = (_name, DOCS_WS, DOCS_TIME, DOCS_MODEL_DEPLOYED)
    EXPECTED[f"docs_{_schema}_dataset_drift_detected.json"] = (_name, DOCS_WS, DOCS_TIME, DOCS_DRIFT)

# Shapes that are not a successful parse on purpose: each must be a permanent error naming the field.
UNPARSEABLE = {
    # The Go SDK's CloudEvents vector carries "source" twice (workspace id, then the model subject) and no
    # "subject"; a JSON reader keeps the last value, so the source is not a workspace id.
    "sdk_cloudevents_model_registered.json": "source",
}
# Checked by their own tests below.
SPECIAL = {
    "docs_eventgrid_run_completed.json",
    "docs_cloudevents_run_completed.json",
    "docs_eventgrid_run_status_changed.json",
    "docs_cloudevents_run_status_changed.json",
    "derived_eventgrid_run_status_changed_monitor_breach.json",
    "derived_eventgrid_run_status_changed_time_offset.json",
    "derived_cloudevents_run_status_changed_specVersion.json",
}


def _no_aml(workspace: object) -> Any:
    raise AssertionError("a payload that cannot be parsed must not reach Azure ML")


def _no_table(name: str) -> Any:
    raise AssertionError("a payload that cannot be parsed must not reach the tables")


def _through_worker(name: str) -> AmlEvent[Any]:
    """Parse the one event in ``name`` as the app does: the worker's own object, then ``parse``."""
    (body,) = load_events(PUBLISHED / name)
    return parse(envelope_from_function_event(to_function_event(body)))


def test_every_fixture_is_checked_and_listed_in_the_readme() -> None:
    files = {path.name for path in PUBLISHED.glob("*.json")}
    assert files == set(EXPECTED) | set(UNPARSEABLE) | SPECIAL
    readme = (PUBLISHED / "README.md").read_text(encoding="utf-8")
    for name in files:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_shape_parses_to_the_expected_values(name: str) -> None:
    schema, (subscription, group, workspace), time, data = EXPECTED[name]
    event = _through_worker(name)
    assert event.envelope.schema == schema
    assert (event.workspace.subscription_id, event.workspace.resource_group, event.workspace.workspace_name) == (
        subscription,
        group,
        workspace,
    )
    assert event.envelope.time == time
    assert event.data == data


@pytest.mark.parametrize("name", sorted(UNPARSEABLE))
def test_unparseable_published_shape_is_a_permanent_error_naming_the_field(name: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        _through_worker(name)
    assert caught.value.field == UNPARSEABLE[name]


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_docs_run_completed_with_null_run_type(schema: str) -> None:
    event = _through_worker(f"docs_{schema}_run_completed.json")
    assert type(event.data) is events.RunCompletedData
    assert event.data.run_type == ""
    assert (event.data.experiment_id, event.data.run_id) == (SDK_EXPERIMENT_ID, DOCS_RUN_ID)
    assert event.data.experiment_name == "automl-housing-prices"
    assert event.data.run_tags == {}
    assert event.data.run_properties["model_data_location"].endswith("/outputs/model.pkl")
    assert event.envelope.time == DOCS_TIME


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_docs_run_status_changed_keeps_lowercase_status(schema: str) -> None:
    event = _through_worker(f"docs_{schema}_run_status_changed.json")
    assert isinstance(event.data, events.RunStatusChangedData)
    assert event.data.run_status == "failed"
    assert event.data.run_type == ""
    assert event.data.run_id == DOCS_RUN_ID


def test_monitor_breach_shape_carries_the_tag_text_and_pipeline_parent() -> None:
    event = _through_worker("derived_eventgrid_run_status_changed_monitor_breach.json")
    assert isinstance(event.data, events.RunStatusChangedData)
    assert event.data.run_status == "Completed"
    assert event.data.run_type == "azureml.StepRun"
    breach = event.data.run_tags["azureml_modelmonitor_threshold_breached"]
    assert breach.startswith("The signal 'credit-fraud-monitor_data_drift' has failed due to one or more features")
    assert "violating metric thresholds" in breach
    assert event.data.run_properties["azureml.pipelinerunid"] == "credit-fraud-monitor-20261122031500"


def test_time_offset_in_data_times_is_kept_as_an_aware_instant() -> None:
    # The worker parses eventTime itself (see the xfail below); times inside ``data`` are ours to parse.
    (body,) = load_events(PUBLISHED / "sdk_eventgrid_dataset_drift_detected.json")
    body["data"]["startTime"] = "2026-01-19T17:00:00-07:00"
    event = parse(envelope(body))
    assert isinstance(event.data, events.DatasetDriftDetectedData)
    assert event.data.start_time == dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
    assert event.data.start_time is not None and event.data.start_time.utcoffset() == dt.timedelta(hours=-7)


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason="azure.functions 1.26's trigger converter only parses UTC times (Z, +00:00); a -07:00 eventTime "
    "fails inside the worker before the function runs, so app/intake/events.py cannot recover it",
)
def test_time_offset_through_the_worker_object() -> None:
    event = _through_worker("derived_eventgrid_run_status_changed_time_offset.json")
    assert event.envelope.time == dt.datetime(2026, 2, 9, 6, 31, 52, 773019, tzinfo=dt.UTC)


# Unparseable shapes: the CloudEvents attribute spelled ``specVersion`` cannot be parsed (the worker drops ``type`` and
# ``source``), so it is a permanent error naming the attribute and the fix.
SPEC_VERSION = "derived_cloudevents_run_status_changed_specVersion.json"


def test_cloud_event_with_spec_version_spelled_in_camel_case_is_acknowledged_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Delivered to on_aml_event as the host would: a payload no retry can fix is answered once (no redelivery
    # for 24 h), and the outcome names the attribute to fix rather than a confusing missing topic.
    (body,) = load_events(PUBLISHED / SPEC_VERSION)
    deps = Deps(
        settings=Settings(allowed_workspaces=frozenset({DOCS_WORKSPACE_ID.lower()})),
        notifier=Notifier([]),
        aml=_no_aml,
        table=_no_table,
    )
    outcome = process(envelope(body), deps, HANDLERS)
    assert outcome.kind is OutcomeKind.REJECTED
    assert "eventType" in outcome.text and "specversion" in outcome.text
    assert DOCS_RUN_ID in caplog.text  # the whole event is logged, ready to replay once fixed


def test_cloud_event_with_spec_version_spelled_in_camel_case_names_the_attribute_through_the_worker() -> None:
    # The worker's converter only recognises a CloudEvent by the key "specversion"; anything else becomes an
    # EventGridEvent without type or topic, so the error must tell the operator which attribute to fix.
    with pytest.raises(EventValidationError) as caught:
        _through_worker(SPEC_VERSION)
    assert caught.value.field == "eventType"
    assert "specversion" in str(caught.value)
