"""Time in one convention: timezone-aware UTC datetimes."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """Now, aware, in UTC: the default ``Deps.clock``."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` made aware: a naive datetime (as a table row may hold one) is taken to be UTC already."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
