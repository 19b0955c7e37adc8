"""Typed Azure ML events, parsed once at the edge from either Event Grid or CloudEvents schema.

Schema reference: https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning
Payloads in the wild use PascalCase or camelCase keys and integer or string versions; a data
field that is missing is recovered from ``subject`` where the subject format carries it.
Handlers only ever see the frozen dataclasses below.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import azure.functions as func

from app.platform.errors import EventValidationError
from app.platform.workspace import WorkspaceRef

# The same strings as azure.eventgrid.SystemEventNames (a test checks it); spelled out here so that
# importing function_app does not import azure.eventgrid and azure.core.
MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"
MODEL_DEPLOYED = "Microsoft.MachineLearningServices.ModelDeployed"
RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
DATASET_DRIFT_DETECTED = "Microsoft.MachineLearningServices.DatasetDriftDetected"
AML_EVENT_TYPES = (MODEL_REGISTERED, MODEL_DEPLOYED, RUN_COMPLETED, RUN_STATUS_CHANGED, DATASET_DRIFT_DETECTED)
#: Our own event, published by a staging app after it promoted a model version into a registry (a CloudEvent whose
#: source is the staging workspace; Azure ML raises no event for registries: docs/research/registry-events.md).
MODEL_PROMOTED = "AmlEvents.Model.Promoted"


@dataclass(frozen=True)
class Envelope:
    """What every event carries, whatever its schema."""

    id: str
    event_type: str
    subject: str
    time: dt.datetime | None
    topic: str
    schema: str  # "EventGrid" or "CloudEvents"
    data: Mapping[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        """``id=… type=… subject=…``: every log line about an event carries it, so one grep follows it."""
        return f"id={self.id} type={self.event_type} subject={self.subject}"


@dataclass(frozen=True)
class ModelRegisteredData:
    """``ModelRegistered``: a model version was registered. Subject ``models/{name}:{version}``."""

    model_name: str
    model_version: str
    model_tags: Mapping[str, str]
    model_properties: Mapping[str, str]


@dataclass(frozen=True)
class ModelDeployedData:
    """``ModelDeployed``: a (v1) service was deployed. Subject ``endpoints/{serviceId}``."""

    service_name: str
    service_compute_type: str
    model_ids: tuple[str, ...]
    service_tags: Mapping[str, str]
    service_properties: Mapping[str, str]


@dataclass(frozen=True)
class RunCompletedData:
    """``RunCompleted``: a run finished. Subject ``experiments/{experimentId}/runs/{runId}``."""

    experiment_id: str
    experiment_name: str
    run_id: str
    run_type: str
    run_tags: Mapping[str, str]
    run_properties: Mapping[str, str]


@dataclass(frozen=True)
class RunStatusChangedData(RunCompletedData):
    """``RunStatusChanged``: a run's status changed (today raised only for ``Failed``)."""

    run_status: str = ""


@dataclass(frozen=True)
class DatasetDriftDetectedData:
    """``DatasetDriftDetected``: a drift monitor run found drift. Subject ``datadrift/{id}/run/{runId}``."""

    data_drift_id: str
    data_drift_name: str
    run_id: str
    base_dataset_id: str
    target_dataset_id: str
    drift_coefficient: float
    start_time: dt.datetime | None
    end_time: dt.datetime | None


@dataclass(frozen=True)
class ModelPromotedData:
    """``AmlEvents.Model.Promoted``: a staging app shared a proven version into a registry. Subject
    ``registries/{registry}/models/{name}/versions/{version}``; the registry is authoritative, this is a hint."""

    registry: str
    model_name: str
    model_version: str
    staging_rollout: str  # ``{endpoint}/{deployment}`` in the staging app, when the event says


D = TypeVar(
    "D",
    ModelRegisteredData,
    ModelDeployedData,
    RunCompletedData,
    RunStatusChangedData,
    DatasetDriftDetectedData,
    ModelPromotedData,
)


@dataclass(frozen=True)
class AmlEvent(Generic[D]):
    """A validated Azure ML event: envelope, source workspace and typed data."""

    envelope: Envelope
    workspace: WorkspaceRef
    data: D

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def label(self) -> str:
        return self.envelope.label


def envelope_from_function_event(event: func.EventGridEvent | func.CloudEvent) -> Envelope:
    """Read the envelope from what the Functions worker hands the trigger (either schema).

    ``func.CloudEvent`` exists only from azure-functions 1.25 (Azure/azure-functions-python-library#314), and on
    Python <= 3.12 the worker's own copy of the library wins unless ``PYTHON_ISOLATE_WORKER_DEPENDENCIES=1``: so
    its absence is tolerated, and every attribute is read with a default. A missing field is reported by
    ``parse``, naming it, inside the dispatcher's error policy.
    """
    if _is_cloud_event(event):
        schema = "CloudEvents"
        event_type, topic, time = (getattr(event, name, None) for name in ("type", "source", "time"))
    else:
        schema = "EventGrid"
        event_type, topic, time = (getattr(event, name, None) for name in ("event_type", "topic", "event_time"))
    get_json = getattr(event, "get_json", None)
    data = get_json() if callable(get_json) else None
    return Envelope(
        id=str(getattr(event, "id", None) or ""),
        event_type=str(event_type or ""),
        subject=str(getattr(event, "subject", None) or ""),
        time=time if isinstance(time, dt.datetime) else parse_time(time, "time"),
        topic=str(topic or ""),
        schema=schema,
        data=_object(data),
    )


def _is_cloud_event(event: object) -> bool:
    """Is ``event`` the worker's CloudEvent? By type when this azure-functions has it, else by its fields."""
    cloud_event = getattr(func, "CloudEvent", None)
    if isinstance(cloud_event, type):
        return isinstance(event, cloud_event)
    return hasattr(event, "source") and not hasattr(event, "event_type")


def _object(data: Any) -> Mapping[str, Any]:
    """``data`` if it is a JSON object (absent counts as empty); otherwise a marker ``parse`` reports."""
    if data is None:
        return {}
    return data if isinstance(data, Mapping) else {"__invalid__": data}


def require_event_type(envelope: Envelope) -> None:
    """Reject an envelope without an event type, naming the likely cause.

    The Functions worker recognises a CloudEvent only by the exact attribute ``specversion``
    (azure.functions 1.26, ``EventGridEventInConverter.decode``); CloudEvents 1.0 requires lowercase
    attribute names. A payload spelling it ``specVersion`` reaches the app as an Event Grid event with
    no ``eventType`` and no ``topic``: neither ``type`` nor ``source`` survives, so it cannot be recovered.
    """
    if envelope.event_type:
        return
    raise EventValidationError(
        "eventType",
        "missing. An Event Grid-schema event needs 'eventType'; a CloudEvents 1.0 event must spell its "
        "attribute 'specversion' in lowercase (attribute names are lowercase in CloudEvents 1.0, and a "
        "'specVersion' makes the Functions worker read the event as Event Grid schema, losing 'type' and "
        "'source'). Fix the publisher and replay the event.",
    )


def workspace_of(envelope: Envelope) -> WorkspaceRef:
    """The workspace named by the topic (Event Grid) or source (CloudEvents)."""
    field_name = "source" if envelope.schema == "CloudEvents" else "topic"
    try:
        return WorkspaceRef.from_arm_id(envelope.topic)
    except ValueError as err:
        raise EventValidationError(field_name, str(err)) from err


def parse(envelope: Envelope) -> AmlEvent[Any]:
    """Validate ``envelope`` into a typed ``AmlEvent``. Raises ``EventValidationError`` naming the field."""
    if not envelope.id:
        raise EventValidationError("id", "missing; every Event Grid event has an id")
    require_event_type(envelope)
    if "__invalid__" in envelope.data:
        raise EventValidationError("data", "must be a JSON object")
    parser = _PARSERS.get(envelope.event_type)
    if parser is None:
        known = ", ".join((*AML_EVENT_TYPES, MODEL_PROMOTED))
        raise EventValidationError(
            "eventType", f"{envelope.event_type!r} is not an event type this app takes ({known})"
        )
    workspace = workspace_of(envelope)
    return AmlEvent(envelope=envelope, workspace=workspace, data=parser(_Fields(envelope)))


class _Fields:
    """Case-insensitive access to ``data`` with subject fallback and field-naming errors."""

    def __init__(self, envelope: Envelope) -> None:
        self._data = {str(key).lower(): value for key, value in envelope.data.items()}
        self.subject = envelope.subject

    def get(self, name: str) -> Any:
        return self._data.get(name.lower())

    def text(self, name: str, fallback: str | None = None, *, required: bool = True) -> str:
        value = self.get(name)
        if value is None or value == "":
            value = fallback
        if value is None or value == "":
            if required:
                raise EventValidationError(f"data.{name}", "missing, and the subject does not carry it")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise EventValidationError(f"data.{name}", f"must be a string, got {type(value).__name__}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)

    def tags(self, name: str) -> dict[str, str]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise EventValidationError(f"data.{name}", f"must be an object of tags, got {type(value).__name__}")
        return {str(key): "" if item is None else str(item) for key, item in value.items()}

    def number(self, name: str) -> float:
        value = self.get(name)
        if isinstance(value, bool) or value is None:
            raise EventValidationError(f"data.{name}", "missing; expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EventValidationError(f"data.{name}", f"{value!r} is not a number") from None

    def time(self, name: str) -> dt.datetime | None:
        return parse_time(self.get(name), f"data.{name}")


_MODEL_SUBJECT = re.compile(r"^models/(?P<name>[^:/]+):(?P<version>[^/]+)$", re.IGNORECASE)
_ENDPOINT_SUBJECT = re.compile(r"^endpoints/(?P<service>[^/]+)$", re.IGNORECASE)
_RUN_SUBJECT = re.compile(r"^experiments/(?P<experiment>[^/]+)/runs/(?P<run>[^/]+)$", re.IGNORECASE)
_REGISTRY_SUBJECT = re.compile(
    r"^registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.IGNORECASE
)
_DRIFT_SUBJECT = re.compile(r"^datadrifts?/(?P<drift>[^/]+)/runs?/(?P<run>[^/]+)$", re.IGNORECASE)


def _subject_part(pattern: re.Pattern[str], subject: str, group: str) -> str | None:
    match = pattern.match(subject or "")
    return match[group] if match else None


def _model_registered(fields: _Fields) -> ModelRegisteredData:
    return ModelRegisteredData(
        model_name=fields.text("modelName", _subject_part(_MODEL_SUBJECT, fields.subject, "name")),
        model_version=fields.text("modelVersion", _subject_part(_MODEL_SUBJECT, fields.subject, "version")),
        model_tags=fields.tags("modelTags"),
        model_properties=fields.tags("modelProperties"),
    )


def _model_deployed(fields: _Fields) -> ModelDeployedData:
    model_ids = fields.text("modelIds", required=False)
    return ModelDeployedData(
        service_name=fields.text("serviceName", _subject_part(_ENDPOINT_SUBJECT, fields.subject, "service")),
        service_compute_type=fields.text("serviceComputeType", required=False),
        model_ids=tuple(item.strip() for item in model_ids.split(",") if item.strip()),
        service_tags=fields.tags("serviceTags"),
        service_properties=fields.tags("serviceProperties"),
    )


def _run_fields(fields: _Fields) -> dict[str, Any]:
    return {
        "experiment_id": fields.text("experimentId", _subject_part(_RUN_SUBJECT, fields.subject, "experiment")),
        "experiment_name": fields.text("experimentName", required=False),
        "run_id": fields.text("runId", _subject_part(_RUN_SUBJECT, fields.subject, "run")),
        "run_type": fields.text("runType", required=False),
        "run_tags": fields.tags("runTags"),
        "run_properties": fields.tags("runProperties"),
    }


def _run_completed(fields: _Fields) -> RunCompletedData:
    return RunCompletedData(**_run_fields(fields))


def _run_status_changed(fields: _Fields) -> RunStatusChangedData:
    return RunStatusChangedData(**_run_fields(fields), run_status=fields.text("runStatus"))


def _dataset_drift_detected(fields: _Fields) -> DatasetDriftDetectedData:
    coefficient = fields.number("driftCoefficient")
    if not 0.0 <= coefficient <= 1.0 or coefficient != coefficient:
        raise EventValidationError("data.driftCoefficient", f"{coefficient} is outside 0..1")
    return DatasetDriftDetectedData(
        data_drift_id=fields.text("dataDriftId", _subject_part(_DRIFT_SUBJECT, fields.subject, "drift")),
        data_drift_name=fields.text("dataDriftName", required=False),
        run_id=fields.text("runId", _subject_part(_DRIFT_SUBJECT, fields.subject, "run")),
        base_dataset_id=fields.text("baseDatasetId", required=False),
        target_dataset_id=fields.text("targetDatasetId", required=False),
        drift_coefficient=coefficient,
        start_time=fields.time("startTime"),
        end_time=fields.time("endTime"),
    )


def _model_promoted(fields: _Fields) -> ModelPromotedData:
    raw = fields.get("facts")
    facts: dict[str, Any] = {str(key).lower(): value for key, value in raw.items()} if isinstance(raw, Mapping) else {}
    evidence = facts["evidence"] if isinstance(facts.get("evidence"), Mapping) else {}

    def part(name: str, fact: str) -> str:
        value = _subject_part(_REGISTRY_SUBJECT, fields.subject, name) or facts.get(fact)
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            raise EventValidationError(
                f"data.facts.{fact}", "missing, and the subject is not registries/{r}/models/{name}/versions/{v}"
            )
        return str(value)

    return ModelPromotedData(
        registry=part("registry", "registry"),
        model_name=part("name", "model"),
        model_version=part("version", "version"),
        staging_rollout=str(evidence.get("rollout") or ""),
    )


_PARSERS = {
    MODEL_REGISTERED: _model_registered,
    MODEL_DEPLOYED: _model_deployed,
    RUN_COMPLETED: _run_completed,
    RUN_STATUS_CHANGED: _run_status_changed,
    DATASET_DRIFT_DETECTED: _dataset_drift_detected,
    MODEL_PROMOTED: _model_promoted,
}

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any, field_name: str) -> dt.datetime | None:
    """Parse an ISO 8601 time (``Z`` and .NET's 7-digit fractions included) as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        raise EventValidationError(field_name, f"{value!r} is not an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except ValueError:
        raise EventValidationError(field_name, f"{value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
