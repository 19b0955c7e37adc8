"""Time in one convention: timezone-aware UTC datetimes."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator

_source: Callable[[], dt.datetime] | None = None
#: Seconds of ``utc_now`` per wall-clock second: 1, except while following a time-lapsed clock.
_rate = 1.0


def utc_now() -> dt.datetime:
    """Now, aware, in UTC: the default ``Deps.clock`` (the dev kit's emulated clock while ``following`` it)."""
    return _source() if _source is not None else dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def following(source: Callable[[], dt.datetime], rate: float = 1.0) -> Iterator[None]:
    """Make ``utc_now`` read ``source`` (the dev kit's emulated clock, so a 10-minute bake takes milliseconds).

    ``rate``: how many of its seconds pass per wall-clock second, when it runs at a steady pace (``make bench``'s
    time lapse); what waits on the wall clock (a queue message's visibility) is scaled by it."""
    if rate <= 0:
        raise ValueError(f"rate={rate}: a clock that follows another runs forward")
    global _source, _rate
    (previous, previous_rate), _source, _rate = (_source, _rate), source, rate
    try:
        yield
    finally:
        _source, _rate = previous, previous_rate


def wall_seconds(seconds: float) -> float:
    """How long ``seconds`` of ``utc_now``'s time take on the wall clock: the same, except under a time lapse."""
    return seconds / _rate


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` made aware: a naive datetime (as a table row may hold one) is taken to be UTC already."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
