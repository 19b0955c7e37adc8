"""Applies the state machine: under an endpoint lease, observe AML once, take one action per rollout, record it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from shared import telemetry
from shared.errors import is_retryable, status_code_of
from shared.rollout.factories import ledger_of, policy_of
from shared.rollout.model import Rollout, State
from shared.rollout.naming import EndpointNameTaken
from shared.rollout.notifications import rollout_notification
from shared.rollout.step import (
    WRITE_ACTIONS,
    Action,
    CreateDeployment,
    CreateEndpoint,
    Fail,
    Finish,
    Nothing,
    Observation,
    SetTraffic,
    Wait,
    step,
)
from shared.workspace import WorkspaceRef

if TYPE_CHECKING:
    from shared.aml import AmlGateway
    from shared.deps import Deps
    from shared.rollout.model import EndpointView

logger = logging.getLogger(__name__)

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=10)


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
        if not due:
            return []
        gateway = self.deps.aml(WorkspaceRef.from_arm_id(workspace_id))
        try:
            view = gateway.observe(endpoint)
        except Exception as err:
            # The same policy as for actions: back off and count transient errors, fail on permanent ones
            # (a 403 from a missing role must not leave rollouts pending forever).
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
            if wrote and (isinstance(action, WRITE_ACTIONS) or getattr(action, "delete", None)):
                action = Wait("another write went to this endpoint in this pass")
            with telemetry.step_span(current, action, siblings) as step_done:
                updated = self._apply(current, action, view, gateway)
                step_done(updated)
            wrote = wrote or bool(updated.actions != current.actions)
            rollouts[updated.plan.deployment] = updated
            lines.append(f"{updated.plan.deployment}: {updated.state.value} ({updated.reason})")
        return lines

    def _apply(self, rollout: Rollout, action: Action, view: EndpointView | None, gateway: AmlGateway) -> Rollout:
        plan, now = rollout.plan, self.deps.clock()
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        try:
            if isinstance(action, Nothing):
                return rollout
            if isinstance(action, Wait):
                logger.info("%s waits: %s", label, action.reason)
                if rollout.reason == action.reason:
                    return rollout
                return self.ledger.save(replace(rollout, reason=action.reason), now)
            if isinstance(action, WRITE_ACTIONS):
                rollout = self._claim_turn(rollout, now)
                sent = self._write(action, rollout, gateway, now)
                logger.info("%s sent %s", label, sent)
                return self.ledger.save(
                    replace(
                        rollout,
                        reason=f"sent {sent}",
                        actions=(*rollout.actions, sent),
                        attempts=0,
                        next_attempt_at=None,
                        last_error="",
                    ),
                    now,
                )
            if isinstance(action, Finish):
                actions = rollout.actions
                if action.delete:
                    gateway.delete_deployment(plan.endpoint, action.delete)
                    actions = (*actions, f"DELETE deployment {action.delete}")
                return self._transition(
                    replace(rollout, actions=actions, attempts=0, next_attempt_at=None),
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
        return self._transition(rollout, State.DEPLOYING, "started: holds the endpoint's write turn", now)

    def _fail(self, rollout: Rollout, action: Fail, gateway: AmlGateway, now: dt.datetime) -> Rollout:
        plan, logs, reason, actions = rollout.plan, "", action.reason, rollout.actions
        if action.fetch_logs:
            try:
                logs = gateway.get_logs(plan.endpoint, plan.deployment)
            except Exception as err:
                logs = f"(container logs unavailable: {type(err).__name__}: {err})"
        if action.delete:
            try:
                gateway.delete_deployment(plan.endpoint, action.delete)
                actions = (*actions, f"DELETE deployment {action.delete}")
            except Exception as err:
                reason = f"{reason} (the delete failed and is left to the operator: {type(err).__name__})"
        return self._transition(replace(rollout, logs=logs, actions=actions), State.FAILED, reason, now)

    def _failed_attempt(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
        plan, status = rollout.plan, status_code_of(err)
        error = f"{type(err).__name__}: {err}"[:2000]
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        if status == 409:
            # One operation at a time per endpoint: a 409 is waited out, never failed on.
            logger.info("%s: AML answered 409 (busy); will try again next tick", label)
            return self.ledger.save(replace(rollout, reason="waiting: AML answered 409 Conflict (busy)"), now)
        if not is_retryable(err):
            logger.error("%s failed permanently: %s", label, error)
            return self._transition(replace(rollout, last_error=error), State.FAILED, f"AML refused: {error}", now)
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error("%s failed after %d attempts: %s", label, attempts, error)
            return self._transition(
                replace(rollout, attempts=attempts, last_error=error),
                State.FAILED,
                f"gave up after {attempts} failed attempts: {error}",
                now,
            )
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
        logger.warning("%s attempt %d failed, retrying after %s: %s", label, attempts, delay, error)
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=now + delay,
                last_error=error,
                reason=f"retrying after a transient error (attempt {attempts})",
            ),
            now,
        )

    def _transition(self, rollout: Rollout, state: State, reason: str, now: dt.datetime) -> Rollout:
        saved = self.ledger.save(replace(rollout, state=state, reason=reason), now)
        telemetry.rollout_transitioned(saved, now)
        logger.info("rollout %s/%s is now %s: %s", rollout.plan.endpoint, rollout.plan.deployment, state.value, reason)
        self.notify(saved, state, reason)
        return saved

    def notify(self, rollout: Rollout, state: State, reason: str) -> None:
        """Send the transition's notification. Its failure is reported, and never undoes the transition."""
        try:
            self.deps.notifier.send(
                rollout_notification(rollout, state, reason, rollout.logs, status_host=self.deps.settings.status_host)
            )
        except Exception as err:
            logger.error(
                "notification for rollout %s/%s (%s) failed: %s",
                rollout.plan.endpoint,
                rollout.plan.deployment,
                state.value,
                err,
            )
