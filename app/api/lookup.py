"""What every operator action does first and last: find the one rollout it names, answer a failed Azure ML read,
and, once its request is recorded, carry it out at once when the endpoint's lease is free."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from app.rollout.ledger.ledger import ledger_of
from app.rollout.ledger.rows import decode_rollout, partition_key
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.failing import classify

if TYPE_CHECKING:
    from app.ports import Deps
    from app.rollout.decide.model import Rollout
    from app.rollout.ledger.ledger import RolloutLedger

logger = logging.getLogger(__name__)


def one_rollout(ledger: RolloutLedger, endpoint: str, deployment: str) -> Rollout | tuple[int, str]:
    """The rollout of ``deployment`` on ``endpoint``, or the answer: 404 unknown, 409 in several workspaces."""
    found = ledger.recent.find(endpoint, deployment)
    if not found:
        return 404, error(f"no rollout of deployment {deployment!r} on endpoint {endpoint!r}")
    if len(found) > 1:
        workspaces = ", ".join(sorted(r.plan.workspace_id for r in found))
        return 409, error(f"{endpoint}/{deployment} exists in several workspaces ({workspaces}); act in AML")
    return found[0]


def unreadable(action: str, endpoint: str, deployment: str, err: Exception) -> tuple[int, str]:
    """503 for the one read of Azure ML an action needs: a retry of the request can fix it; nothing was recorded."""
    failure = classify(err)
    logger.warning("operator %s on %s/%s: Azure ML not read: %s", action, endpoint, deployment, failure.error)
    return 503, error(f"could not read endpoint {endpoint} from Azure ML ({failure.detail}); try again")


def advance_now(rollout: Rollout, deps: Deps, what: str) -> Rollout:
    """Carry ``what`` (recorded on ``rollout``'s row) out now when the endpoint's lease is free, else the next tick
    does; the row as it is afterwards (one point read: the rollout may have ended and left the active rows)."""
    plan = rollout.plan
    if not deps.settings.records_rollouts:
        return rollout
    try:
        passed = RolloutEngine(deps).advance(
            plan.workspace_id, plan.endpoint, time.monotonic() + deps.settings.event_budget_seconds
        )
    except Exception as err:
        logger.warning(
            "%s on %s/%s recorded; the next tick carries it out: %s: %s",
            what,
            plan.endpoint,
            plan.deployment,
            type(err).__name__,
            err,
        )
        return rollout
    lines = passed.lines()
    logger.info("%s on %s/%s: %s", what, plan.endpoint, plan.deployment, "; ".join(lines) or "nothing to do")
    row = ledger_of(deps).store.get(partition_key(plan.workspace_id, plan.endpoint), plan.deployment)
    return decode_rollout(row) if row is not None else rollout


def error(message: str) -> str:
    return json.dumps({"error": message})
