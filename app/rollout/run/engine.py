"""Applies the state machine: under an endpoint lease, observe AML once, take one action per rollout, record it."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

from app.platform.workspace import WorkspaceRef
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.step import (
    RETIRABLE_STATES,
    WRITE_ACTIONS,
    Action,
    Fail,
    Finish,
    Observation,
    RollBack,
    SetTraffic,
    Wait,
    step,
    step_policy,
)
from app.rollout.ledger.ledger import Lease, LeaseLost, StaleRollout, ledger_of
from app.rollout.run import telemetry
from app.rollout.run.actions import ActionRunner
from app.rollout.run.cleanup import EndpointCleanup, cleanup_due
from app.rollout.run.drift import TrafficJudge
from app.rollout.run.fencing import Fence
from app.rollout.run.followups import FollowUpPlan
from app.rollout.run.outcomes import Deferred, Note, Noted, PassItem, PassOutcome, Stepped
from app.rollout.run.records import Recorder
from app.rollout.run.stepping import ProgressiveRunner

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.followup import FollowUp
    from app.rollout.decide.model import EndpointView

#: States in which a rollout waits on an AML operation (or its turn) rather than on a bake or a person.
_WAITING_ON_AML = (State.PENDING, State.DEPLOYING)
logger = logging.getLogger(__name__)


class RolloutEngine:
    """Advances the rollouts of one endpoint at a time. One instance per invocation."""

    def __init__(self, deps: Deps, *, followup: FollowUp | None = None) -> None:
        self.deps = deps
        #: The follow-up message this pass answers, if a follow-up (not the timer or an event) started it.
        self.followup = followup
        self.ledger = ledger_of(deps)
        self.policy = step_policy(deps.settings)
        self.recorder = Recorder(deps, self.ledger)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = deps.settings.endpoint_lease_seconds

    def advance(self, workspace_id: str, endpoint: str, deadline: float) -> PassOutcome:
        """Take one step for every active rollout on the endpoint, and say what was done."""
        now = self.deps.clock()
        lease = self.ledger.acquire_lease(workspace_id, endpoint, self.owner, now, self.lease_seconds)
        if lease is None:
            return PassOutcome(
                endpoint, (Noted(Note.LEASE_HELD, f"{endpoint}: another instance is advancing this endpoint"),)
            )
        one = EndpointPass(self, lease)
        try:
            return PassOutcome(endpoint, tuple(one.run(workspace_id, endpoint, deadline)))
        except LeaseLost as err:
            logger.warning("endpoint %s: %s; no write sent, another instance carries on", endpoint, err)
            lost = Noted(Note.LEASE_LOST, f"{endpoint}: lease lost ({err}); no write sent")
            return PassOutcome(endpoint, (*one.done, lost))
        except StaleRollout as err:
            logger.warning("endpoint %s: %s; decided again from a fresh observation next time", endpoint, err)
            stale = Noted(Note.STALE, f"{endpoint}: {err}; decided again next time")
            return PassOutcome(endpoint, (*one.done, stale))
        finally:
            if not one.fence.lost:
                # The observation is cached on the endpoint's row for the status API.
                self.ledger.release_lease(one.fence.lease, self.deps.clock(), **one.observed)
            one.followups.send(workspace_id, endpoint, one.still_waiting())


class EndpointPass:
    """One pass over one endpoint under its lease: observe once, judge the split, one action per due rollout,
    then cleanup. At most one write to Azure ML per pass."""

    def __init__(self, engine: RolloutEngine, lease: Lease) -> None:
        deps = self.deps = engine.deps
        self.ledger, self.policy, self.recorder = engine.ledger, engine.policy, engine.recorder
        self.followups = FollowUpPlan(deps, engine.followup)
        self.fence = Fence(deps, engine.ledger, lease, self.followups)
        self.progressive = ProgressiveRunner(deps, engine.policy, engine.recorder, self.fence)
        self.actions = ActionRunner(deps, self.fence, engine.recorder, self.progressive)
        #: The endpoint's rollouts, updated in place as the pass goes; the follow-ups look at them afterwards.
        self.rollouts: dict[str, Rollout] = {}
        self.busy = False
        self.observed: dict[str, object] = {}
        #: What the pass did so far (kept when it stops early on a lost lease or a stale row).
        self.done: list[PassItem] = []

    def still_waiting(self) -> bool:
        """After this pass: is a rollout on the endpoint still waiting on AML (not on a bake or a person)?"""
        if self.busy:
            return True
        return any(r.state in _WAITING_ON_AML and not r.progress.paused for r in self.rollouts.values())

    def run(self, workspace_id: str, endpoint: str, deadline: float) -> list[PassItem]:
        rollouts = self.rollouts = {r.plan.deployment: r for r in self.ledger.endpoint_rollouts(workspace_id, endpoint)}
        now = self.deps.clock()
        due = [
            r
            for r in rollouts.values()
            if (not r.state.terminal or r.progress.requested) and not (r.next_attempt_at and now < r.next_attempt_at)
        ]
        watching = intent_rules.watching(self.fence.lease.record.intents, now)
        if not due and not watching and not cleanup_due(rollouts.values(), now):
            return []
        gateway = self.deps.aml(WorkspaceRef.from_arm_id(workspace_id))
        try:
            view = gateway.observe(endpoint)
        except Exception as err:
            # The same policy as for actions: back off and count transient errors, wait a bounded time for a
            # missing permission, fail on permanent ones. Cleanup simply tries again next tick.
            failed = [self.recorder.failed_attempt(rollout, err, now) for rollout in due]
            if not due:
                logger.warning("endpoint %s (a write in doubt) not observed: %s: %s", endpoint, type(err).__name__, err)
            return [Stepped.of(r) for r in failed]
        self._observed(workspace_id, endpoint, view)
        judge = TrafficJudge(self.deps, self.ledger, self.fence, self.recorder)
        verdict, lines = judge.judge(view, gateway, rollouts, due)
        done = self.done
        done.extend(Noted(Note.TRAFFIC, line) for line in lines)
        if verdict is not None and verdict.kind == "late":
            return done  # the restore was this pass's write; the rollouts decide on a fresh observation
        self._cache_changed_split()
        wrote = self._step_each(due, view, gateway, deadline)
        if time.monotonic() <= deadline and self.deps.settings.deploy_mode != "hold":
            cleanup = EndpointCleanup(self.deps, self.ledger, self.policy, self.fence, self.recorder)
            done.extend(Noted(Note.CLEANUP, line) for line in cleanup.run(rollouts, view, gateway, wrote))
        return done

    def _observed(self, workspace_id: str, endpoint: str, view: EndpointView | None) -> None:
        """Take in the observation: the records of the deployments AML shows, whether AML is busy, the split."""
        # The step also weighs the records of the deployments AML shows (supersede, cleanup, the owner of a
        # restored split); the endpoint's history of deleted deployments is not read. These come without logs.
        rollouts = self.rollouts
        shown = [d.name for d in view.deployments if d.name not in rollouts] if view else []
        rollouts.update((r.plan.deployment, r) for r in self.ledger.deployment_rollouts(workspace_id, endpoint, shown))
        self.busy = bool(view is not None and view.busy_reason)
        if view is not None:
            self.observed = {
                "observed_traffic": dict(view.traffic),
                "observed_mirror": dict(view.mirror_traffic),
                "observed_at": self.deps.clock(),
            }

    def _cache_changed_split(self) -> None:
        """Cache a split that changed since the last pass before any rollout row is written, not only at release:
        the status API reads the rollout rows and the endpoint's row apart, so a state this pass writes (canary,
        live) must never be read beside the split from before it. (After the drift judge: it reads the previous
        observation's time.)"""
        if not self.observed:
            return
        cached = self.fence.lease.record
        if (cached.observed_traffic, dict(cached.observed_mirror)) != (
            self.observed["observed_traffic"],
            self.observed["observed_mirror"],
        ):
            self.fence.update(**self.observed)

    def _step_each(self, due: list[Rollout], view: EndpointView | None, gateway: AzureMl, deadline: float) -> bool:
        """One decision and one action per due rollout, the one holding the turn first. Returns whether it wrote."""
        rollouts, wrote = self.rollouts, False
        for rollout in sorted(due, key=lambda r: (r.state is not State.DEPLOYING, r.created_at)):
            if time.monotonic() > deadline:
                self.done.append(Deferred(rollout.plan.deployment))
                break
            current = rollouts[rollout.plan.deployment]
            siblings = [r for name, r in rollouts.items() if name != current.plan.deployment]
            current, action = self._decide(current, Observation(view, siblings), gateway, deadline, wrote)
            with telemetry.step_span(current, action, siblings) as step_done:
                updated = self.actions.apply(current, action, view, gateway)
                step_done(updated)
            wrote = wrote or bool(updated.actions != current.actions)
            rollouts[updated.plan.deployment] = updated
            self.done.append(Stepped.of(updated))
            applied = (
                updated.actions != current.actions
                if isinstance(action, (SetTraffic, RollBack))
                else updated.state is not current.state
            )
            if isinstance(action, (SetTraffic, Finish)) and action.retire and applied:
                self._retire(action.retire, updated)
        return wrote

    def _decide(
        self, current: Rollout, seen: Observation, gateway: AzureMl, deadline: float, wrote: bool
    ) -> tuple[Rollout, Action]:
        """The step's action for ``current``, after the reads it needs; held back when it may not write now."""
        try:
            action = step(current, seen, self.deps.clock(), self.policy)
            # Reads and the smoke test happen here, between decisions; each ends in the step's next action.
            current, action = self.progressive.prepare(current, action, seen, gateway, deadline)
        except (LeaseLost, StaleRollout):
            raise
        except Exception as err:
            # One bad row (a hand edit, a tag the rules never met) fails its own rollout, not the endpoint.
            logger.exception(
                "rollout %s/%s: deciding its next step raised", current.plan.endpoint, current.plan.deployment
            )
            action = Fail(f"internal error while deciding the next step: {type(err).__name__}: {err}")
        if wrote and isinstance(action, (*WRITE_ACTIONS, RollBack)):
            action = Wait("another write went to this endpoint in this pass")
        if isinstance(action, (SetTraffic, RollBack)) and self.fence.lease.record.drift:
            action = Wait(
                "traffic drifted from the app's split (changed outside the app); no traffic write until "
                "an operator action or a new rollout on this endpoint (docs/operations.md)"
            )
        if self.deps.settings.deploy_mode == "hold" and isinstance(action, (*WRITE_ACTIONS, RollBack)):
            action = Wait("DEPLOY_MODE=hold: no writes to Azure ML; the rollout resumes here when set to apply")
        return current, action

    def _retire(self, names: tuple[str, ...], by: Rollout) -> None:
        """Mark the earlier canaries and mirrors that ``by``'s traffic write retired as superseded."""
        for name, rollout in list(self.rollouts.items()):
            if name.lower() in names and rollout.state in RETIRABLE_STATES:
                reason = f"retired: version {by.plan.model_version} ({by.plan.deployment}) took over its traffic"
                self.rollouts[name] = self.recorder.transition(rollout, State.SUPERSEDED, reason, self.deps.clock())
