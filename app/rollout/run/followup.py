"""The follow-up queue's work: a message, due when an AML write should have finished, advances its endpoint now."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import EventValidationError, RetryableError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.followup import BAKE, HANDED_ON, FollowUp
from app.rollout.ledger.indexes import ActiveEndpoint
from app.rollout.ledger.ledger import ledger_of
from app.rollout.ledger.promotions import promotion_key
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.gate_batch import batched_in_tick
from app.rollout.run.outcomes import Note
from app.rollout.run.promotion import PROMOTION_REASON, promote

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)
#: A follow-up handled this long after it fell due is reported: the queue is backlogged by more than a timer period.
LATE_S = 60.0


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
    late = followup.late_by(deps.clock())
    if late is not None and late > LATE_S:
        # The queue's instances are behind: what the queue holds waits longer than a tick would have.
        logger.warning("%s: handled %.0f s after it fell due; the follow-up queue is backlogged (see Sizing in "
                       "docs/operations.md: raise the instance limit)", label, late)  # fmt: skip
    if followup.reason == PROMOTION_REASON and followup.deployment:
        # A promotion owed: its share blocks for the whole copy, which is why it runs here and not on an event.
        outcome = promote(deps, promotion_key(followup.workspace_id, followup.endpoint, followup.deployment))
        logger.info("%s %s: %s", label, followup.deployment, outcome)
        return outcome
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
        if followup.kind == HANDED_ON and _advanced_since(deps, endpoint, followup.sent_at):
            logger.info("%s: advanced since the tick handed it on; nothing to do", label)
            return Outcome(OutcomeKind.DROPPED, "nothing to do: advanced since the tick handed it on")
        # In a region the tick batches, a gate due is left to the tick, whatever brought this message: a bake's end
        # (deferred at once), or a late write's follow-up or a hand-on that finds the bake over by now (the pass sees).
        due = followup.bake_end or deps.clock()  # a late follow-up's gate, if any, is due by now
        busy = batched_in_tick(deps, endpoint[0], endpoint[1], _active_recently(deps), due)
        if followup.kind == BAKE and busy:
            logger.info("%s: the gate is read with its region's others in the next tick's batch", label)
            return Outcome(OutcomeKind.DEFERRED, "deferred to the tick: its region's gates are read in one batch")
        passed = RolloutEngine(deps, followup=followup, gates_to_tick=busy).advance(
            endpoint[0], endpoint[1], time.monotonic() + settings.reconcile_budget_seconds
        )
        lines = passed.lines()
        if Note.GATE_TO_TICK in passed.notes:
            logger.info("%s: %s", label, "; ".join(lines))
            return Outcome(OutcomeKind.DEFERRED, "deferred to the tick: its region's gates are read in one batch")
    except RetryableError:
        raise  # storage or the lease table briefly unavailable: the host redelivers (bounded by maxDequeueCount)
    except Exception as err:
        logger.exception("%s: advancing the endpoint raised; the timer tries again: %s", label, err)
        return Outcome(OutcomeKind.FAILED, f"failed: {type(err).__name__}")
    logger.info("%s: %s", label, "; ".join(lines) or "nothing to do")
    return Outcome(OutcomeKind.HANDLED, "; ".join(lines) or "nothing to do")


def active_endpoint(
    deps: Deps, workspace_id: str, endpoint: str, entries: list[ActiveEndpoint] | None = None
) -> tuple[str, str] | None:
    """(workspace id, endpoint) as the ledger spells them if a rollout is in progress there; else None.

    One point read of the endpoint's entry in the ledger's index of active endpoints; when it is not there as
    spelled, one read of the whole index (``entries``, when the caller read it already), which also builds an index
    not built yet. The index may over-report: advancing such an endpoint finds nothing to do. Names compare
    case-insensitively, as Azure ML's do.
    """
    if entries is None:
        found = ledger_of(deps).active.find(workspace_id, endpoint)
        if found is not None:
            return found.workspace_id, found.endpoint
    key = WorkspaceRef.from_arm_id(workspace_id).key
    for entry in entries if entries is not None else ledger_of(deps).active.endpoints(deps.clock()):
        ws, ep = entry.workspace_id, entry.endpoint
        if ep.lower() == endpoint.lower() and WorkspaceRef.from_arm_id(ws).key == key:
            return ws, ep
    return None


#: How long a process answers "does another gate of this region fall due with mine?" from its last read of the whole
#: active index. A stale answer costs at most one gate read alone, or one gate waiting a tick for the batch; reading
#: the index for every message cost a queue worker about a third of its time in a 200-event burst.
ACTIVE_VIEW = dt.timedelta(seconds=15)
_view_lock = threading.Lock()
_view: tuple[object, dt.datetime, list[ActiveEndpoint]] | None = None  # (deps, when it was read, entries)


def _active_recently(deps: Deps) -> list[ActiveEndpoint]:
    """The active index as this process read it within ``ACTIVE_VIEW`` on the app's clock (read again when older)."""
    global _view
    now = deps.clock()
    with _view_lock:
        if _view is not None and _view[0] is deps and dt.timedelta(0) <= now - _view[1] < ACTIVE_VIEW:
            return _view[2]
    entries = ledger_of(deps).active.endpoints(now)
    with _view_lock:
        _view = (deps, now, entries)
    return entries


def forget_active_view() -> None:
    """Drop the process's view of the active index (tests; another ``deps`` never shares it)."""
    global _view
    with _view_lock:
        _view = None


def _advanced_since(deps: Deps, endpoint: tuple[str, str], sent_at: dt.datetime | None) -> bool:
    """Has a pass held the endpoint's lease since ``sent_at``? (Its row's lease ends when the pass releases it.)"""
    if sent_at is None:
        return False
    until = ledger_of(deps).leases.read(*endpoint).until
    return until is not None and until >= sent_at
