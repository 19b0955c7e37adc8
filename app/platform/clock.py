"""Time in one convention: timezone-aware UTC datetimes."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator

_source: Callable[[], dt.datetime] | None = None


def utc_now() -> dt.datetime:
    """Now, aware, in UTC: the default ``Deps.clock`` (the dev kit's emulated clock while ``following`` it)."""
    return _source() if _source is not None else dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def following(source: Callable[[], dt.datetime]) -> Iterator[None]:
    """Make ``utc_now`` read ``source`` (the dev kit's emulated clock, so a 10-minute bake takes milliseconds)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` made aware: a naive datetime (as a table row may hold one) is taken to be UTC already."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
