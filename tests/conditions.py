"""Waiting in tests without fixed sleeps: until a condition holds (bounded), or until no SDK poller is left."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: How often a condition is looked at: short, so a wait ends a moment after its condition holds.
POLL_S = 0.02


def wait_until(condition: Callable[[], object], *, timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Return as soon as ``condition()`` is true; fail the test naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_S)


def pollers_left() -> list[str]:
    """The azure-core long-running-operation pollers still running in this process (``LROPoller`` threads).

    A ``begin_*`` call made with ``polling=False`` starts none; one made with a poller keeps a thread polling ARM
    until its operation ends, which is what a "no request afterwards" check looks for.
    """
    return [t.name for t in threading.enumerate() if t.name.startswith("LROPoller") and t.is_alive()]
