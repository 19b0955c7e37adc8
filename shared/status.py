"""``GET /api/rollouts``: the ledger as JSON, newest first, filtered, next to the traffic AML shows."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.rollout import intents as intent_rules
from shared.rollout.factories import ledger_of
from shared.rollout.ledger import RolloutLedger, filter_rollouts
from shared.rollout.model import Rollout, State
from shared.workspace import WorkspaceRef

if TYPE_CHECKING:
    from shared.deps import Deps

logger = logging.getLogger(__name__)

FILTERS = ("endpoint", "model", "state")
OPTIONS = ("observe",)
#: ``observe=true`` reads at most this many endpoints from AML per request (the rest show the cached split).
MAX_OBSERVED_ENDPOINTS = 20


def rollout_status(params: Mapping[str, str], deps: Deps) -> tuple[int, str]:
    """(HTTP status, JSON body)."""
    unknown = sorted(set(params) - set(FILTERS) - set(OPTIONS) - {"code"})
    if unknown:
        return 400, json.dumps(
            {"error": f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join((*FILTERS, *OPTIONS))}"}
        )
    observe = params.get("observe", "").lower()
    if observe not in ("", "true", "false"):
        return 400, json.dumps({"error": f"observe={params['observe']!r} must be true or false"})
    state = params.get("state", "")
    if state and state.lower() not in {s.value for s in State}:
        return 400, json.dumps({"error": f"state={state!r} is not one of {', '.join(s.value for s in State)}"})
    ledger = ledger_of(deps)
    rollouts = filter_rollouts(
        ledger.all(), endpoint=params.get("endpoint", ""), model=params.get("model", ""), state=state
    )
    endpoints = endpoint_traffic(rollouts, ledger, deps, observe=observe == "true")
    body = {"count": len(rollouts), "rollouts": with_observed(rollouts, endpoints), "endpoints": endpoints}
    return 200, json.dumps(body, indent=2)


def endpoint_traffic(
    rollouts: Sequence[Rollout], ledger: RolloutLedger, deps: Deps, *, observe: bool
) -> list[dict[str, Any]]:
    """Per endpoint of ``rollouts``: the traffic AML shows (read now with ``observe``, else as the last tick
    cached it), when it was observed, the split the app intends, and whether they drifted apart."""
    views: list[dict[str, Any]] = []
    keys = dict.fromkeys((r.plan.workspace_id, r.plan.endpoint) for r in rollouts)
    for index, (workspace_id, endpoint) in enumerate(keys):
        record = ledger.endpoint_record(workspace_id, endpoint)
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
