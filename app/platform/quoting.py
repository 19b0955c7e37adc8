"""How a value from outside (a tag, a name in an event) appears in a log line or a notification: quoted, inert."""

from __future__ import annotations

#: Slack's control characters (its docs: escape &, < and > in text): ``<!channel>`` or ``<https://x|click>`` in a tag
#: would otherwise ping a channel or plant a link. Written as Python escapes, so a log line reads the same.
_MARKUP = str.maketrans({"<": "\\x3c", ">": "\\x3e", "&": "\\x26"})
MAX_SHOWN = 120


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` in quotes on one line: newlines and control characters escaped (``repr``), Slack markup made inert,
    cut at ``limit`` characters. Every tag value that reaches a log or a notification goes through here."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text).translate(_MARKUP)
