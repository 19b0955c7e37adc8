"""``AmlEvents.Rollout.AwaitingApproval``: a rollout waits for an operator, with its evidence so far, the staging
evidence beside it when its model was promoted from a registry, and the exact calls that approve or reject it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.notify.notifier import Notification
from app.rollout.decide.model import Rollout
from app.rollout.decide.promotion import gate_trail, promotion_status
from app.rollout.run.notifications import rollout_notification

AWAITING_APPROVAL = "AmlEvents.Rollout.AwaitingApproval"
#: Where the calls point when the app does not know its host name (``WEBSITE_HOSTNAME``, set by the platform).
UNKNOWN_HOST = "<function-app>.azurewebsites.net"


def decision_call(status_host: str, endpoint: str, deployment: str, action: str) -> str:
    """The exact call that approves or rejects the rollout (a function key of ``rollout_control`` in ``$KEY``)."""
    url = f"https://{status_host or UNKNOWN_HOST}/api/rollouts/{endpoint}/{deployment}/{action}"
    return f'curl -X POST -H "x-functions-key: $KEY" -d \'{{"reason": "..."}}\' "{url}"'


def awaiting_approval_notification(
    rollout: Rollout, status_host: str, requested_at: dt.datetime, expires_at: dt.datetime, superseded: str = ""
) -> Notification:
    """The notification of a rollout entering ``awaiting_approval`` (its deployment warm and smoke-tested, no traffic).

    ``superseded`` names the rollout this one replaced while that one was awaiting approval, if any.
    """
    plan = rollout.plan
    reason = f"awaits approval until {expires_at.isoformat()}: its deployment is warm and tested, no live traffic"
    if superseded:
        reason += f"; it supersedes {superseded}, which was awaiting approval"
    calls = {
        action: decision_call(status_host, plan.endpoint, plan.deployment, action) for action in ("approve", "reject")
    }
    facts: dict[str, Any] = {
        "requestedAt": requested_at.isoformat(),
        "expiresAt": expires_at.isoformat(),
        "evidence": {
            "smoke": rollout.progress.smoke,
            "gates": gate_trail(rollout.progress.gates, rollout.progress.gate),
        },
        "approve": calls["approve"],
        "reject": calls["reject"],
    }
    if superseded:
        facts["supersedes"] = superseded
    staging = promotion_status(plan)
    if staging is not None:
        facts["staging"] = staging  # the evidence the staging app recorded, beside production's own
    base = rollout_notification(
        rollout, rollout.state, reason, status_host=status_host, kind=AWAITING_APPROVAL, severity="warning", facts=facts
    )
    links = {**base.links, **(staging["links"] if staging else {})}
    return Notification(
        type=base.type,
        subject=base.subject,
        summary=base.summary,
        workspace=base.workspace,
        source_event_id=f"{base.source_event_id}#approval@{requested_at.isoformat()}",
        severity=base.severity,
        facts=base.facts,
        links=links,
        time=base.time,
    )
