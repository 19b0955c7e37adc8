"""What every operator action does first: find the one rollout it names, and answer a failed Azure ML read."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from app.rollout.run.failing import classify

if TYPE_CHECKING:
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


def error(message: str) -> str:
    return json.dumps({"error": message})
