"""The outbox sends each notification once, also when a sink takes its whole retry budget and another tick runs."""

from __future__ import annotations

import pytest

from app.notify.notifier import Notification
from app.notify.outbox import IN_FLIGHT, OUTBOX_PARTITION, OutboxNotifier
from app.platform import budgets
from app.platform.errors import RetryableError
from tests.fakes import WORKSPACE, FakeClock, FakeTableStore

pytestmark = pytest.mark.fast


def _notification(subject: str = "endpoints/credit") -> Notification:
    return Notification(
        type="AmlEvents.Rollout.Live",
        subject=subject,
        summary="credit-v2 is live",
        workspace=WORKSPACE,
        source_event_id="evt-1",
    )


class SlowSink:
    """A sink that takes ``seconds`` (a webhook waiting out its timeouts and retries), during which ``meanwhile``
    runs: another instance's reconciler tick. It fails the first ``failures`` sends retryably."""

    name = "webhook"

    def __init__(self, clock: FakeClock, seconds: float, failures: int = 0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.failures = failures
        self.received: list[str] = []
        self.meanwhile: list[OutboxNotifier] = []

    def publish(self, notification: Notification) -> None:
        self.clock.advance(self.seconds)
        others, self.meanwhile = self.meanwhile, []  # one tick meanwhile, not one per send
        for other in others:
            other.flush()
        if self.failures:
            self.failures -= 1
            raise RetryableError("the webhook did not answer")
        self.received.append(notification.id)


def _pair(sink: SlowSink, clock: FakeClock) -> tuple[OutboxNotifier, OutboxNotifier, FakeTableStore]:
    table = FakeTableStore()
    first = OutboxNotifier([sink], lambda: table, clock)
    other = OutboxNotifier([sink], lambda: table, clock)  # a second instance, same table
    return first, other, table


def test_the_in_flight_window_exceeds_every_sinks_whole_retry_budget() -> None:
    # The first sender holds a notification while the topic and the webhook each use their whole budget, then
    # records the outcome in the table; only after that may another instance take it for a retry.
    sending = budgets.EVENT_GRID.longest_seconds + budgets.WEBHOOK.longest_seconds + budgets.TABLES.longest_seconds
    assert IN_FLIGHT.total_seconds() >= sending + budgets.LEASE_MARGIN_SECONDS
    assert IN_FLIGHT.total_seconds() == budgets.notification_in_flight_seconds()


def test_a_slow_first_send_is_not_sent_again_by_another_instances_tick() -> None:
    clock = FakeClock()
    sink = SlowSink(clock, budgets.WEBHOOK.longest_seconds)
    first, other, table = _pair(sink, clock)
    sink.meanwhile.append(other)

    first.send(_notification())

    assert sink.received == [_notification().id]
    assert table.partition(OUTBOX_PARTITION) == []


def test_a_slow_retry_is_not_sent_again_by_the_next_tick() -> None:
    clock = FakeClock()
    sink = SlowSink(clock, budgets.WEBHOOK.longest_seconds, failures=1)
    first, other, table = _pair(sink, clock)
    first.send(_notification())  # fails: kept for the tick, and free to be retried at once
    assert sink.received == [] and len(table.partition(OUTBOX_PARTITION)) == 1

    sink.meanwhile.append(other)  # while this tick's retry waits on the webhook, the next tick runs
    assert first.flush() == 1

    assert sink.received == [_notification().id]


def test_a_send_whose_sender_died_is_retried_once_the_window_has_passed() -> None:
    clock = FakeClock()
    table = FakeTableStore()

    class Crashing:
        name = "webhook"

        def publish(self, notification: Notification) -> None:
            raise KeyboardInterrupt  # the instance stops mid-send: nothing records the outcome

    with pytest.raises(KeyboardInterrupt):
        OutboxNotifier([Crashing()], lambda: table, clock).send(_notification())
    sink = SlowSink(clock, 0.0)
    retrier = OutboxNotifier([sink], lambda: table, clock)

    clock.advance(IN_FLIGHT.total_seconds() - 1)
    assert retrier.flush() == 0 and sink.received == []
    clock.advance(2)
    assert retrier.flush() == 1 and sink.received == [_notification().id]
