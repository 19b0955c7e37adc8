"""The reason an operator gives with an action: the ``{"reason": "..."}`` body of the request (optional)."""

from __future__ import annotations

import json
from typing import Any

MAX_REASON = 500


def reason_of(body: bytes) -> str:
    """The body's reason (empty body: no reason); ``ValueError`` that says the fix."""
    if not body.strip():
        return ""
    try:
        data: Any = json.loads(body)
    except ValueError as err:
        raise ValueError(f'the body must be JSON like {{"reason": "..."}} or empty: {err}') from err
    if not isinstance(data, dict) or not isinstance(data.get("reason", ""), str):
        raise ValueError('the body must be a JSON object whose "reason" is a string, like {"reason": "..."}')
    return str(data.get("reason", "")).strip()[:MAX_REASON]
