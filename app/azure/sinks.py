"""Notification sinks: CloudEvents to an Event Grid custom topic, and JSON to a generic webhook (Slack, Teams)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.notify.notifier import Notification, Sink
from app.platform import budgets

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential
    from azure.eventgrid import EventGridPublisherClient


class EventGridTopicSink:
    """Publishes CloudEvents 1.0 to an Event Grid custom topic (managed identity, or a key if set)."""

    name = "event-grid-topic"

    def __init__(self, endpoint: str, key: str, credential: Callable[[], TokenCredential]) -> None:
        self._endpoint = endpoint
        self._key = key
        self._credential = credential
        self._client: EventGridPublisherClient | None = None

    def _get_client(self) -> EventGridPublisherClient:
        if self._client is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.core.credentials import AzureKeyCredential
            from azure.eventgrid import EventGridPublisherClient

            credential: Any = AzureKeyCredential(self._key) if self._key else self._credential()
            self._client = EventGridPublisherClient(
                self._endpoint,
                credential,
                retry_policy=budgets.bounded_retry_policy(budgets.EVENT_GRID),
                **budgets.EVENT_GRID.client_kwargs(),
            )
        return self._client

    def publish(self, notification: Notification) -> None:
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.messaging import CloudEvent

        event = CloudEvent(
            source=notification.workspace.arm_id,
            type=notification.type,
            subject=notification.subject,
            id=notification.id,
            time=notification.time,
            data={key: value for key, value in notification.as_json().items() if key != "type"},
        )
        self._get_client().send([event])


class WebhookRedirected(Exception):
    """The webhook answered a redirect: its URL is wrong (it moved). Not followed, and not retried."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"the webhook answered {status_code} (a redirect); set NOTIFY_WEBHOOK_URL to its new URL")
        self.status_code = status_code


class WebhookSink:
    """POSTs the notification's JSON (Slack/Teams-compatible ``text`` plus structured fields)."""

    name = "webhook"
    #: Quick retries smooth over blips without a full Event Grid redelivery. Done here rather than with
    #: urllib3's Retry, whose warnings print the URL's path, and a webhook URL is a secret.
    retry_delays: tuple[float, ...] = budgets.WEBHOOK_RETRY_DELAYS

    def __init__(self, url: str, timeout_seconds: float = budgets.WEBHOOK.read_timeout) -> None:
        self._url = url
        self._timeout = (budgets.WEBHOOK.connection_timeout, timeout_seconds)
        self._session: requests.Session | None = None

    def publish(self, notification: Notification) -> None:
        # SDK on first use, not at import: keeps cold start light.
        import requests

        if self._session is None:
            self._session = requests.Session()
        for delay in (*self.retry_delays, None):
            try:
                # Never follow a redirect: requests would turn a 301/302 into a GET that "succeeds" unsent.
                response = self._session.post(
                    self._url, json=notification.as_json(), timeout=self._timeout, allow_redirects=False
                )
                if 300 <= response.status_code < 400:
                    raise WebhookRedirected(response.status_code)
                if response.status_code not in (429, 500, 502, 503, 504) or delay is None:
                    response.raise_for_status()
                    return
            except (requests.ConnectionError, requests.Timeout):
                if delay is None:
                    raise
            time.sleep(delay)


def sinks_from_settings(
    topic_endpoint: str, topic_key: str, webhook_url: str, credential: Callable[[], TokenCredential]
) -> list[Sink]:
    """The sinks the settings ask for; none is fine (notifications are then only logged)."""
    sinks: list[Sink] = []
    if topic_endpoint:
        sinks.append(EventGridTopicSink(topic_endpoint, topic_key, credential))
    if webhook_url:
        sinks.append(WebhookSink(webhook_url))
    return sinks
