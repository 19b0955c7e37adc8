"""Human durations (``90s``, ``10m``, ``1h``, ``1h30m``) as the tags and settings write them (pure)."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+)([smh])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
RULE = "a duration such as 90s, 10m, 1h or 1h30m (whole numbers of s, m and h, largest unit first)"


def parse_duration(text: str) -> dt.timedelta:
    """``text`` as a timedelta; ``ValueError`` whose message states the rule. ``0`` alone means no time."""
    raw = text.strip().lower()
    if raw == "0":
        return dt.timedelta(0)
    parts = _PART.findall(raw)
    if not raw or "".join(f"{n}{u}" for n, u in parts) != raw:
        raise ValueError(f"{text!r} is not {RULE}")
    units = [u for _, u in parts]
    order = "hms"
    if len(set(units)) != len(units) or units != sorted(units, key=order.index):
        raise ValueError(f"{text!r} is not {RULE}")
    return dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def format_duration(value: dt.timedelta) -> str:
    """The shortest text ``parse_duration`` reads back as ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text
