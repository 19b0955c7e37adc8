"""Carries out one action of the step function on one rollout: a write under the lease, a wait, a bake, a finish."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.errors import is_retryable, status_code_of
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.naming import EndpointNameTaken
from app.rollout.decide.step import (
    WRITE_ACTIONS,
    Action,
    CreateDeployment,
    CreateEndpoint,
    Evaluate,
    Extend,
    Fail,
    Finish,
    Hold,
    Nothing,
    RollBack,
    SetTraffic,
    StartBake,
    Wait,
)
from app.rollout.ledger.ledger import LeaseLost, StaleRollout

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.model import EndpointView
    from app.rollout.run.fencing import Fence
    from app.rollout.run.records import Recorder
    from app.rollout.run.stepping import ProgressiveRunner

logger = logging.getLogger(__name__)


class ActionRunner:
    """Applies actions for one pass over an endpoint; returns each rollout as recorded afterwards."""

    def __init__(self, deps: Deps, fence: Fence, recorder: Recorder, progressive: ProgressiveRunner) -> None:
        self.deps = deps
        self.fence = fence
        self.recorder = recorder
        self.progressive = progressive

    def apply(self, rollout: Rollout, action: Action, view: EndpointView | None, gateway: AzureMl) -> Rollout:
        now = self.deps.clock()
        try:
            return self._apply(rollout, action, view, gateway, now)
        except (LeaseLost, StaleRollout):
            raise  # not this rollout's failure: the pass stops and the next one decides afresh
        except EndpointNameTaken as err:
            return self._rejected(rollout, err, now)
        except Exception as err:
            return self.recorder.failed_attempt(rollout, err, now)

    def _rejected(self, rollout: Rollout, err: EndpointNameTaken, now: dt.datetime) -> Rollout:
        # Not a failure of the rollout but of its plan: the user must choose another endpoint name.
        logger.error("rollout %s/%s rejected: %s", rollout.plan.endpoint, rollout.plan.deployment, err)
        return self.recorder.transition(replace(rollout, last_error=str(err)), State.REJECTED, str(err), now)

    def _apply(
        self, rollout: Rollout, action: Action, view: EndpointView | None, gateway: AzureMl, now: dt.datetime
    ) -> Rollout:
        if isinstance(action, Nothing):
            return rollout
        if isinstance(action, Wait):
            logger.info("rollout %s/%s waits: %s", rollout.plan.endpoint, rollout.plan.deployment, action.reason)
            if rollout.reason == action.reason and rollout.denied_since is None:
                return rollout
            return self.recorder.save(replace(rollout, reason=action.reason, denied_since=None), now)
        if isinstance(action, (StartBake, Extend, Hold, RollBack)):
            applied = self.progressive.apply(rollout, action, gateway, now)
            if isinstance(action, (StartBake, Extend)):
                self.fence.followups.after_bake(applied, now)
            return applied
        if isinstance(action, Evaluate):
            return self.recorder.save(replace(rollout, reason=action.reason), now)
        if isinstance(action, WRITE_ACTIONS):
            return self._write(rollout, action, view, gateway, now)
        if isinstance(action, Finish):
            return self._finish(rollout, action, now)
        if isinstance(action, Fail):
            return self.recorder.fail(rollout, action, gateway, now)
        raise AssertionError(f"unhandled action {action!r}")

    def _write(
        self,
        rollout: Rollout,
        action: CreateEndpoint | CreateDeployment | SetTraffic,
        view: EndpointView | None,
        gateway: AzureMl,
        now: dt.datetime,
    ) -> Rollout:
        # From here on a failure is the claimed rollout's: its row changed when it took the turn.
        rollout = self._claim_turn(rollout, now, view)
        try:
            sent = self._send(action, rollout, gateway, now)
        except (LeaseLost, StaleRollout):
            raise
        except EndpointNameTaken as err:
            return self._rejected(rollout, err, now)
        except Exception as err:
            if status_code_of(err) is None and is_retryable(err):
                return self._unanswered(rollout, err, now)
            return self.recorder.failed_attempt(rollout, err, now)
        logger.info("rollout %s/%s sent %s", rollout.plan.endpoint, rollout.plan.deployment, sent)
        retry = getattr(action, "retry", "")
        if isinstance(action, SetTraffic):
            rollout = self.progressive.stepped(rollout, action, now)
        return self.recorder.save(
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

    def _finish(self, rollout: Rollout, action: Finish, now: dt.datetime) -> Rollout:
        progress = replace(rollout.progress, requested="", paused=False)
        if action.gate is not None:
            progress = replace(progress, gate=action.gate.as_dict())
        facts = {"gate": action.gate.as_dict()} if action.gate is not None else None
        return self.recorder.transition(
            replace(rollout, attempts=0, next_attempt_at=None, last_error="", denied_since=None, progress=progress),
            action.state,
            action.reason,
            now,
            facts=facts,
        )

    def _send(
        self,
        action: CreateEndpoint | CreateDeployment | SetTraffic,
        rollout: Rollout,
        gateway: AzureMl,
        now: dt.datetime,
    ) -> str:
        plan = rollout.plan
        if isinstance(action, SetTraffic):
            self.fence.send_traffic(gateway, plan.endpoint, plan.deployment, action.traffic, action.mirror)
            return f"PUT endpoint {plan.endpoint} {action.reason}"
        self.fence.renew()
        if isinstance(action, CreateEndpoint):
            gateway.create_endpoint(plan.endpoint)
            self.fence.followups.after("endpoint")
            return f"PUT endpoint {plan.endpoint}"
        gateway.create_deployment(plan, now)
        self.fence.followups.after("deployment")
        return f"PUT deployment {plan.deployment} ({plan.instance_count} x {plan.instance_type})"

    def _unanswered(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
        """A write sent without an answer may have landed: no back-off, the next tick observes and decides."""
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            return self.recorder.failed_attempt(rollout, err, now)
        error = f"{type(err).__name__}: {err}"[:2000]
        logger.warning(
            "rollout %s/%s: a write got no answer (%s); the next tick observes what AML did",
            rollout.plan.endpoint,
            rollout.plan.deployment,
            error,
        )
        return self.recorder.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=None,
                last_error=error,
                reason="a write got no answer in time; its outcome is observed next tick",
            ),
            now,
        )

    def _claim_turn(self, rollout: Rollout, now: dt.datetime, view: EndpointView | None) -> Rollout:
        if rollout.state in (State.DEPLOYING, State.BAKING):
            return rollout
        # The split a rollback returns to: the endpoint's as the rollout takes its write turn.
        before = replace(
            rollout.progress,
            before_traffic=view.live_traffic() if view else {},
            before_mirror=view.live_mirror() if view else {},
        )
        return self.recorder.transition(
            replace(rollout, turn_taken_at=now, progress=before),
            State.DEPLOYING,
            "started: holds the endpoint's write turn",
            now,
        )
