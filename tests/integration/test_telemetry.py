"""Traces and metrics of a rollout, end to end: the SDK's in-memory exporters behind the unchanged app."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.intake.outcome import OutcomeKind
from devkit.harness import OfflineApp, model_registered
from devkit.stack import WORKSPACE_ID
from tests.conftest import Telemetry
from tests.fakes import OTHER_WORKSPACE_ID

pytestmark = pytest.mark.integration


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _sum(telemetry: Telemetry, metric: str, **attributes: Any) -> float:
    point = telemetry.points(metric).get(tuple(sorted(attributes.items())))
    return 0 if point is None else point.value


def _ancestor_names(span: Any, by_id: dict[int, Any]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def test_a_rollout_that_goes_live_leaves_one_span_per_event_and_per_step_and_its_metrics(
    app: OfflineApp, telemetry: Telemetry
) -> None:
    app.stack.aml.seed_model("otel", 1, tags={"deploy": "true", "endpoint": "otel-live"})
    live_before = _sum(telemetry, "rollouts", outcome="live", endpoint="otel-live")
    ttl_before = telemetry.points("rollouts.time_to_live").get((("endpoint", "otel-live"),))
    event = model_registered("otel", 1)

    [delivery] = app.deliver(event)
    app.run_until_settled()
    assert app.rollout("otel-v1")["state"] == "live"

    # One span for the event, with what an operator searches by, and what was done.
    [event_span] = telemetry.finished("aml_event")
    assert _attrs(event_span) == {
        "aml.event.id": event["id"],
        "aml.event.type": "Microsoft.MachineLearningServices.ModelRegistered",
        "aml.event.subject": "models/otel:1",
        "aml.workspace": WORKSPACE_ID,
        "aml.event.outcome": delivery.outcome,
        "aml.event.outcome_kind": OutcomeKind.HANDLED.value,
    }

    # One span per step: the event path's first step is the event span's child; later ones are the ticks'.
    steps = telemetry.finished("rollout_step")
    transitions = [
        (_attrs(s)["aml.rollout.state_before"], _attrs(s)["aml.rollout.action"], _attrs(s)["aml.rollout.state_after"])
        for s in steps
        if _attrs(s)["aml.rollout.action"] != "Nothing"
    ]
    assert transitions[0] == ("pending", "CreateEndpoint", "deploying")
    assert transitions[-1] == ("deploying", "Finish", "live")
    assert ("deploying", "CreateDeployment", "deploying") in transitions
    assert all(_attrs(s)["aml.endpoint"] == "otel-live" and _attrs(s)["aml.deployment"] == "otel-v1" for s in steps)
    assert all(_attrs(s)["aml.model"] == "otel:1" for s in steps)
    first = steps[0]
    assert first.parent is not None and first.parent.span_id == event_span.context.span_id
    assert first.context.trace_id == event_span.context.trace_id
    ticks = {s.context.span_id: s for s in telemetry.finished("reconcile_tick")}
    later = [s for s in steps[1:]]
    assert later and all(s.parent is not None and s.parent.span_id in ticks for s in later)

    # The Azure SDK's ARM requests are spans under the step that sent them (the plugin azure-core documents).
    by_id = {s.context.span_id: s for s in telemetry.spans.get_finished_spans()}
    puts = [s for s in by_id.values() if s.name == "PUT" and "/onlineEndpoints/otel-live" in str(_attrs(s))]
    assert puts, sorted({s.name for s in by_id.values()})
    assert all("rollout_step" in _ancestor_names(s, by_id) for s in puts)

    # Metrics: one more live rollout, its time to live, the endpoint's waiting count back to 0, ARM requests.
    assert _sum(telemetry, "rollouts", outcome="live", endpoint="otel-live") == live_before + 1
    ttl = telemetry.points("rollouts.time_to_live")[(("endpoint", "otel-live"),)]
    assert ttl.count == (ttl_before.count if ttl_before else 0) + 1
    assert ttl.max >= 0
    assert _sum(telemetry, "rollouts.waiting", endpoint="otel-live") == 0
    assert (
        _sum(telemetry, "arm.requests", **{"http.request.method": "PUT", "http.response.status_code": 201})
        + _sum(telemetry, "arm.requests", **{"http.request.method": "PUT", "http.response.status_code": 200})
        >= 3
    )


def test_arm_retries_are_counted(app: OfflineApp, telemetry: Telemetry) -> None:
    app.stack.aml.seed_model("otelretry", 1, tags={"deploy": "true", "endpoint": "otel-retry"})
    labels = {"http.request.method": "PUT", "http.response.status_code": 429}
    retried_before = _sum(telemetry, "arm.retries", **{"http.request.method": "PUT", "http.response.status_code": 201})
    requests_429_before = _sum(telemetry, "arm.requests", **labels)
    app.stack.aml.inject_faults(methods=["PUT"])
    app.stack.aml.fail_next(2, 429, retry_after_s=0.01)

    app.deliver(model_registered("otelretry", 1))

    # Two PUTs answered 429, then azure-core's retry got through: each attempt is counted, the resends as retries.
    assert _sum(telemetry, "arm.requests", **labels) == requests_429_before + 2
    retried = _sum(telemetry, "arm.retries", **{"http.request.method": "PUT", "http.response.status_code": 201})
    retried_429 = _sum(telemetry, "arm.retries", **labels)
    assert retried + retried_429 >= retried_before + 2


@pytest.fixture
def otel_logs() -> Iterator[Any]:
    """The logging handler the Azure Monitor distro attaches, with an in-memory log exporter behind it."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    dispatch = logging.getLogger("app.intake.dispatch")
    dispatch.addHandler(handler)
    try:
        yield exporter
    finally:
        dispatch.removeHandler(handler)


def test_the_decision_log_line_carries_the_event_spans_trace_and_span_id(
    app: OfflineApp, telemetry: Telemetry, otel_logs: Any
) -> None:
    app.deliver(model_registered("elsewhere", 1, workspace_id=OTHER_WORKSPACE_ID))

    [event_span] = telemetry.finished("aml_event")
    records = [item.log_record for item in otel_logs.get_finished_logs()]
    decisions = [r for r in records if "not in AML_ALLOWED_WORKSPACES" in str(r.body)]
    assert decisions, [str(r.body) for r in records]
    for record in decisions:
        # In Application Insights: traces.operation_Id == dependencies.operation_Id, operation_ParentId = span id.
        assert record.trace_id == event_span.context.trace_id
        assert record.span_id == event_span.context.span_id


def test_an_event_that_will_be_redelivered_leaves_a_failed_span_with_the_error(
    app: OfflineApp, telemetry: Telemetry
) -> None:
    from opentelemetry.trace import StatusCode

    [delivery] = app.deliver(model_registered("not-seeded", 1, tags={"deploy": "true"}), max_attempts=1)
    assert not delivery.acknowledged

    [event_span] = telemetry.finished("aml_event")
    assert event_span.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in event_span.events if e.name == "exception"] == [
        "app.platform.errors.RetryableError"
    ]
