"""The app's clock: UTC, and the dev kit's emulated clock while following it, at the pace it runs."""

from __future__ import annotations

import datetime as dt

import pytest

from app.platform import clock

pytestmark = pytest.mark.fast

THEN = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


def test_a_followed_clock_is_read_and_its_pace_scales_wall_clock_waits_until_it_is_left() -> None:
    assert clock.wall_seconds(30) == 30
    with clock.following(lambda: THEN, rate=20):
        assert clock.utc_now() == THEN
        assert clock.wall_seconds(30) == 1.5
        with clock.following(lambda: THEN + dt.timedelta(hours=1)):  # a clock at the wall's pace, inside it
            assert clock.wall_seconds(30) == 30
        assert clock.wall_seconds(30) == 1.5
    assert clock.wall_seconds(30) == 30
    assert clock.utc_now() != THEN


@pytest.mark.parametrize("rate", [0, -5])
def test_a_clock_that_does_not_run_forward_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"), clock.following(lambda: THEN, rate=rate):
        pass
    assert clock.wall_seconds(30) == 30
