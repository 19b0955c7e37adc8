"""The timer's work: advance every unfinished rollout, within a time budget and a concurrency limit."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from app.platform import telemetry
from app.platform.workspace import WorkspaceRef
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run import tick
from app.rollout.run.promotion import sweep

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)


def reconcile(deps: Deps) -> list[str]:
    """One tick. With nothing in flight this is one read of the active index and no Azure ML call at all."""
    with telemetry.tick_span() as span:
        started = time.monotonic()
        lines = _reconcile(deps)
        # After the rollouts: with follow-ups off, a promotion carried out here blocks for the whole copy.
        lines.extend(_sweep_promotions(deps, started + deps.settings.reconcile_budget_seconds))
        span.set_attribute("aml.reconcile.lines", len(lines))
        return lines


def _reconcile(deps: Deps) -> list[str]:
    settings = deps.settings
    _retry_notifications(deps)
    if not settings.records_rollouts:
        logger.info("reconcile: DEPLOY_MODE=plan, nothing is applied")
        return []
    ledger = ledger_of(deps)
    entries = ledger.active.endpoints(deps.clock())
    # An index entry outlives its endpoint's last active row briefly (see ACTIVE_INDEX_GRACE); past that,
    # one key-range read decides whether it goes, so idle endpoints stop costing anything. A row is active
    # while a rollout is in progress, cleanup is owed, or (the endpoint's ~lease row) a traffic write is in doubt.
    entries = [entry for entry in entries if not ledger.active.settle(entry, deps.clock())]
    if not entries:
        # One line per tick even when idle: the "reconciler not running" alert (infra/app/alerts.bicep) counts them.
        logger.info("reconcile: 0 endpoint(s), nothing to do")
        return []
    endpoints = [(entry.workspace_id, entry.endpoint) for entry in entries]
    allowed = [(ws, ep) for ws, ep in endpoints if settings.allows(WorkspaceRef.from_arm_id(ws))]
    for ws, ep in sorted(set(endpoints) - set(allowed)):
        logger.warning("reconcile: rollout on %s in %s left alone: workspace no longer allowed", ep, ws)
    deadline = time.monotonic() + settings.reconcile_budget_seconds
    lines = tick.run(deps, allowed, deadline)
    logger.info("reconcile: %d endpoint(s), %s", len(allowed), "; ".join(lines) or "nothing to do")
    return lines


def _sweep_promotions(deps: Deps, deadline: float) -> list[str]:
    """Promotions owed whose follow-up came and went (one query; nothing when this app promotes nothing)."""
    if not deps.settings.promote_to_registry or not deps.settings.records_rollouts:
        return []
    try:
        lines = sweep(deps, deadline)
    except Exception as err:
        # The next tick looks at the promotions again.
        logger.error("reconcile: promotions not looked at this tick: %s: %s", type(err).__name__, err)
        return []
    if lines:
        logger.info("reconcile: %s", "; ".join(lines))
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
