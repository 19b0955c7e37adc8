"""The intake of AmlEvents.Model.Promoted: parsed from the subject (or its facts), admitted only from
PROMOTION_SOURCES, whatever AML_ALLOWED_WORKSPACES says; Azure ML's own events are not admitted from there."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.handlers import HANDLERS
from app.intake.dispatch import process, receive
from app.intake.events import MODEL_PROMOTED, MODEL_REGISTERED, Envelope, ModelPromotedData, parse
from app.intake.outcome import OutcomeKind
from app.platform.errors import EventValidationError
from app.platform.workspace import WorkspaceRef
from devkit import runner
from tests.fakes import WORKSPACE, WORKSPACE_ID, ForbiddenFactory, make_deps, make_settings

pytestmark = pytest.mark.fast

STAGING_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-staging")
SUBJECT = "registries/reg-prod/models/credit/versions/7"


def _envelope(subject: str = SUBJECT, data: dict[str, Any] | None = None, *, topic: str = STAGING_ID) -> Envelope:
    return Envelope("evt-1", MODEL_PROMOTED, subject, None, topic, "CloudEvents", data or {})


def test_the_registry_model_and_version_come_from_the_subject() -> None:
    event = parse(_envelope(data={"facts": {"evidence": {"rollout": "credit/credit-v7"}}}))

    assert event.data == ModelPromotedData("reg-prod", "credit", "7", "credit/credit-v7")
    assert event.workspace == WorkspaceRef.from_arm_id(STAGING_ID)


def test_facts_stand_in_for_a_subject_of_another_shape() -> None:
    event = parse(_envelope("promoted", {"facts": {"Registry": "reg-prod", "Model": "credit", "Version": 7}}))
    assert (event.data.registry, event.data.model_name, event.data.model_version) == ("reg-prod", "credit", "7")


def test_a_missing_part_names_its_field() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse(_envelope("promoted", {"facts": {"registry": "reg-prod", "model": "credit"}}))
    assert caught.value.field == "data.facts.version"


def test_the_cloud_event_as_the_staging_app_publishes_it_reaches_the_handler_through_the_worker() -> None:
    body = {
        "specversion": "1.0",
        "id": "evt-9",
        "source": STAGING_ID,
        "subject": SUBJECT,
        "type": MODEL_PROMOTED,
        "time": "2026-12-07T10:00:00Z",
        "data": {"facts": {"registry": "reg-prod", "model": "credit", "version": "7"}},
    }
    deps = make_deps(settings=make_settings(promotion_sources=frozenset()))

    outcome = receive(runner.to_function_event(json.loads(json.dumps(body))), lambda: deps, HANDLERS)

    assert outcome.kind is OutcomeKind.IGNORED and "PROMOTION_SOURCES" in outcome.text  # parsed, then refused


def test_a_promotion_from_an_allowed_workspace_not_listed_as_a_source_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps = make_deps(settings=make_settings(promotion_sources=frozenset({WorkspaceRef.from_arm_id(STAGING_ID).key})))
    with caplog.at_level(logging.WARNING):
        outcome = process(_envelope(topic=WORKSPACE_ID), deps, HANDLERS)

    assert outcome.kind is OutcomeKind.IGNORED and "PROMOTION_SOURCES" in outcome.text
    assert isinstance(deps.aml, ForbiddenFactory) and deps.aml.calls == []


def test_a_promotion_source_is_not_an_allowed_workspace_for_azure_mls_events() -> None:
    settings = make_settings(promotion_sources=frozenset({WorkspaceRef.from_arm_id(STAGING_ID).key}))
    envelope = Envelope("evt-2", MODEL_REGISTERED, "models/credit:7", None, STAGING_ID, "EventGrid", {})

    outcome = process(envelope, make_deps(settings=settings), HANDLERS)

    assert outcome.kind is OutcomeKind.IGNORED and "AML_ALLOWED_WORKSPACES" in outcome.text
    assert WORKSPACE.key in settings.allowed_workspaces
