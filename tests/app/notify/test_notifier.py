"""Notifications: the webhook against a real local HTTP receiver, and the fan-out's failure policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.azure.sinks import WebhookSink
from app.notify.notifier import Notification, Notifier
from app.platform.errors import RetryableError
from tests.fakes import WORKSPACE
from tests.receiver import Receiver, running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running() as server:
        yield server


def _notification() -> Notification:
    return Notification(
        type="AmlEvents.Run.Failed",
        subject="experiments/e/runs/r",
        summary="Run r failed",
        workspace=WORKSPACE,
        source_event_id="evt-1",
        severity="error",
        facts={"runId": "r"},
        links={"run": "https://ml.azure.com/runs/r"},
    )


def test_webhook_posts_slack_and_teams_compatible_json(receiver: Receiver) -> None:
    Notifier([WebhookSink(receiver.url + "/hook")]).send(_notification())
    [body] = receiver.bodies
    assert body["text"].startswith("[AmlEvents.Run.Failed] Run r failed")
    assert body["type"] == "AmlEvents.Run.Failed"
    assert body["workspace"] == WORKSPACE.arm_id
    assert body["facts"] == {"runId": "r"} and body["links"] == {"run": "https://ml.azure.com/runs/r"}
    assert body["id"] == _notification().id  # deterministic, so duplicates can be dropped


def test_webhook_retries_a_blip_before_giving_up(receiver: Receiver) -> None:
    receiver.statuses = [503]
    Notifier([WebhookSink(receiver.url + "/hook")]).send(_notification())
    assert len(receiver.bodies) == 2


def test_webhook_5xx_that_persists_is_retryable(receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    with pytest.raises(RetryableError, match="webhook"):
        Notifier([WebhookSink(receiver.url + "/hook")]).send(_notification())


def test_unreachable_webhook_is_retryable() -> None:
    with pytest.raises(RetryableError):
        Notifier([WebhookSink("http://127.0.0.1:9/hook", timeout_seconds=1)]).send(_notification())


class _RecordingSink:
    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.published: list[Notification] = []

    def publish(self, notification: Notification) -> None:
        if self.error:
            raise self.error
        self.published.append(notification)


def test_a_failing_sink_does_not_stop_the_others() -> None:
    broken, healthy = _RecordingSink("broken", ConnectionError("down")), _RecordingSink("healthy")
    with pytest.raises(RetryableError, match="broken"):
        Notifier([broken, healthy]).send(_notification())
    assert len(healthy.published) == 1


def test_a_permanent_sink_error_is_logged_not_raised(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [400]
    Notifier([WebhookSink(receiver.url + "/hook")]).send(_notification())
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "HTTPError" in error and "400" in error


def test_unknown_notification_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown notification type"):
        Notification(type="AmlEvents.Nope", subject="s", summary="x", workspace=WORKSPACE, source_event_id="e")


def test_a_webhook_url_never_reaches_the_log(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    secret = "/services/T0001/B0002/s3cr3t-t0k3n"
    receiver.statuses = [400]
    Notifier([WebhookSink(receiver.url + "/hook" + secret)]).send(_notification())
    with pytest.raises(RetryableError):
        Notifier([WebhookSink("http://127.0.0.1:9" + secret, timeout_seconds=1)]).send(_notification())
    # Both failures are logged (the permanent one as an error, the retryable one as a warning), neither with the URL.
    assert {r.levelno for r in caplog.records if r.name == "app.notify.notifier"} >= {logging.ERROR, logging.WARNING}
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_webhook_is_not_followed_and_fails_loudly(
    receiver: Receiver, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [status]
    with caplog.at_level(logging.ERROR):
        Notifier([WebhookSink(receiver.url + "/hook")]).send(_notification())  # permanent: logged, not raised
    assert [(r.method, r.path) for r in receiver.received] == [("POST", "/hook")]  # no GET to /moved
    assert any("WebhookRedirected" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
