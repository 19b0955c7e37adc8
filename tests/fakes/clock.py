"""A clock that moves only when a test moves it: ``Deps.clock``, and the time the other fakes run on."""

from __future__ import annotations

import datetime as dt

START = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """Aware UTC time, frozen until ``advance``; calling it reads it, as ``Deps.clock`` is called."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start
        #: Every ``sleep`` asked of it, in seconds (each one moved the clock instead of waiting).
        self.slept: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> dt.datetime:
        """Move time forward (never back: what was recorded at a time must not end up in the future)."""
        step = dt.timedelta(seconds=seconds, minutes=minutes)
        if step < dt.timedelta(0):
            raise ValueError(f"the fake clock only moves forward, not by {step}")
        self.now += step
        return self.now

    def sleep(self, seconds: float) -> None:
        """A stand-in for ``time.sleep``: the time passes on this clock, none passes in the test."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    def timestamp(self) -> float:
        """Seconds since the epoch, as ``time.time`` gives them."""
        return self.now.timestamp()
