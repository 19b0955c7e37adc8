"""Applies the state machine: under an endpoint lease, observe AML once, take one action per rollout, record it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from shared.errors import describe_error, error_source, is_retryable, permission_problem, status_code_of
from shared.rollout.factories import ledger_of, policy_of
from shared.rollout.model import Cleanup, Rollout, State
from shared.rollout.naming import EndpointNameTaken
from shared.rollout.notifications import cleanup_failed_notification, rollout_notification
from shared.rollout.step import (
    RETIRABLE_STATES,
    WRITE_ACTIONS,
    Action,
    CreateDeployment,
    CreateEndpoint,
    Delete,
    Fail,
    Finish,
    Nothing,
    Observation,
    SetTraffic,
    Wait,
    cleanup_step,
    step,
)
from shared.workspace import WorkspaceRef

if TYPE_CHECKING:
    from shared.aml import AmlGateway
    from shared.deps import Deps
    from shared.notify import Notification
    from shared.rollout.model import EndpointView

logger = logging.getLogger(__name__)

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=10)
#: Waiting for a role assignment to apply: come back often, it usually takes a few minutes.
PERMISSION_BACKOFF_CAP = dt.timedelta(minutes=2)


class RolloutEngine:
    """Advances the rollouts of one endpoint at a time. One instance per invocation."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.ledger = ledger_of(deps)
        self.policy = policy_of(deps)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def advance(self, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
        """Take one step for every active rollout on the endpoint. Returns one line per rollout touched."""
        now = self.deps.clock()
        lease_seconds = max(deadline - time.monotonic(), 0) + 60
        lease = self.ledger.acquire_lease(workspace_id, endpoint, self.owner, now, lease_seconds)
        if lease is None:
            return [f"{endpoint}: another instance is advancing this endpoint"]
        try:
            return self._advance(workspace_id, endpoint, deadline)
        finally:
            self.ledger.release_lease(lease, self.deps.clock())

    def _advance(self, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
        rollouts = {r.plan.deployment: r for r in self.ledger.endpoint_rollouts(workspace_id, endpoint)}
        now = self.deps.clock()
        due = [
            r for r in rollouts.values() if not r.state.terminal and not (r.next_attempt_at and now < r.next_attempt_at)
        ]
        if not due and not _cleanup_due(rollouts.values(), now):
            return []
        gateway = self.deps.aml(WorkspaceRef.from_arm_id(workspace_id))
        try:
            view = gateway.observe(endpoint)
        except Exception as err:
            # The same policy as for actions: back off and count transient errors, wait a bounded time for a
            # missing permission, fail on permanent ones. Cleanup simply tries again next tick.
            failed = [self._failed_attempt(rollout, err, now) for rollout in due]
            return [f"{r.plan.deployment}: {r.state.value} ({r.reason})" for r in failed]
        wrote = False
        lines = []
        for rollout in sorted(due, key=lambda r: (r.state is not State.DEPLOYING, r.created_at)):
            if time.monotonic() > deadline:
                lines.append(f"{rollout.plan.deployment}: out of time budget; next tick")
                break
            current = rollouts[rollout.plan.deployment]
            siblings = [r for name, r in rollouts.items() if name != current.plan.deployment]
            action = step(current, Observation(view, siblings), self.deps.clock(), self.policy)
            if wrote and isinstance(action, WRITE_ACTIONS):
                action = Wait("another write went to this endpoint in this pass")
            updated = self._apply(current, action, view, gateway)
            wrote = wrote or bool(updated.actions != current.actions)
            rollouts[updated.plan.deployment] = updated
            lines.append(f"{updated.plan.deployment}: {updated.state.value} ({updated.reason})")
            applied = (
                updated.actions != current.actions
                if isinstance(action, SetTraffic)
                else updated.state is not current.state
            )
            if isinstance(action, (SetTraffic, Finish)) and action.retire and applied:
                self._retire(rollouts, action.retire, updated)
        if time.monotonic() <= deadline:
            lines.extend(self._cleanup(rollouts, view, gateway, wrote))
        return lines

    def _retire(self, rollouts: dict[str, Rollout], names: tuple[str, ...], by: Rollout) -> None:
        """Mark the earlier canaries and mirrors that ``by``'s traffic write retired as superseded."""
        for name, rollout in list(rollouts.items()):
            if name.lower() in names and rollout.state in RETIRABLE_STATES:
                reason = f"retired: version {by.plan.model_version} ({by.plan.deployment}) took over its traffic"
                rollouts[name] = self._transition(rollout, State.SUPERSEDED, reason, self.deps.clock())

    def _cleanup(
        self, rollouts: dict[str, Rollout], view: EndpointView | None, gateway: AmlGateway, wrote: bool
    ) -> list[str]:
        """Best-effort cleanup owed after rollouts ended: at most one delete per pass, never in a pass that wrote.

        Its failure is reported once (a warning and an ``AmlEvents.Rollout.CleanupFailed`` notification) and retried
        with back-off; it never changes a rollout's state and never holds the endpoint's write turn.
        """
        now = self.deps.clock()
        owed = sorted((r for r in rollouts.values() if r.cleanup is not None), key=lambda r: r.updated_at)
        if not owed or not _cleanup_due(owed, now):
            return []
        if wrote:
            return ["cleanup: next pass (a write went to this endpoint in this pass)"]
        decision = cleanup_step(view, list(rollouts.values()), self.policy)
        if isinstance(decision, Wait):
            return [f"cleanup: {decision.reason}"]
        carrier, others = owed[-1], owed[:-1]
        for rollout in others:  # one row carries what is owed
            rollouts[rollout.plan.deployment] = self.ledger.save(replace(rollout, cleanup=None), now)
        if isinstance(decision, Nothing):
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=None), now)
            return []
        assert isinstance(decision, Delete)
        try:
            gateway.delete_deployment(carrier.plan.endpoint, decision.deployment)
        except Exception as err:
            return [self._cleanup_failed(rollouts, carrier, decision, err, now)]
        logger.info("endpoint %s cleanup: %s", carrier.plan.endpoint, decision.reason)
        sent = f"DELETE deployment {decision.deployment}"
        rollouts[carrier.plan.deployment] = self.ledger.save(
            replace(carrier, actions=(*carrier.actions, sent), cleanup=Cleanup()), now
        )
        return [f"cleanup: {decision.reason}"]

    def _cleanup_failed(
        self, rollouts: dict[str, Rollout], carrier: Rollout, decision: Delete, err: Exception, now: dt.datetime
    ) -> str:
        endpoint, owed = carrier.plan.endpoint, carrier.cleanup or Cleanup()
        error = f"{describe_error(err)}"[:2000]
        if status_code_of(err) == 409:
            logger.info("endpoint %s cleanup: AML answered 409 (busy) to %s; next tick", endpoint, decision.reason)
            return f"cleanup: waiting, AML answered 409 to DELETE {decision.deployment}"
        attempts = owed.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error(
                "endpoint %s cleanup gave up after %d attempts to delete %s; delete it by hand: %s",
                endpoint,
                attempts,
                decision.deployment,
                error,
            )
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=None), now)
            return f"cleanup: gave up deleting {decision.deployment} after {attempts} attempts: {error}"
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
        if attempts == 1:
            logger.warning(
                "endpoint %s cleanup: deleting %s failed, retrying with back-off (the rollouts are unaffected): %s",
                endpoint,
                decision.deployment,
                error,
            )
            self._send(cleanup_failed_notification(carrier, decision.deployment, error, self._status_host), carrier)
        else:
            logger.info("endpoint %s cleanup attempt %d failed: %s", endpoint, attempts, error)
        owed = Cleanup(attempts=attempts, next_attempt_at=now + delay, last_error=error)
        rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=owed), now)
        return f"cleanup: deleting {decision.deployment} failed (attempt {attempts}), retrying after {delay}: {error}"

    def _apply(self, rollout: Rollout, action: Action, view: EndpointView | None, gateway: AmlGateway) -> Rollout:
        plan, now = rollout.plan, self.deps.clock()
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        try:
            if isinstance(action, Nothing):
                return rollout
            if isinstance(action, Wait):
                logger.info("%s waits: %s", label, action.reason)
                if rollout.reason == action.reason and rollout.denied_since is None:
                    return rollout
                return self.ledger.save(replace(rollout, reason=action.reason, denied_since=None), now)
            if isinstance(action, WRITE_ACTIONS):
                rollout = self._claim_turn(rollout, now)
                sent = self._write(action, rollout, gateway, now)
                logger.info("%s sent %s", label, sent)
                retry = getattr(action, "retry", "")
                return self.ledger.save(
                    replace(
                        rollout,
                        reason=f"sent {sent}",
                        actions=(*rollout.actions, sent),
                        retries=(*rollout.retries, retry) if retry else rollout.retries,
                        attempts=0,
                        next_attempt_at=None,
                        last_error="",
                        error_source="",
                        denied_since=None,
                    ),
                    now,
                )
            if isinstance(action, Finish):
                return self._transition(
                    replace(rollout, attempts=0, next_attempt_at=None, last_error="", denied_since=None),
                    action.state,
                    action.reason,
                    now,
                )
            if isinstance(action, Fail):
                return self._fail(rollout, action, gateway, now)
            raise AssertionError(f"unhandled action {action!r}")
        except EndpointNameTaken as err:
            # Not a failure of the rollout but of its plan: the user must choose another endpoint name.
            logger.error("%s rejected: %s", label, err)
            return self._transition(replace(rollout, last_error=str(err)), State.REJECTED, str(err), now)
        except Exception as err:
            return self._failed_attempt(rollout, err, now)

    def _write(self, action: Action, rollout: Rollout, gateway: AmlGateway, now: dt.datetime) -> str:
        plan = rollout.plan
        if isinstance(action, CreateEndpoint):
            gateway.create_endpoint(plan.endpoint)
            return f"PUT endpoint {plan.endpoint}"
        if isinstance(action, CreateDeployment):
            gateway.create_deployment(plan, now)
            return f"PUT deployment {plan.deployment} ({plan.instance_count} x {plan.instance_type})"
        assert isinstance(action, SetTraffic)
        gateway.set_traffic(plan.endpoint, action.traffic, action.mirror)
        return f"PUT endpoint {plan.endpoint} {action.reason}"

    def _claim_turn(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        if rollout.state is State.DEPLOYING:
            return rollout
        return self._transition(
            replace(rollout, turn_taken_at=now), State.DEPLOYING, "started: holds the endpoint's write turn", now
        )

    def _fail(self, rollout: Rollout, action: Fail, gateway: AmlGateway, now: dt.datetime) -> Rollout:
        plan, logs = rollout.plan, ""
        if action.fetch_logs:
            try:
                logs = gateway.get_logs(plan.endpoint, plan.deployment)
            except Exception as err:
                logs = f"(container logs unavailable: {type(err).__name__}: {err})"
        return self._transition(replace(rollout, logs=logs), State.FAILED, action.reason, now)

    def _failed_attempt(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
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
            return self._transition(rollout, State.FAILED, described, now)
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error("%s failed after %d attempts: %s", label, attempts, error)
            return self._transition(
                replace(rollout, attempts=attempts),
                State.FAILED,
                f"gave up after {attempts} failed attempts: {described}",
                now,
            )
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
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
            return self._transition(
                replace(rollout, denied_since=since),
                State.FAILED,
                f"permission denied for {minutes} minutes (PERMISSION_RETRY_MINUTES), giving up: {problem}",
                now,
            )
        attempts = rollout.attempts + 1
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), PERMISSION_BACKOFF_CAP, since + budget - now)
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

    def _transition(self, rollout: Rollout, state: State, reason: str, now: dt.datetime) -> Rollout:
        if state.terminal and rollout.cleanup is None:
            rollout = replace(rollout, cleanup=Cleanup())  # whatever it leaves behind is cleaned up after it
        saved = self.ledger.save(replace(rollout, state=state, reason=reason), now)
        logger.info("rollout %s/%s is now %s: %s", rollout.plan.endpoint, rollout.plan.deployment, state.value, reason)
        self.notify(saved, state, reason)
        return saved

    def notify(self, rollout: Rollout, state: State, reason: str) -> None:
        """Send the transition's notification. Its failure is reported, and never undoes the transition."""
        self._send(rollout_notification(rollout, state, reason, rollout.logs, status_host=self._status_host), rollout)

    @property
    def _status_host(self) -> str:
        return self.deps.settings.status_host

    def _send(self, notification: Notification, rollout: Rollout) -> None:
        try:
            self.deps.notifier.send(notification)
        except Exception as err:
            logger.error(
                "notification %s for rollout %s/%s failed: %s",
                notification.type,
                rollout.plan.endpoint,
                rollout.plan.deployment,
                err,
            )


def _cleanup_due(rollouts: Iterable[Rollout], now: dt.datetime) -> bool:
    """Is cleanup owed by any of ``rollouts`` and not backing off?"""
    owed = [r.cleanup for r in rollouts if r.cleanup is not None]
    return bool(owed) and all(not c.next_attempt_at or now >= c.next_attempt_at for c in owed)
