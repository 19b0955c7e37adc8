"""What happens to a rollout, recorded: saves, transitions with their notification and telemetry, and what a
failed attempt means (back off, wait for a permission, or fail)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.errors import describe_error, error_source, is_retryable, permission_problem, status_code_of
from app.rollout.decide.model import Cleanup, Rollout, State
from app.rollout.decide.promotion import PROMOTABLE_STATES, with_gate_trail
from app.rollout.decide.step import Fail
from app.rollout.run import telemetry
from app.rollout.run.notifications import SMOKE_FAILED, endpoint_notification, rollout_notification
from app.rollout.run.promotion import announce_promotion, owe_promotion

if TYPE_CHECKING:
    from app.notify.notifier import Notification
    from app.ports import AzureMl, Deps
    from app.rollout.ledger.ledger import RolloutLedger

logger = logging.getLogger(__name__)

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=10)
#: Waiting for a role assignment to apply: come back often, it usually takes a few minutes.
PERMISSION_BACKOFF_CAP = dt.timedelta(minutes=2)


def backoff_delay(attempts: int, cap: dt.timedelta = BACKOFF_CAP) -> dt.timedelta:
    """Exponential back-off after ``attempts`` consecutive failures, from 30 s up to ``cap``."""
    return min(BACKOFF_BASE * 2 ** (attempts - 1), cap)


class Recorder:
    """Saves rollouts to the ledger and tells people about their transitions."""

    def __init__(self, deps: Deps, ledger: RolloutLedger) -> None:
        self.deps = deps
        self.ledger = ledger

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        return self.ledger.save(with_gate_trail(rollout), now)

    def transition(
        self,
        rollout: Rollout,
        state: State,
        reason: str,
        now: dt.datetime,
        *,
        kind: str = "",
        facts: Mapping[str, object] | None = None,
    ) -> Rollout:
        """Save ``rollout`` in ``state``, count it, log it and notify it. A terminal state owes cleanup."""
        if state.terminal and rollout.cleanup is None:
            rollout = replace(rollout, cleanup=Cleanup())  # whatever it leaves behind is cleaned up after it
        rollout = with_gate_trail(replace(rollout, state=state, reason=reason))
        # A proven rollout's promotion is recorded before its transition is saved: no proven rollout goes unrecorded.
        owed = owe_promotion(self.deps, rollout, now) if state in PROMOTABLE_STATES else None
        saved = self.ledger.save(rollout, now)
        if owed is not None:
            announce_promotion(self.deps, owed)
        telemetry.rollout_transitioned(saved, now)
        logger.info("rollout %s/%s is now %s: %s", rollout.plan.endpoint, rollout.plan.deployment, state.value, reason)
        self.notify(saved, state, reason, kind=kind, facts=facts)
        return saved

    def notify(
        self,
        rollout: Rollout,
        state: State,
        reason: str,
        *,
        kind: str = "",
        facts: Mapping[str, object] | None = None,
        occurrence: str = "",
    ) -> None:
        """Send the transition's notification. Its failure is reported, and never undoes the transition."""
        notification = rollout_notification(
            rollout,
            state,
            reason,
            rollout.logs,
            status_host=self.deps.settings.status_host,
            kind=kind,
            facts=facts,
            occurrence=occurrence,
        )
        self._send(notification, f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment}")

    def notify_endpoint(
        self, workspace_id: str, endpoint: str, kind: str, severity: str, reason: str, facts: Mapping[str, object]
    ) -> None:
        """An endpoint-level notification (drift, a restored split). Its failure is reported, never raised."""
        host = self.deps.settings.status_host
        notification = endpoint_notification(workspace_id, endpoint, kind, severity, reason, facts, status_host=host)
        self._send(notification, f"endpoint {endpoint}")

    def send(self, notification: Notification, about: str) -> None:
        """Send any notification about ``about``; its failure is reported, never raised."""
        self._send(notification, about)

    def _send(self, notification: Notification, about: str) -> None:
        try:
            self.deps.notifier.send(notification)
        except Exception as err:
            logger.error("notification %s for %s failed: %s", notification.type, about, err)

    # ------------------------------------------------------------------------------------------- failures

    def fail(self, rollout: Rollout, action: Fail, gateway: AzureMl, now: dt.datetime) -> Rollout:
        """Mark the rollout failed, with the deployment's container logs when there is one."""
        plan, logs = rollout.plan, ""
        if action.fetch_logs:
            try:
                logs = gateway.get_logs(plan.endpoint, plan.deployment)
            except Exception as err:
                logs = f"(container logs unavailable: {type(err).__name__}: {err})"
        smoke = rollout.progress.smoke
        failed_smoke = smoke is not None and not smoke.get("passed")
        return self.transition(
            replace(rollout, logs=logs, progress=replace(rollout.progress, requested="", paused=False)),
            State.FAILED,
            action.reason,
            now,
            kind=SMOKE_FAILED if failed_smoke else "",
            facts={"smoke": dict(smoke)} if failed_smoke and smoke is not None else None,
        )

    def failed_attempt(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
        """An attempt raised: wait out a 409, wait for a permission, back off a transient error, else fail."""
        plan, status = rollout.plan, status_code_of(err)
        error = f"{type(err).__name__}: {err}"[:2000]
        source, described = error_source(err), describe_error(err)[:2000]
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        if status == 409 and source == "azureml":
            # One operation at a time per endpoint: a 409 is waited out, never failed on.
            logger.info("%s: AML answered 409 (busy); will try again next tick", label)
            return self.ledger.save(replace(rollout, reason="waiting: AML answered 409 Conflict (busy)"), now)
        rollout = replace(rollout, last_error=error, error_source=source)
        problem = permission_problem(err)
        if problem:
            return self._denied(rollout, problem, now)
        if not is_retryable(err):
            logger.error("%s failed permanently: %s", label, error)
            return self.transition(rollout, State.FAILED, described, now)
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error("%s failed after %d attempts: %s", label, attempts, error)
            return self.transition(
                replace(rollout, attempts=attempts),
                State.FAILED,
                f"gave up after {attempts} failed attempts: {described}",
                now,
            )
        delay = backoff_delay(attempts)
        logger.warning("%s attempt %d failed, retrying after %s: %s", label, attempts, delay, error)
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=now + delay,
                reason=f"retrying after a transient error (attempt {attempts}): {described}",
            ),
            now,
        )

    def _denied(self, rollout: Rollout, problem: str, now: dt.datetime) -> Rollout:
        """A permission or identity error: wait (a role assignment takes minutes to apply), within a budget."""
        label = f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment}"
        since = rollout.denied_since or now
        budget = dt.timedelta(minutes=self.deps.settings.permission_retry_minutes)
        if now - since >= budget:
            minutes = self.deps.settings.permission_retry_minutes
            logger.error("%s failed: permission denied for %d minutes: %s", label, minutes, problem)
            return self.transition(
                replace(rollout, denied_since=since),
                State.FAILED,
                f"permission denied for {minutes} minutes (PERMISSION_RETRY_MINUTES), giving up: {problem}",
                now,
            )
        attempts = rollout.attempts + 1
        delay = min(backoff_delay(attempts, PERMISSION_BACKOFF_CAP), since + budget - now)
        logger.warning("%s waits for a permission, retrying after %s: %s", label, delay, problem)
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=now + delay,
                denied_since=since,
                reason=f"waiting for a permission until {(since + budget).isoformat()}: {problem}",
            ),
            now,
        )
