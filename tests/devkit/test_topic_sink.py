"""The local Event Grid topic receives what the real EventGridPublisherClient publishes."""

from __future__ import annotations

import os

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient
from azure.identity import DefaultAzureCredential

from devkit.stack import WORKSPACE_ID, DevStack

pytestmark = pytest.mark.integration


def _event(n: int) -> CloudEvent:
    return CloudEvent(source=WORKSPACE_ID, type="Devkit.Rollout.Changed", subject=f"endpoints/ep-{n}", data={"n": n})


def test_key_credential_publish_is_recorded(stack: DevStack) -> None:
    client = EventGridPublisherClient(
        os.environ["NOTIFY_TOPIC_ENDPOINT"], AzureKeyCredential(os.environ["NOTIFY_TOPIC_KEY"])
    )
    client.send([_event(1), _event(2)])

    events = stack.sink.events
    assert [(e["type"], e["subject"], e["data"]) for e in events] == [
        ("Devkit.Rollout.Changed", "endpoints/ep-1", {"n": 1}),
        ("Devkit.Rollout.Changed", "endpoints/ep-2", {"n": 2}),
    ]
    assert {r.auth for r in stack.sink.received} == {"key"}
    assert stack.sink.requests[0].content_type.startswith("application/cloudevents-batch+json")


def test_managed_identity_publish_is_recorded(stack: DevStack) -> None:
    EventGridPublisherClient(os.environ["NOTIFY_TOPIC_ENDPOINT"], DefaultAzureCredential()).send(_event(3))

    [received] = stack.sink.received
    assert received.auth == "bearer" and received.event["source"] == WORKSPACE_ID
    assert [t.resource for t in stack.identity.requests] == ["https://eventgrid.azure.net"]  # type: ignore[union-attr]


def test_wrong_key_is_rejected(stack: DevStack) -> None:
    client = EventGridPublisherClient(os.environ["NOTIFY_TOPIC_ENDPOINT"], AzureKeyCredential("wrong-key"))
    with pytest.raises(ClientAuthenticationError):
        client.send(_event(4))
    assert stack.sink.events == []
    assert [r.status for r in stack.sink.requests] == [401]


def test_injected_5xx_is_retried_by_the_sdk(stack: DevStack) -> None:
    stack.sink.fail_next(1, 503)
    client = EventGridPublisherClient(
        os.environ["NOTIFY_TOPIC_ENDPOINT"], AzureKeyCredential(os.environ["NOTIFY_TOPIC_KEY"])
    )
    client.send(_event(5))

    assert [r.status for r in stack.sink.requests] == [503, 200]
    assert [e["data"] for e in stack.sink.wait_for(1)] == [{"n": 5}]
