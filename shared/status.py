"""``GET /api/rollouts``: the ledger as JSON, newest first, filtered by endpoint, model and state."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.rollout.factories import ledger_of
from shared.rollout.ledger import filter_rollouts
from shared.rollout.model import State

if TYPE_CHECKING:
    from shared.deps import Deps

FILTERS = ("endpoint", "model", "state")


def rollout_status(params: Mapping[str, str], deps: Deps) -> tuple[int, str]:
    """(HTTP status, JSON body)."""
    unknown = sorted(set(params) - set(FILTERS) - {"code"})
    if unknown:
        return 400, json.dumps({"error": f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(FILTERS)}"})
    state = params.get("state", "")
    if state and state.lower() not in {s.value for s in State}:
        return 400, json.dumps({"error": f"state={state!r} is not one of {', '.join(s.value for s in State)}"})
    rollouts = filter_rollouts(
        ledger_of(deps).all(), endpoint=params.get("endpoint", ""), model=params.get("model", ""), state=state
    )
    return 200, json.dumps({"count": len(rollouts), "rollouts": [r.as_status() for r in rollouts]}, indent=2)
