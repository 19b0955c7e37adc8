"""The app's Event Grid topic sink against the dev kit's HTTPS topic, with the real EventGridPublisherClient."""

from __future__ import annotations

import logging

import pytest

from app.azure.credential import get_credential
from app.azure.sinks import EventGridTopicSink
from app.notify.notifier import Notification, Notifier
from app.platform.errors import RetryableError
from devkit.stack import DevStack
from tests.fakes import WORKSPACE

pytestmark = pytest.mark.integration


def _notification() -> Notification:
    return Notification(
        type="AmlEvents.Rollout.Live",
        subject="endpoints/credit/deployments/credit-v2",
        summary="credit:2 is live",
        workspace=WORKSPACE,
        source_event_id="evt-9",
        facts={"traffic": 100},
        links={"endpoint": "https://ml.azure.com/endpoints/realtime/credit"},
    )


def test_publishes_a_cloudevents_batch_with_the_topic_key(stack: DevStack) -> None:
    Notifier([EventGridTopicSink(stack.sink.endpoint, stack.sink.key, get_credential)]).send(_notification())
    [received] = stack.sink.received
    assert received.auth == "key"
    assert received.content_type.startswith("application/cloudevents-batch+json")
    event = received.event
    assert event["specversion"] == "1.0"
    assert event["type"] == "AmlEvents.Rollout.Live"
    assert event["source"] == WORKSPACE.arm_id
    assert event["subject"] == "endpoints/credit/deployments/credit-v2"
    assert event["id"] == _notification().id
    assert event["data"]["summary"] == "credit:2 is live"
    assert event["data"]["facts"] == {"traffic": 100}


def test_publishes_with_the_managed_identity_when_no_key_is_set(stack: DevStack) -> None:
    get_credential.cache_clear()
    try:
        Notifier([EventGridTopicSink(stack.sink.endpoint, "", get_credential)]).send(_notification())
    finally:
        get_credential.cache_clear()
    [received] = stack.sink.received
    assert received.auth == "bearer"


def test_a_wrong_key_is_reported_not_raised(stack: DevStack, caplog: pytest.LogCaptureFixture) -> None:
    Notifier([EventGridTopicSink(stack.sink.endpoint, "not-the-key", get_credential)]).send(_notification())
    assert stack.sink.received == []
    # Logged as an error naming the error and the status (never the key).
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "ClientAuthenticationError" in error and "401" in error and "not-the-key" not in caplog.text


def test_a_topic_that_keeps_failing_makes_the_event_redeliverable(stack: DevStack) -> None:
    stack.sink.fail_next(10, status=503)
    with pytest.raises(RetryableError, match="event-grid-topic"):
        Notifier([EventGridTopicSink(stack.sink.endpoint, stack.sink.key, get_credential)]).send(_notification())
    assert len(stack.sink.requests) > 1  # the SDK retried before giving up
