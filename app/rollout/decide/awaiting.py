"""A rollout awaiting approval (pure): what an operator's decision, the deployment and the time mean for it.

It waits in ``awaiting_approval`` (``REQUIRE_APPROVAL``, or the tag ``approval=required``) once its smoke test passed
and before any traffic moved; it holds no write turn meanwhile. An operator's ``approve`` sends it back to queue for
the turn, and its first traffic step follows; ``reject`` ends it ``rejected`` (cleanup deletes its deployment unless
``KEEP_FAILED_DEPLOYMENTS``); ``APPROVAL_TIMEOUT`` with no decision ends it ``expired``. A newer version of the model
supersedes it (``step``), as it does a pending one.
"""

from __future__ import annotations

import datetime as dt

from app.rollout.decide.actions import Action, Approved, Fail, Finish, Wait
from app.rollout.decide.approval import ApprovalAction, earlier_decision
from app.rollout.decide.model import DeploymentView, Progress, Rollout, State
from app.rollout.decide.policy import Policy


def approval_given(progress: Progress) -> bool:
    """Was this attempt of the rollout approved (requested, or carried out since its last retry)?"""
    return earlier_decision(progress.requested, progress.history) is ApprovalAction.APPROVE


def expires_at(rollout: Rollout, policy: Policy) -> dt.datetime:
    """When an unanswered approval request ends the rollout ``expired``."""
    return (rollout.progress.approval_asked_at or rollout.updated_at) + policy.approval_timeout


def awaiting(rollout: Rollout, mine: DeploymentView | None, now: dt.datetime, policy: Policy) -> Action:
    """The next action of a rollout in ``awaiting_approval``."""
    progress, plan = rollout.progress, rollout.plan
    decided = earlier_decision(progress.requested, progress.history)
    if decided is ApprovalAction.REJECT:
        return Finish(State.REJECTED, f"rejected by an operator: {_why(progress)}; no traffic moved")
    if mine is None or mine.failed:
        shown = "is gone" if mine is None else f"ended {mine.provisioning_state}"
        return Fail(f"deployment {plan.deployment} {shown} while awaiting approval", fetch_logs=mine is not None)
    if decided is ApprovalAction.APPROVE:
        return Approved(f"approved by an operator: {_why(progress)}; queues for the endpoint's write turn")
    ends = expires_at(rollout, policy)
    if now >= ends:
        days = policy.approval_timeout.total_seconds() / 86400
        return Finish(State.EXPIRED, f"expired: nobody approved or rejected it within APPROVAL_TIMEOUT ({days:g} d)")
    return Wait(
        f"awaiting approval until {ends.isoformat()}: approve or reject it (its deployment is warm, no traffic)"
    )


def _why(progress: Progress) -> str:
    """Who decided, and why, from the decision's history entry."""
    entry = next((e for e in reversed(progress.history) if e.get("action") in ("approve", "reject")), None)
    if entry is None:
        return "no reason given"
    reason = str(entry.get("reason") or "no reason given")
    return f"{entry.get('caller', 'unknown caller')}: {reason}"
