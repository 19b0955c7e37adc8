"""Operator approvals: ``POST /api/rollouts/{endpoint}/{deployment}/approve`` and ``.../reject``, on the route of the
other operator actions (``app/api/controls.py`` hands them here).

The decision is recorded on the rollout's row, as a request the engine carries out (``progress.requested``), with who
decided (the caller App Service authentication validated, else "function key": ``app/api/caller.py``, as for every
operator action), when and why in its history. Both obey the operator API's governance (``app/api/governance.py``:
the workspace allowlist, endpoint ownership; both lead to Azure ML writes). The engine is run at once when the
endpoint's lease is free. Answers: 202 with the rollout (``effect`` ``none`` for the same decision again), 403
refused by the governance, 404 unknown rollout, 409 when it does not await approval or was decided the other way,
503 when Azure ML cannot be read for the governance check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from app.api.caller import caller_of
from app.api.governance import EndpointLook, refusal
from app.api.lookup import advance_now, one_rollout, unreadable
from app.api.reason import reason_of
from app.rollout.decide.approval import Decided, decide_approval
from app.rollout.decide.effects import Notice, Notify
from app.rollout.decide.operator import MAX_HISTORY
from app.rollout.ledger.ledger import StaleRollout, ledger_of
from app.rollout.run.records import Recorder

if TYPE_CHECKING:
    from app.ports import Deps
    from app.rollout.decide.model import Rollout

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3


def approval_action(
    endpoint: str, deployment: str, action: str, body: bytes, headers: Mapping[str, str], deps: Deps
) -> tuple[int, str]:
    """(HTTP status, JSON body) of an approve or reject."""
    try:
        reason = reason_of(body)
    except ValueError as err:
        return 400, json.dumps({"error": str(err)})
    caller, ledger = caller_of(headers, easy_auth=deps.settings.easy_auth_enabled), ledger_of(deps)
    for _ in range(SAVE_ATTEMPTS):
        rollout = one_rollout(ledger, endpoint, deployment)
        if isinstance(rollout, tuple):
            return rollout
        try:
            refused = refusal(rollout, action, deps, EndpointLook(rollout, deps))
        except Exception as err:
            return unreadable(action, endpoint, deployment, err)
        if refused:
            logger.warning("operator %s on %s/%s by %s refused: %s", action, endpoint, deployment, caller, refused)
            return 403, json.dumps({"error": refused, "rollout": rollout.as_status()}, indent=2)
        progress = rollout.progress
        decision = decide_approval(action, rollout.state.value, progress.requested, progress.history)
        if not isinstance(decision, Decided):
            logger.info("operator %s on %s/%s refused: %s", action, endpoint, deployment, decision.reason)
            return 409, json.dumps({"error": decision.reason, "rollout": rollout.as_status()}, indent=2)
        if not decision.changed:
            return _answer(action, "none", decision.note, rollout)
        try:
            saved = _record(rollout, action, decision, reason, caller, deps)
        except StaleRollout:
            continue  # the rollout moved on meanwhile: decide again on the fresh row
        logger.info("operator %s on %s/%s by %s: %s", action, endpoint, deployment, caller, reason or "-")
        return _answer(action, f"request_{action}", decision.note, advance_now(saved, deps, f"operator {action}"))
    return 409, json.dumps({"error": "the rollout kept changing while the decision was recorded; try again"})


def _record(rollout: Rollout, action: str, decision: Decided, reason: str, caller: str, deps: Deps) -> Rollout:
    """Save the request and its history entry (who, when, why), and notify it."""
    now = deps.clock()
    entry = {"at": now.isoformat(), "action": action, "reason": reason, "caller": caller, "effect": f"request_{action}"}
    progress = replace(
        rollout.progress,
        # A promote asked before the approval is kept: it follows the approval (the decision is in the history).
        requested=rollout.progress.requested if rollout.progress.requested == "promote" else decision.requested,
        history=(*rollout.progress.history, entry)[-MAX_HISTORY:],
    )
    why = f"{decision.note} by {caller}{': ' + reason if reason else ''}"
    saved = ledger_of(deps).save(replace(rollout, progress=progress, reason=why), now)
    note = Notify(Notice.OPERATOR_ACTION, why, facts={"action": entry}, occurrence=f"{action}@{entry['at']}")
    Recorder(deps, ledger_of(deps)).notify(saved, note)
    return saved


def _answer(action: str, effect: str, note: str, rollout: Rollout) -> tuple[int, str]:
    body = {"action": action, "effect": effect, "note": note, "rollout": rollout.as_status()}
    return 202, json.dumps(body, indent=2)
