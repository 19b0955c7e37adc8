"""Advancing rollouts on a trigger: the timer's tick (every unfinished rollout, within a time budget and a
concurrency limit) and a follow-up message from the queue (one endpoint, now)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.platform import telemetry
from app.platform.errors import EventValidationError, RetryableError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.followup import FollowUp
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run.engine import RolloutEngine

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)


def reconcile(deps: Deps) -> list[str]:
    """One tick. With nothing in flight this is one read of the active index and no Azure ML call at all."""
    with telemetry.tick_span() as span:
        lines = _reconcile(deps)
        span.set_attribute("aml.reconcile.lines", len(lines))
        return lines


def _reconcile(deps: Deps) -> list[str]:
    settings = deps.settings
    _retry_notifications(deps)
    if not settings.records_rollouts:
        logger.info("reconcile: DEPLOY_MODE=plan, nothing is applied")
        return []
    ledger = ledger_of(deps)
    entries = ledger.active_endpoints(deps.clock())
    # An index entry outlives its endpoint's last active row briefly (see ACTIVE_INDEX_GRACE); past that,
    # one key-range read decides whether it goes, so idle endpoints stop costing anything. A row is active
    # while a rollout is in progress, cleanup is owed, or (the endpoint's ~lease row) a traffic write is in doubt.
    entries = [entry for entry in entries if not ledger.settle(entry, deps.clock())]
    if not entries:
        # One line per tick even when idle: the "reconciler not running" alert (infra/app/alerts.bicep) counts them.
        logger.info("reconcile: 0 endpoint(s), nothing to do")
        return []
    endpoints = [(entry.workspace_id, entry.endpoint) for entry in entries]
    allowed = [(ws, ep) for ws, ep in endpoints if settings.allows(WorkspaceRef.from_arm_id(ws))]
    for ws, ep in sorted(set(endpoints) - set(allowed)):
        logger.warning("reconcile: rollout on %s in %s left alone: workspace no longer allowed", ep, ws)
    deadline = time.monotonic() + settings.reconcile_budget_seconds
    lines: list[str] = []
    with ThreadPoolExecutor(max_workers=settings.reconcile_concurrency, thread_name_prefix="reconcile") as pool:
        # Each endpoint's steps are children of this tick's span: the pool's threads do not carry it by themselves.
        advance = [(telemetry.in_current_context(RolloutEngine(deps).advance), ws, ep) for ws, ep in allowed]
        futures = {pool.submit(run, ws, ep, deadline): ep for run, ws, ep in advance}
        for future, endpoint in futures.items():
            try:
                lines.extend(future.result().lines())
            except Exception as err:
                # One endpoint's trouble must not stop the others; the next tick tries again.
                logger.error("reconcile: endpoint %s not advanced this tick: %s: %s", endpoint, type(err).__name__, err)
                lines.append(f"{endpoint}: error {type(err).__name__}")
    logger.info("reconcile: %d endpoint(s), %s", len(allowed), "; ".join(lines) or "nothing to do")
    return lines


def _retry_notifications(deps: Deps) -> None:
    """Send again what a failing sink left in the outbox (in plan mode too: planned and rejected notify)."""
    try:
        sent = deps.notifier.flush()
    except Exception as err:
        # The rollouts must still advance; the next tick tries the outbox again.
        logger.error("reconcile: pending notifications not retried this tick: %s: %s", type(err).__name__, err)
        return
    if sent:
        logger.info("reconcile: %d pending notification(s) sent", sent)


def follow_up(body: bytes | str, dequeue_count: int, deps: Deps) -> Outcome:
    """The queue function's work: advance the message's endpoint once. Raises only what a retry can fix.

    A duplicate or late message finds nothing to do (the engine is level-triggered); a message that cannot be
    understood, or names an endpoint with nothing in flight, is logged and dropped: a retry cannot fix it, and
    the timer is the safety net either way.
    """
    try:
        followup = FollowUp.parse(body)
    except EventValidationError as err:
        logger.error("follow-up message dropped (dequeue count %d): %s", dequeue_count, err)
        return Outcome(OutcomeKind.DROPPED, f"dropped: {err}")
    label = f"follow-up {followup.endpoint} ({followup.reason})"
    settings = deps.settings
    if not settings.records_rollouts:
        logger.info("%s: DEPLOY_MODE=plan, nothing is applied", label)
        return Outcome(OutcomeKind.DROPPED, "dropped: DEPLOY_MODE=plan")
    if not settings.allows(WorkspaceRef.from_arm_id(followup.workspace_id)):
        logger.error("%s dropped: workspace %s is not in AML_ALLOWED_WORKSPACES", label, followup.workspace_id)
        return Outcome(OutcomeKind.DROPPED, "dropped: workspace not allowed")
    try:
        endpoint = active_endpoint(deps, followup.workspace_id, followup.endpoint)
        if endpoint is None:
            # Finished since (a late or duplicate message), or never ours: nothing to look at, and no lease taken.
            logger.info("%s: no rollout in progress on this endpoint; nothing to do", label)
            return Outcome(OutcomeKind.DROPPED, "nothing to do: no rollout in progress on this endpoint")
        lines = (
            RolloutEngine(deps, followup=followup)
            .advance(endpoint[0], endpoint[1], time.monotonic() + settings.reconcile_budget_seconds)
            .lines()
        )
    except RetryableError:
        raise  # storage or the lease table briefly unavailable: the host redelivers (bounded by maxDequeueCount)
    except Exception as err:
        logger.exception("%s: advancing the endpoint raised; the timer tries again: %s", label, err)
        return Outcome(OutcomeKind.FAILED, f"failed: {type(err).__name__}")
    logger.info("%s: %s", label, "; ".join(lines) or "nothing to do")
    return Outcome(OutcomeKind.HANDLED, "; ".join(lines) or "nothing to do")


def active_endpoint(deps: Deps, workspace_id: str, endpoint: str) -> tuple[str, str] | None:
    """(workspace id, endpoint) as the ledger spells them if a rollout is in progress there; else None.

    One read of the ledger's index of active endpoints (which may over-report: advancing such an endpoint finds
    nothing to do). Names compare case-insensitively, as Azure ML's do.
    """
    key = WorkspaceRef.from_arm_id(workspace_id).key
    for entry in ledger_of(deps).active_endpoints(deps.clock()):
        ws, ep = entry.workspace_id, entry.endpoint
        if ep.lower() == endpoint.lower() and WorkspaceRef.from_arm_id(ws).key == key:
            return ws, ep
    return None
