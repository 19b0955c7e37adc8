"""Operator controls: ``POST /api/rollouts/{endpoint}/{deployment}/{action}`` (promote, rollback, abort, retry,
pause, resume) recorded on the rollout's row and carried out at once when the endpoint's lease is free; approve and
reject are ``app/api/approvals.py``'s."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app.api.approvals import approval_action
from app.api.caller import caller_of
from app.api.governance import EndpointLook, refusal
from app.api.lookup import advance_now, error, one_rollout, unreadable
from app.api.reason import reason_of
from app.rollout.decide.approval import APPROVAL_ACTIONS
from app.rollout.decide.model import Rollout
from app.rollout.decide.operator import ACTIONS, Applied, Control, Effect, apply_action, operated
from app.rollout.decide.rollback import rollback_blocker
from app.rollout.ledger.ledger import StaleRollout, ledger_of
from app.rollout.run.records import Recorder

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)

MAX_REASON = 500
SAVE_ATTEMPTS = 3
#: Actions that leave work for the engine: it is run at once for them when the endpoint's lease is free.
ENGINE_EFFECTS = (Effect.REQUEST_PROMOTE, Effect.REQUEST_ROLLBACK, Effect.RESTART, Effect.RESUME)


def operator_action(
    endpoint: str, deployment: str, action: str, body: bytes, headers: Mapping[str, str], deps: Deps
) -> tuple[int, str]:
    """(HTTP status, JSON body): 202 with the rollout's status, 400 bad request, 403 refused by the app's governance
    (the workspace allowlist, endpoint ownership), 404 unknown, 409 not applicable, 503 when Azure ML could not be
    read for it."""
    action = action.lower()
    if action in APPROVAL_ACTIONS:
        return approval_action(endpoint, deployment, action, body, headers, deps)
    if action not in ACTIONS:
        return 400, error(f"action {action!r} is not one of {', '.join((*ACTIONS, *APPROVAL_ACTIONS))}")
    try:
        reason = reason_of(body)
    except ValueError as err:
        return 400, error(str(err))
    caller = caller_of(headers, easy_auth=deps.settings.easy_auth_enabled)
    ledger = ledger_of(deps)
    for attempt in range(SAVE_ATTEMPTS):
        rollout = one_rollout(ledger, endpoint, deployment)
        if isinstance(rollout, tuple):
            return rollout
        look = EndpointLook(rollout, deps)
        try:
            refused = refusal(rollout, action, deps, look)
            blocked = "" if refused else _rollback_blocked(rollout, action, look, deps)
        except Exception as err:
            return unreadable(action, endpoint, deployment, err)
        if refused:
            logger.warning("operator %s on %s/%s by %s refused: %s", action, endpoint, deployment, caller, refused)
            return 403, json.dumps({"error": refused, "rollout": rollout.as_status()}, indent=2)
        control = Control(
            state=rollout.state.value,
            paused=rollout.progress.paused,
            requested=rollout.progress.requested or None,
            rollback_blocked=blocked,
        )
        decision = apply_action(action, control)
        if not isinstance(decision, Applied):
            logger.info("operator %s on %s/%s refused: %s", action, endpoint, deployment, decision.reason)
            return 409, json.dumps({"error": decision.reason, "rollout": rollout.as_status()}, indent=2)
        try:
            saved = _record(rollout, action, decision, reason, caller, deps)
        except StaleRollout:
            if attempt + 1 == SAVE_ATTEMPTS:
                return 409, error("the rollout kept changing while the action was recorded; try again")
            continue
        break
    else:  # pragma: no cover - the loop returns or breaks
        raise AssertionError("unreachable")
    assert isinstance(decision, Applied)
    logger.info(
        "operator %s on %s/%s by %s: %s (%s)", action, endpoint, deployment, caller, decision.note, reason or "-"
    )
    if decision.effect in ENGINE_EFFECTS:
        saved = advance_now(saved, deps, f"operator {action}")
    return 202, json.dumps(
        {"action": action, "effect": decision.effect.value, "note": decision.note, "rollout": saved.as_status()},
        indent=2,
    )


def _record(rollout: Rollout, action: str, decision: Applied, reason: str, caller: str, deps: Deps) -> Rollout:
    """Save the action's effect and its history entry, through the rollout's transition table; notify it."""
    now = deps.clock()
    entry = {
        "at": now.isoformat(),
        "action": action,
        "reason": reason[:MAX_REASON],
        "caller": caller,
        "effect": decision.effect.value,
    }
    why = f"{decision.note} (by {caller}{': ' + reason if reason else ''})"
    return Recorder(deps, ledger_of(deps)).keep(rollout, operated(rollout, decision, entry, why, now), now)


def _rollback_blocked(rollout: Rollout, action: str, look: EndpointLook, deps: Deps) -> str:
    """For a rollback after the rollout ended: why it cannot be carried out, or "" (one read of the endpoint)."""
    if action != "rollback" or not rollout.state.terminal:
        return ""
    plan = rollout.plan
    view = look()
    shown = [d.name for d in view.deployments] if view else []
    siblings = ledger_of(deps).deployment_rollouts(plan.workspace_id, plan.endpoint, shown)
    return rollback_blocker(rollout, view, siblings)
