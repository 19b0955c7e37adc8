"""A notification is stamped with the app's clock, as the ledger's rows are: the dev kit's emulated time included."""

from __future__ import annotations

import datetime as dt

import pytest

from app.notify.notifier import Notification
from app.platform import clock
from tests.fakes import WORKSPACE

pytestmark = pytest.mark.fast

THEN = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


def _notification() -> Notification:
    return Notification(
        type="AmlEvents.Rollout.Live", subject="endpoints/e", summary="live", workspace=WORKSPACE, source_event_id="e1"
    )


def test_a_notification_made_while_the_app_follows_another_clock_carries_that_clock_s_time() -> None:
    with clock.following(lambda: THEN):
        stamped = _notification()
    assert stamped.time == THEN
    assert stamped.as_json()["time"] == THEN.isoformat()


def test_without_another_clock_a_notification_carries_the_time_it_was_made() -> None:
    before = dt.datetime.now(dt.UTC)
    stamped = _notification()
    assert before <= stamped.time <= dt.datetime.now(dt.UTC)
    assert stamped.time.tzinfo is not None
