"""``GET /api/rollouts``: the ledger as JSON, newest first, a page at a time, filtered by endpoint, model and state.

Paging design: every rollout has one entry in an index partition of the ledger's table whose keys are the
inverted creation time (``shared.rollout.ledger.RECENT_INDEX``; one partition for all rollouts, one per
endpoint name for ``?endpoint=``). Azure Tables returns a partition in key order, so a page is the next
``limit`` entries after the previous page's last one: newest first across every workspace and endpoint,
and the continuation is Azure's own position in that order. Creation times never change, so following the
continuations yields every rollout exactly once; one recorded meanwhile is newer than the pages already
read and may or may not appear. A page costs one index query and one point read per rollout on it, with
20 or 20,000 rollouts in the table alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.rollout.factories import ledger_of
from shared.rollout.model import State

if TYPE_CHECKING:
    from shared.deps import Deps

FILTERS = ("endpoint", "model", "state")
PAGING = ("limit", "continuation")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class _BadParameter(ValueError):
    pass


def rollout_status(params: Mapping[str, str], deps: Deps) -> tuple[int, str]:
    """(HTTP status, JSON body): ``{"count", "rollouts", "continuation"}``."""
    unknown = sorted(set(params) - set(FILTERS) - set(PAGING) - {"code"})
    if unknown:
        return _error(f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(FILTERS + PAGING)}")
    endpoint, model, state = (params.get(name, "").strip() for name in FILTERS)
    if state and state.lower() not in {s.value for s in State}:
        return _error(f"state={state!r} is not one of {', '.join(s.value for s in State)}")
    query = _fingerprint(endpoint, model, state)
    try:
        limit = _limit(params.get("limit", ""))
        resume = _decode_token(params.get("continuation", ""), query)
    except _BadParameter as err:
        return _error(str(err))
    rollouts, following = ledger_of(deps).recent(
        endpoint=endpoint, model=model, state=state, limit=limit, resume=resume
    )
    body = {
        "count": len(rollouts),
        "rollouts": [r.as_status() for r in rollouts],
        "continuation": _encode_token(following, query) if following else None,
    }
    return 200, json.dumps(body, indent=2)


def _error(message: str) -> tuple[int, str]:
    return 400, json.dumps({"error": message})


def _limit(raw: str) -> int:
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _BadParameter(f"limit={raw!r} is not a whole number from 1 to {MAX_LIMIT}; omit it for {DEFAULT_LIMIT}")
    return int(raw)


def _fingerprint(endpoint: str, model: str, state: str) -> str:
    """Binds a continuation to the filters it was issued for: another query's position means nothing here."""
    text = json.dumps([endpoint.lower(), model.lower(), state.lower()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _encode_token(position: Mapping[str, str], query: str) -> str:
    payload = {"v": 1, "q": query, "pk": position.get("PartitionKey"), "rk": position.get("RowKey")}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(raw: str, query: str) -> dict[str, str] | None:
    if not raw:
        return None
    fix = "pass the continuation of the previous answer unchanged, or omit it to start from the newest"
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise _BadParameter(f"continuation is not a token this API issued; {fix}") from None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != 1
        or not all(isinstance(payload.get(k), str) for k in ("q", "pk", "rk"))
    ):
        raise _BadParameter(f"continuation is not a token this API issued; {fix}")
    if payload["q"] != query:
        raise _BadParameter(
            "continuation belongs to a query with other endpoint/model/state filters; repeat that query's "
            "filters with it, or omit it to start from the newest"
        )
    return {"PartitionKey": payload["pk"], "RowKey": payload["rk"]}
