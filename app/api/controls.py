"""Operator controls: ``POST /api/rollouts/{endpoint}/{deployment}/{action}`` (promote, rollback, abort, retry,
pause, resume) recorded on the rollout's row and carried out at once when the endpoint's lease is free; approve and
reject are ``app/api/approvals.py``'s."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.api.approvals import approval_action
from app.api.caller import caller_of
from app.api.governance import EndpointLook, refusal
from app.rollout.decide.approval import APPROVAL_ACTIONS
from app.rollout.decide.model import Progress, Rollout, State
from app.rollout.decide.stepping import ACTIONS, Applied, Control, Effect, apply_action
from app.rollout.ledger.ledger import StaleRollout, ledger_of
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.notifications import OPERATOR_ACTION, PAUSED, RESUMED
from app.rollout.run.records import Recorder

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)

MAX_REASON = 500
MAX_HISTORY = 50
SAVE_ATTEMPTS = 3
#: Actions that leave work for the engine: it is run at once for them when the endpoint's lease is free.
ENGINE_EFFECTS = (Effect.REQUEST_PROMOTE, Effect.REQUEST_ROLLBACK, Effect.RESTART, Effect.RESUME)


def operator_action(
    endpoint: str, deployment: str, action: str, body: bytes, headers: Mapping[str, str], deps: Deps
) -> tuple[int, str]:
    """(HTTP status, JSON body): 202 with the rollout's status, 400 bad request, 403 refused by the app's governance
    (the workspace allowlist, endpoint ownership), 404 unknown, 409 not applicable."""
    action = action.lower()
    if action in APPROVAL_ACTIONS:
        return approval_action(endpoint, deployment, action, body, headers, deps)
    if action not in ACTIONS:
        return 400, _error(f"action {action!r} is not one of {', '.join((*ACTIONS, *APPROVAL_ACTIONS))}")
    try:
        reason = _reason(body)
    except ValueError as err:
        return 400, _error(str(err))
    caller = caller_of(headers, easy_auth=deps.settings.easy_auth_enabled)
    ledger = ledger_of(deps)
    for attempt in range(SAVE_ATTEMPTS):
        found = ledger.recent.find(endpoint, deployment)
        if not found:
            return 404, _error(f"no rollout of deployment {deployment!r} on endpoint {endpoint!r}")
        if len(found) > 1:
            workspaces = ", ".join(sorted(r.plan.workspace_id for r in found))
            return 409, _error(f"{endpoint}/{deployment} exists in several workspaces ({workspaces}); act in AML")
        rollout = found[0]
        look = EndpointLook(rollout, deps)
        refused = refusal(rollout, action, deps, look)
        if refused:
            logger.warning("operator %s on %s/%s by %s refused: %s", action, endpoint, deployment, caller, refused)
            return 403, json.dumps({"error": refused, "rollout": rollout.as_status()}, indent=2)
        control = Control(
            state=rollout.state.value,
            paused=rollout.progress.paused,
            requested=rollout.progress.requested or None,
            replaced_exists=_replaced_exists(rollout, action, look),
        )
        decision = apply_action(action, control)
        if not isinstance(decision, Applied):
            logger.info("operator %s on %s/%s refused: %s", action, endpoint, deployment, decision.reason)
            return 409, json.dumps({"error": decision.reason, "rollout": rollout.as_status()}, indent=2)
        try:
            saved = _record(rollout, action, decision, reason, caller, deps)
        except StaleRollout:
            if attempt + 1 == SAVE_ATTEMPTS:
                return 409, _error("the rollout kept changing while the action was recorded; try again")
            continue
        break
    else:  # pragma: no cover - the loop returns or breaks
        raise AssertionError("unreachable")
    assert isinstance(decision, Applied)
    logger.info(
        "operator %s on %s/%s by %s: %s (%s)", action, endpoint, deployment, caller, decision.note, reason or "-"
    )
    if decision.effect in ENGINE_EFFECTS and deps.settings.records_rollouts:
        saved = _advance_now(saved, deps)
    return 202, json.dumps(
        {"action": action, "effect": decision.effect.value, "note": decision.note, "rollout": saved.as_status()},
        indent=2,
    )


def _record(rollout: Rollout, action: str, decision: Applied, reason: str, caller: str, deps: Deps) -> Rollout:
    """Save the action's effect and its history entry; notify when it changed something."""
    now = deps.clock()
    entry = {
        "at": now.isoformat(),
        "action": action,
        "reason": reason[:MAX_REASON],
        "caller": caller,
        "effect": decision.effect.value,
    }
    progress = replace(
        rollout.progress,
        paused=decision.control.paused,
        requested=decision.control.requested or "",
        history=(*rollout.progress.history, entry)[-MAX_HISTORY:],
    )
    # The engine's transitions (and their notifications) are reused for abort and retry.
    effect, recorder = decision.effect, Recorder(deps, ledger_of(deps))
    why = f"{decision.note} (by {caller}{': ' + reason if reason else ''})"
    if effect is Effect.RESUME and progress.bake_started_at is not None:
        progress = replace(progress, bake_started_at=now, extensions=0)  # bakes do not advance while paused
    if effect is Effect.STOP:
        return recorder.transition(replace(rollout, progress=progress), State.ABORTED, why, now)
    if effect is Effect.RESTART:
        fresh = Progress(history=progress.history)
        restarted = replace(
            rollout,
            progress=fresh,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            error_source="",
            denied_since=None,
            turn_taken_at=None,
            retries=(),
            logs="",
        )
        return recorder.transition(
            restarted, State.PENDING, f"retry: {why}", now, kind=OPERATOR_ACTION, facts={"action": entry}
        )
    saved = _save(rollout, progress, why if effect is not Effect.NONE else rollout.reason, deps)
    if effect is not Effect.NONE:
        kind = {Effect.PAUSE: PAUSED, Effect.RESUME: RESUMED}.get(effect, OPERATOR_ACTION)
        recorder.notify(
            saved, saved.state, why, kind=kind, facts={"action": entry}, occurrence=f"{action}@{entry['at']}"
        )
    return saved


def _save(rollout: Rollout, progress: Progress, reason: str, deps: Deps) -> Rollout:
    return ledger_of(deps).save(replace(rollout, progress=progress, reason=reason), deps.clock())


def _advance_now(rollout: Rollout, deps: Deps) -> Rollout:
    """Carry the action out now when the endpoint's lease is free; otherwise the next tick does."""
    plan = rollout.plan
    try:
        lines = (
            RolloutEngine(deps)
            .advance(plan.workspace_id, plan.endpoint, time.monotonic() + deps.settings.event_budget_seconds)
            .lines()
        )
    except Exception as err:
        logger.warning(
            "operator action on %s/%s recorded; the next tick carries it out: %s: %s",
            plan.endpoint,
            plan.deployment,
            type(err).__name__,
            err,
        )
        return rollout
    logger.info("operator action on %s/%s: %s", plan.endpoint, plan.deployment, "; ".join(lines) or "nothing to do")
    fresh = [
        r
        for r in ledger_of(deps).endpoint_rollouts(plan.workspace_id, plan.endpoint)
        if r.plan.deployment == plan.deployment
    ]
    return fresh[0] if fresh else rollout


def _replaced_exists(rollout: Rollout, action: str, look: EndpointLook) -> bool:
    """For a rollback after the rollout ended: do the deployments of the recorded split still exist? (One read.)"""
    if action != "rollback" or not rollout.state.terminal:
        return True
    before = rollout.progress.before_traffic or {}
    if not any(before.values()):
        return False
    view = look()
    return view is not None and all(view.deployment(name) is not None for name, pct in before.items() if pct)


def _reason(body: bytes) -> str:
    if not body.strip():
        return ""
    try:
        data: Any = json.loads(body)
    except ValueError as err:
        raise ValueError(f'the body must be JSON like {{"reason": "..."}} or empty: {err}') from err
    if not isinstance(data, dict) or not isinstance(data.get("reason", ""), str):
        raise ValueError('the body must be a JSON object whose "reason" is a string, like {"reason": "..."}')
    return str(data.get("reason", "")).strip()


def _error(message: str) -> str:
    return json.dumps({"error": message})
