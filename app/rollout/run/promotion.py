"""The staging app's promotion: a proven rollout's model version is shared into ``PROMOTE_TO_REGISTRY`` with its
evidence, then ``AmlEvents.Model.Promoted`` is published for production.

Three entry points, none on the event path (``models.share`` blocks for the whole copy, minutes on Azure):

- ``owe_promotion``: when a rollout ends proven, before its transition is saved, record the promotion and send a
  follow-up for it (``app/rollout/ledger/promotions.py``);
- ``promote``: the follow-up queue's work for it: claim it, read the rollout again (it must still be promotable),
  share, publish, record; a failure a retry can fix is retried later with back-off, within ``ROLLOUT_MAX_ATTEMPTS``;
- ``sweep``: the reconciler's tick sends the follow-up again for a promotion whose turn came and went (a message
  lost or cut short), and carries it out itself when follow-ups are off.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import is_retryable
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.followup import FollowUp
from app.rollout.decide.promotion import promotion_evidence, promotion_refusal
from app.rollout.decide.registry_model import WorkspaceModelRef
from app.rollout.ledger.ledger import ledger_of
from app.rollout.ledger.promotions import CLAIM_FOR, PromotionRecord, PromotionRecords, PromotionStatus
from app.rollout.ledger.rows import decode_rollout, partition_key
from app.rollout.run.promotion_notices import promoted_notification, promotion_failed_notification

if TYPE_CHECKING:
    from app.ports import Deps
    from app.rollout.decide.model import Rollout

logger = logging.getLogger(__name__)

#: The follow-up message's reason for a promotion (its deployment names the rollout).
PROMOTION_REASON = "promotion"
#: While ``DEPLOY_MODE`` is ``hold``, an owed promotion is looked at again this much later (no attempt counted).
HOLD_RECHECK = dt.timedelta(minutes=5)
#: Promotions one tick carries out itself when follow-ups are off (each may block for the whole copy).
INLINE_PER_TICK = 1
#: A rollout still on its way (its transition to live not saved yet) is looked at again this much later.
NOT_YET = dt.timedelta(seconds=30)
#: Back-off after a failed attempt: a registry copy is slow, so from one minute, doubling, up to 30.
BACKOFF_BASE = dt.timedelta(minutes=1)
BACKOFF_CAP = dt.timedelta(minutes=30)


def backoff_delay(attempts: int) -> dt.timedelta:
    return min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)


def promotions_of(deps: Deps) -> PromotionRecords:
    """The promotion records, in the idempotency table."""
    return PromotionRecords(deps.table(deps.settings.idempotency_table))


def owe_promotion(deps: Deps, rollout: Rollout, now: dt.datetime) -> PromotionRecord | None:
    """Record the promotion of ``rollout`` (about to be saved live or canary) if it is promoted; None if not.

    Called before the transition is saved, and raises what the table raises: the transition is then not saved
    either, and is tried again, so no proven rollout goes unrecorded. ``announce_promotion`` follows the save.
    """
    refusal = promotion_refusal(rollout, deps.settings)
    plan = rollout.plan
    if refusal is not None:
        if deps.settings.promote_to_registry:
            logger.info("rollout %s/%s is not promoted: %s", plan.endpoint, plan.deployment, refusal)
        return None
    registry = deps.settings.promote_to_registry
    record = promotions_of(deps).owe(plan.workspace_id, plan.endpoint, plan.deployment, registry, now)
    logger.info("rollout %s/%s: promotion into registry %s owed", plan.endpoint, plan.deployment, registry)
    return record


def announce_promotion(deps: Deps, record: PromotionRecord) -> None:
    """After the transition is saved: send the promotion's follow-up (best effort; the tick's sweep is the net)."""
    _send_followup(deps, record, 0.0)


def promote(deps: Deps, key: str) -> Outcome:
    """Carry out one owed promotion, if its turn has come. Never raises: what a retry can fix is retried later."""
    records, now = promotions_of(deps), deps.clock()
    record = records.claim(key, now)
    if record is None:
        return Outcome(
            OutcomeKind.DROPPED, "nothing to do: the promotion is done, held by another invocation, or not due yet"
        )
    label = f"promotion of {record.endpoint}/{record.deployment} into registry {record.registry}"
    if deps.settings.deploy_mode != "apply":
        records.postpone(record, now + HOLD_RECHECK, f"DEPLOY_MODE={deps.settings.deploy_mode}", attempt=False)
        logger.info("%s waits: DEPLOY_MODE=%s", label, deps.settings.deploy_mode)
        return Outcome(OutcomeKind.DEFERRED, f"waiting: DEPLOY_MODE={deps.settings.deploy_mode}")
    rollout = _rollout(deps, record)
    if rollout is not None and not rollout.state.terminal:
        # Recorded just before its transition to live is saved (or that save failed and is tried again).
        records.postpone(record, now + NOT_YET, f"its rollout is still {rollout.state.value}", attempt=False)
        return Outcome(OutcomeKind.DEFERRED, f"waiting: the rollout is still {rollout.state.value}")
    refusal = "its rollout is no longer in the ledger" if rollout is None else promotion_refusal(rollout, deps.settings)
    if rollout is None or refusal is not None:
        records.finish(record, PromotionStatus.DROPPED, error=str(refusal))
        logger.warning("%s dropped: %s", label, refusal)
        return Outcome(OutcomeKind.DROPPED, f"dropped: {refusal}")
    plan = rollout.plan
    evidence = promotion_evidence(rollout, now, deps.settings.status_host)
    source = WorkspaceModelRef.of(WorkspaceRef.from_arm_id(plan.workspace_id), plan.model_name, plan.model_version)
    try:
        shared = deps.registry(record.registry).share(source, evidence, carry_tags=plan.promote_tags)
        deps.notifier.send(promoted_notification(rollout, shared, evidence))
    except Exception as err:
        return _failed(deps, records, record, rollout, err)
    records.finish(record, PromotionStatus.PROMOTED, asset_id=shared.version.asset_id)
    logger.info("%s done: %s (%s)", label, shared.version.asset_id, "copied" if shared.shared else "was there")
    return Outcome(OutcomeKind.HANDLED, f"promoted: {shared.version.asset_id}")


def sweep(deps: Deps, deadline: float) -> list[str]:
    """The tick's look at the open promotions (one query): send the follow-up again for those whose turn came and
    went; with follow-ups off, carry out ``INLINE_PER_TICK`` of them here while the tick has time."""
    records, now = promotions_of(deps), deps.clock()
    due = [record for record in records.open() if record.due(now)]
    lines: list[str] = []
    inline = 0
    for record in due:
        if deps.followups is not None:
            if record.resend_at is None or now >= record.resend_at:
                _send_followup(deps, record, 0.0)
                lines.append(f"promotion {record.endpoint}/{record.deployment}: follow-up sent again")
        elif inline < INLINE_PER_TICK and time.monotonic() < deadline:
            inline += 1
            lines.append(f"promotion {record.endpoint}/{record.deployment}: {promote(deps, record.key)}")
    return lines


def _rollout(deps: Deps, record: PromotionRecord) -> Rollout | None:
    """The rollout as the ledger has it now, whole (one point read): its gates and history decide."""
    row = ledger_of(deps).store.get(partition_key(record.workspace_id, record.endpoint), record.deployment)
    return decode_rollout(row) if row is not None else None


def _failed(
    deps: Deps, records: PromotionRecords, record: PromotionRecord, rollout: Rollout, err: Exception
) -> Outcome:
    """A retry can fix it: owed again after a back-off (a follow-up then). Else, or too often: failed, notified."""
    label = f"promotion of {record.endpoint}/{record.deployment} into registry {record.registry}"
    error, attempts = f"{type(err).__name__}: {err}"[:2000], record.attempts + 1
    if is_retryable(err) and attempts < deps.settings.rollout_max_attempts:
        delay = backoff_delay(attempts)
        records.postpone(record, deps.clock() + delay, error)
        logger.warning("%s attempt %d failed, retried after %s: %s", label, attempts, delay, error)
        _send_followup(deps, record, delay.total_seconds())
        return Outcome(OutcomeKind.DEFERRED, f"retrying after {delay}: {error}")
    records.finish(record, PromotionStatus.FAILED, error=error)
    logger.error("%s failed after %d attempt(s): %s", label, attempts, error)
    try:
        deps.notifier.send(promotion_failed_notification(rollout, record.registry, error, attempts))
    except Exception as notify_err:
        logger.error("%s: its failure notification was not sent: %s", label, notify_err)
    return Outcome(OutcomeKind.FAILED, f"failed: {error}")


def _send_followup(deps: Deps, record: PromotionRecord, delay_s: float) -> None:
    """Best effort: the reconciler's sweep sends it again if it is lost."""
    if deps.followups is None:
        return
    followup = FollowUp(record.workspace_id, record.endpoint, PROMOTION_REASON, deployment=record.deployment)
    try:
        deps.followups().schedule(followup, delay_s)
        promotions_of(deps).sent(record, deps.clock() + dt.timedelta(seconds=delay_s) + CLAIM_FOR)
    except Exception as err:
        logger.warning(
            "promotion of %s/%s: follow-up not sent (%s: %s); the reconciler sends it",
            record.endpoint,
            record.deployment,
            type(err).__name__,
            err,
        )
