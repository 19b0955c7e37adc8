"""Envelopes for tests, built the way production builds them: through the Functions worker's own event objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.intake.events import Envelope, envelope_from_function_event
from devkit.runner import to_function_event


def envelope(body: Mapping[str, Any]) -> Envelope:
    """The envelope ``on_aml_event`` would read from ``body`` (one event, either schema, as Event Grid sends it)."""
    return envelope_from_function_event(to_function_event(body))
