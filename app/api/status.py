"""``GET /api/rollouts``: the ledger as JSON, newest first, a page at a time, filtered, next to the traffic AML shows.

Paging design: every rollout has one entry in an index partition of the ledger's table whose keys are the
inverted creation time (``app.rollout.ledger.indexes.RECENT_INDEX``; one partition for all rollouts, one per
endpoint name for ``?endpoint=``). Azure Tables returns a partition in key order, so a page is the next
``limit`` entries after the previous page's last one: newest first across every workspace and endpoint,
and the continuation is Azure's own position in that order. Creation times never change, so following the
continuations yields every rollout exactly once; one recorded meanwhile is newer than the pages already
read and may or may not appear. A page costs one index query, one point read per rollout on it and one
per endpoint on it (its traffic), with 20 or 20,000 rollouts in the table alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.platform.workspace import WorkspaceRef
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.promotion import promotion_status
from app.rollout.ledger.leases import EndpointLeases
from app.rollout.ledger.ledger import ledger_of

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)

FILTERS = ("endpoint", "model", "state")
PAGING = ("limit", "continuation")
OPTIONS = ("observe",)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: ``observe=true`` reads at most this many endpoints from AML per request (the rest show the cached split).
MAX_OBSERVED_ENDPOINTS = 20


class _BadParameter(ValueError):
    pass


def rollout_status(params: Mapping[str, str], deps: Deps) -> tuple[int, str]:
    """(HTTP status, JSON body): ``{"count", "rollouts", "endpoints", "continuation"}``, one page."""
    known = (*FILTERS, *PAGING, *OPTIONS)
    unknown = sorted(set(params) - set(known) - {"code"})
    if unknown:
        return _error(f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(known)}")
    observe = params.get("observe", "").lower()
    if observe not in ("", "true", "false"):
        return _error(f"observe={params['observe']!r} must be true or false")
    endpoint, model, state = (params.get(name, "").strip() for name in FILTERS)
    if state and state.lower() not in {s.value for s in State}:
        return _error(f"state={state!r} is not one of {', '.join(s.value for s in State)}")
    query = _fingerprint(endpoint, model, state)
    try:
        limit = _limit(params.get("limit", ""))
        resume = _decode_token(params.get("continuation", ""), query)
    except _BadParameter as err:
        return _error(str(err))
    ledger = ledger_of(deps)
    rollouts, following = ledger.recent.page(endpoint=endpoint, model=model, state=state, limit=limit, resume=resume)
    endpoints = endpoint_traffic(rollouts, ledger.leases, deps, observe=observe == "true")
    body = {
        "count": len(rollouts),
        "rollouts": with_observed(rollouts, endpoints),
        "endpoints": endpoints,
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


def endpoint_traffic(
    rollouts: Sequence[Rollout], leases: EndpointLeases, deps: Deps, *, observe: bool
) -> list[dict[str, Any]]:
    """Per endpoint of ``rollouts``: the traffic AML shows (read now with ``observe``, else as the last tick
    cached it), when it was observed, the split the app intends, and whether they drifted apart."""
    views: list[dict[str, Any]] = []
    keys = dict.fromkeys((r.plan.workspace_id, r.plan.endpoint) for r in rollouts)
    for index, (workspace_id, endpoint) in enumerate(keys):
        record = leases.read(workspace_id, endpoint)
        current = intent_rules.current(record.intents)
        entry: dict[str, Any] = {
            "workspace": workspace_id,
            "endpoint": endpoint,
            "observedTraffic": dict(record.observed_traffic) if record.observed_traffic is not None else None,
            "observedMirror": dict(record.observed_mirror) if record.observed_traffic is not None else None,
            "observedAt": record.observed_at.isoformat() if record.observed_at else None,
            "observedBy": "last tick" if record.observed_traffic is not None else None,
            "intendedTraffic": dict(current.traffic) if current else None,
            "intendedMirror": dict(current.mirror) if current else None,
            "drift": record.drift is not None,
            "driftSince": str(record.drift.get("seenAt") or record.drift.get("at")) if record.drift else None,
            # The splits the app decided, oldest first (the last INTENT_LIMIT): the endpoint's traffic over time.
            "trafficHistory": [
                {"at": i.at, "traffic": dict(i.traffic), "mirror": dict(i.mirror), "by": i.by, "status": i.status}
                for i in record.intents
            ],
        }
        if observe and index < MAX_OBSERVED_ENDPOINTS:
            _observe_now(entry, record.intents, workspace_id, endpoint, deps)
        views.append(entry)
    return views


def _observe_now(
    entry: dict[str, Any], intents: Sequence[intent_rules.Intent], workspace_id: str, endpoint: str, deps: Deps
) -> None:
    try:
        view = deps.aml(WorkspaceRef.from_arm_id(workspace_id)).observe(endpoint)
    except Exception as err:
        logger.warning("status: endpoint %s not observed: %s: %s", endpoint, type(err).__name__, err)
        entry["observeError"] = f"{type(err).__name__}: {err}"[:500]
        return
    now = deps.clock()
    traffic = dict(view.traffic) if view else {}
    mirror = dict(view.mirror_traffic) if view else {}
    entry.update(observedTraffic=traffic, observedMirror=mirror, observedAt=now.isoformat(), observedBy="aml")
    if view is not None and not view.busy_reason:
        entry["drift"] = intent_rules.judge(traffic, mirror, intents, now).kind == "drift"


def with_observed(rollouts: Sequence[Rollout], endpoints: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each rollout's status, with its deployment's observed share next to its recorded state."""
    by_key = {(e["workspace"], e["endpoint"]): e for e in endpoints}
    out = []
    for rollout in rollouts:
        status = rollout.as_status()
        status["promotion"] = promotion_status(rollout.plan)  # where a registry's version was proven, with links
        entry = by_key.get((rollout.plan.workspace_id, rollout.plan.endpoint))
        if entry and entry["observedTraffic"] is not None:
            me = rollout.plan.deployment.lower()
            traffic = {k.lower(): v for k, v in entry["observedTraffic"].items()}
            mirror = {k.lower(): v for k, v in (entry["observedMirror"] or {}).items()}
            status["observed"] = {
                "traffic": traffic.get(me, 0),
                "mirror": mirror.get(me, 0),
                "at": entry["observedAt"],
                "by": entry["observedBy"],
            }
        else:
            status["observed"] = None
        status["drift"] = bool(entry and entry["drift"])
        out.append(status)
    return out
