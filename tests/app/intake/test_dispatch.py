"""Dispatch and the single error policy: allowlist, unknown types, retryable vs permanent."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from app.handlers import HANDLERS
from app.intake import events
from app.intake.dispatch import process
from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import EventValidationError, PermanentError, RetryableError
from tests.envelopes import envelope
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, FakeNotifier, ForbiddenFactory, make_deps, make_settings

pytestmark = pytest.mark.fast


def _envelope(event_type: str = events.RUN_STATUS_CHANGED, topic: str = WORKSPACE_ID) -> Any:
    return envelope(
        {
            "id": "evt-1",
            "topic": topic,
            "eventType": event_type,
            "subject": "experiments/e/runs/r",
            "eventTime": "2026-11-22T10:00:00Z",
            "data": {
                "experimentId": "e",
                "runId": "r",
                "runStatus": "Failed",
                "modelName": "m",
                "modelVersion": "1",
                "driftCoefficient": 0.9,
                "serviceName": "s",
            },
        }
    )


def _raising(err: Exception) -> Any:
    def handler(event: Any, deps: Any) -> Outcome:
        raise err

    return handler


def test_the_table_has_one_handler_per_aml_event_type_and_one_for_promotions() -> None:
    assert set(HANDLERS) == {*events.AML_EVENT_TYPES, events.MODEL_PROMOTED}


def test_foreign_workspace_is_acknowledged_with_no_client_and_no_side_effect(caplog: pytest.LogCaptureFixture) -> None:
    notifier, aml, table = FakeNotifier(), ForbiddenFactory("aml"), ForbiddenFactory("table")
    deps = make_deps(notifier=notifier, aml=aml, table=table)
    with caplog.at_level(logging.WARNING):
        outcome = process(_envelope(topic=OTHER_WORKSPACE_ID), deps, HANDLERS)
    assert outcome.kind is OutcomeKind.IGNORED and "AML_ALLOWED_WORKSPACES" in outcome.text
    assert (notifier.sent, aml.calls, table.calls) == ([], [], [])
    assert "evt-1" in caplog.text and "AML_ALLOWED_WORKSPACES" in caplog.text  # the event, and the setting


@pytest.mark.parametrize("event_type", events.AML_EVENT_TYPES)
def test_empty_allowlist_honours_nothing(event_type: str, caplog: pytest.LogCaptureFixture) -> None:
    notifier, aml, table = FakeNotifier(), ForbiddenFactory("aml"), ForbiddenFactory("table")
    deps = make_deps(settings=make_settings(allowed_workspaces=frozenset()), notifier=notifier, aml=aml, table=table)
    with caplog.at_level(logging.ERROR):
        outcome = process(_envelope(event_type), deps, HANDLERS)
    assert outcome.kind is OutcomeKind.IGNORED and "AML_ALLOWED_WORKSPACES" in outcome.text
    assert (notifier.sent, aml.calls, table.calls) == ([], [], [])
    assert [r.levelno for r in caplog.records if "AML_ALLOWED_WORKSPACES" in r.getMessage()] == [logging.ERROR]


def test_unknown_type_is_logged_and_acknowledged() -> None:
    notifier = FakeNotifier()
    outcome = process(
        _envelope("Microsoft.MachineLearningServices.SomethingNew"), make_deps(notifier=notifier), HANDLERS
    )
    assert outcome.kind is OutcomeKind.IGNORED and "Microsoft.MachineLearningServices.SomethingNew" in outcome.text
    assert notifier.sent == []


def test_malformed_payload_is_acknowledged_with_the_field_and_the_event(caplog: pytest.LogCaptureFixture) -> None:
    malformed = envelope(
        {
            "id": "evt-bad",
            "topic": WORKSPACE_ID,
            "eventType": events.RUN_STATUS_CHANGED,
            "subject": "nonsense",
            "data": {},
        }
    )
    with caplog.at_level(logging.ERROR):
        outcome = process(malformed, make_deps(), HANDLERS)
    assert outcome.kind is OutcomeKind.REJECTED and "data.experimentId" in outcome.text
    assert (
        "evt-bad" in caplog.text and '"eventType":"Microsoft.MachineLearningServices.RunStatusChanged"' in caplog.text
    )


@pytest.mark.parametrize(
    "err",
    [
        RetryableError("sink down"),
        ServiceRequestError("connection refused"),
        HttpResponseError(message="busy", response=None),
        ConnectionError("reset"),
    ],
    ids=["retryable", "network", "http-409-busy", "socket"],
)
def test_retryable_failures_raise_so_event_grid_redelivers(err: Exception) -> None:
    if isinstance(err, HttpResponseError):
        err.status_code = 409
    with pytest.raises(type(err)):
        process(_envelope(), make_deps(), {events.RUN_STATUS_CHANGED: _raising(err)})


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_raise(status: int) -> None:
    err = HttpResponseError(message="x")
    err.status_code = status
    with pytest.raises(HttpResponseError):
        process(_envelope(), make_deps(), {events.RUN_STATUS_CHANGED: _raising(err)})


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (PermanentError("unsupported model type"), OutcomeKind.REJECTED),
        (EventValidationError("data.x", "bad"), OutcomeKind.REJECTED),
        (ResourceNotFoundError("model gone"), OutcomeKind.FAILED),
        (ValueError("a bug"), OutcomeKind.FAILED),
    ],
    ids=["permanent", "validation", "404", "bug"],
)
def test_permanent_failures_are_acknowledged(
    err: Exception, kind: OutcomeKind, caplog: pytest.LogCaptureFixture
) -> None:
    if isinstance(err, ResourceNotFoundError):
        err.status_code = 404
    with caplog.at_level(logging.ERROR):
        outcome = process(_envelope(), make_deps(), {events.RUN_STATUS_CHANGED: _raising(err)})
    assert outcome.kind is kind
    assert "evt-1" in caplog.text and "acknowledged" in caplog.text
