"""What happens to a rollout, recorded: each decision saved (fenced by its ETag), its state changes counted and
logged, and its notifications sent (a failed send is reported, never undoes the record)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app.rollout.decide.effects import Decision, Notice, Notify
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.promotion import PROMOTABLE_STATES, with_gate_trail
from app.rollout.run import telemetry
from app.rollout.run.approval_notices import awaiting_approval_notification
from app.rollout.run.notifications import endpoint_notification, rollout_notification
from app.rollout.run.promotion import announce_promotion, owe_promotion

if TYPE_CHECKING:
    from app.notify.notifier import Notification
    from app.ports import Deps
    from app.rollout.ledger.ledger import RolloutLedger

logger = logging.getLogger(__name__)


class Recorder:
    """Saves rollouts to the ledger and tells people about them."""

    def __init__(self, deps: Deps, ledger: RolloutLedger) -> None:
        self.deps = deps
        self.ledger = ledger

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        return self.ledger.save(with_gate_trail(rollout), now)

    def keep(self, before: Rollout, decision: Decision, now: dt.datetime) -> Rollout:
        """Save the decision's record when it changed, count and log a change of state, send its notifications.

        A rollout that becomes live or canary owes its staging promotion when it earned one: that is recorded before
        the record is saved (no proven rollout goes unrecorded) and announced after it."""
        record = with_gate_trail(decision.rollout)
        entered = record.state is not before.state
        owed = owe_promotion(self.deps, record, now) if entered and record.state in PROMOTABLE_STATES else None
        saved = self.ledger.save(record, now) if record != before else before
        if owed is not None:
            announce_promotion(self.deps, owed)
        if entered:
            telemetry.rollout_transitioned(saved, now)
            plan = saved.plan
            logger.info("rollout %s/%s is now %s: %s", plan.endpoint, plan.deployment, saved.state.value, saved.reason)
        for effect in decision.side_effects:
            if isinstance(effect, Notify):
                self.notify(saved, effect)
        return saved

    def notify(self, rollout: Rollout, note: Notify) -> None:
        """Send one notification about ``rollout``; its failure is reported, and never undoes the record."""
        asked = rollout.progress.approval_asked_at
        if rollout.state is State.AWAITING_APPROVAL and note.notice is Notice.STATE and asked is not None:
            expires = asked + self.deps.settings.approval_timeout
            host = self.deps.settings.status_host
            self.send(awaiting_approval_notification(rollout, host, asked, expires), _about(rollout))
            return
        notification = rollout_notification(
            rollout,
            rollout.state,
            note.reason,
            rollout.logs,
            status_host=self.deps.settings.status_host,
            kind=note.notice.value,
            severity=note.severity,
            facts=note.facts,
            occurrence=note.occurrence,
        )
        self.send(notification, _about(rollout))

    def notify_endpoint(
        self, workspace_id: str, endpoint: str, kind: str, severity: str, reason: str, facts: Mapping[str, object]
    ) -> None:
        """An endpoint-level notification (drift, a restored split). Its failure is reported, never raised."""
        host = self.deps.settings.status_host
        notification = endpoint_notification(workspace_id, endpoint, kind, severity, reason, facts, status_host=host)
        self.send(notification, f"endpoint {endpoint}")

    def send(self, notification: Notification, about: str) -> None:
        """Send any notification about ``about``; its failure is reported, never raised."""
        try:
            self.deps.notifier.send(notification)
        except Exception as err:
            logger.error("notification %s for %s failed: %s", notification.type, about, err)


def _about(rollout: Rollout) -> str:
    return f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment}"
