"""The effect loop over one endpoint: under its lease, observe AML once, run each due rollout's decisions (the
transition function's), clean up; one write per pass at most."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

from app.platform.workspace import WorkspaceRef
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.effects import Answer, Observe
from app.rollout.decide.followup import TRAFFIC_WRITE
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.moves import on_sibling
from app.rollout.decide.policy import step_policy
from app.rollout.decide.seen import Observation
from app.rollout.ledger.ledger import Lease, LeaseLost, StaleRollout, ledger_of
from app.rollout.run.cleanup import EndpointCleanup, cleanup_due
from app.rollout.run.drift import TrafficJudge
from app.rollout.run.effects import EffectRunner
from app.rollout.run.failing import classify
from app.rollout.run.fencing import Fence
from app.rollout.run.followups import FollowUpPlan
from app.rollout.run.outcomes import Deferred, Note, Noted, PassItem, PassOutcome, Stepped
from app.rollout.run.records import Recorder
from app.rollout.run.triage import leaves_gate_to_tick

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.failures import Failure
    from app.rollout.decide.followup import FollowUp
    from app.rollout.decide.model import DeploymentView, EndpointView

#: States in which a rollout waits on an AML operation (or its turn) rather than on a bake or a person.
_WAITING_ON_AML = (State.PENDING, State.DEPLOYING)
logger = logging.getLogger(__name__)


class RolloutEngine:
    """Advances the rollouts of one endpoint at a time. One instance per invocation."""

    def __init__(self, deps: Deps, *, followup: FollowUp | None = None, gates_to_tick: bool = False) -> None:
        self.deps = deps
        #: The follow-up message this pass answers, if a follow-up (not the timer or an event) started it.
        self.followup = followup
        #: A gate due on the endpoint is left to the next tick's batch (a follow-up in a region the tick batches).
        self.gates_to_tick = gates_to_tick
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
                self.ledger.release_lease(one.fence.lease, self.deps.clock(), **one.kept())
            if one.followups.bake_end is not None:
                self._note_gate(workspace_id, endpoint, one.followups.bake_end)
            one.followups.send(workspace_id, endpoint, one.still_waiting())

    def _note_gate(self, workspace_id: str, endpoint: str, due: dt.datetime) -> None:
        """Tell the region's other follow-ups when this endpoint's gate falls due (best effort: without the note,
        their gates are read alone, as before)."""
        try:
            self.ledger.active.add(workspace_id, endpoint, self.deps.clock(), gate_due=due)
        except Exception as err:
            logger.warning("endpoint %s: its gate's time not noted on the active index (%s: %s)", endpoint,
                           type(err).__name__, err)  # fmt: skip


class EndpointPass:
    """One pass over one endpoint under its lease: observe once, judge the split, run each due rollout's decisions,
    then cleanup. The transition function decides; this carries out, one write per pass at most."""

    def __init__(self, engine: RolloutEngine, lease: Lease) -> None:
        deps = self.deps = engine.deps
        self.ledger, self.policy, self.recorder = engine.ledger, engine.policy, engine.recorder
        self.followups = FollowUpPlan(deps, engine.followup)
        self.gates_to_tick = engine.gates_to_tick
        self.fence = Fence(deps, engine.ledger, lease, self.followups)
        self.runner = EffectRunner(deps, engine.policy, self.fence, engine.recorder)
        #: The endpoint's rollouts, updated in place as the pass goes; the follow-ups look at them afterwards.
        self.rollouts: dict[str, Rollout] = {}
        self.busy = False
        self.observed: dict[str, object] = {}
        #: The observation stood on the deployments list kept from the last one (a traffic write's follow-up).
        self.reused_list = False
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
        if self.gates_to_tick and leaves_gate_to_tick(workspace_id, endpoint, due, now):
            # Read alone, the gate would cost its own Azure Monitor calls; the tick reads it with the region's others.
            self.done.append(Noted(Note.GATE_TO_TICK, f"{endpoint}: a gate is due; the next tick reads it in its "
                                   "region's batch"))  # fmt: skip
            return self.done
        gateway = self.deps.aml(WorkspaceRef.from_arm_id(workspace_id))
        known = self._known_deployments()
        try:
            view = gateway.observe(endpoint, known)
        except Exception as err:
            return self._unobserved(due, gateway, classify(err), deadline)
        self._observed(workspace_id, endpoint, view)
        judge = TrafficJudge(self.deps, self.ledger, self.fence, self.recorder, self.policy)
        verdict, lines = judge.judge(view, gateway, rollouts, due)
        done = self.done
        done.extend(Noted(Note.TRAFFIC, line) for line in lines)
        if verdict is not None and verdict.kind == "late":
            return done  # the restore (or its wait) is this pass's; the rollouts decide on a fresh observation
        self._cache_changed_split()
        wrote = self._step_each(due, view, gateway, deadline)
        if time.monotonic() <= deadline:
            cleanup = EndpointCleanup(self.deps, self.ledger, self.policy, self.fence, self.recorder)
            done.extend(Noted(Note.CLEANUP, line) for line in cleanup.run(rollouts, view, gateway, wrote))
        return done

    def _known_deployments(self) -> tuple[DeploymentView, ...] | None:
        """The deployments kept from the last observation, for a traffic write's follow-up: that write changed the
        split, not the deployments, so only the endpoint is read. Used once, then listed again."""
        came = self.followups.came
        if came is None or came.kind != TRAFFIC_WRITE:
            return None
        known = self.fence.lease.record.observed_deployments
        self.reused_list = known is not None
        return known

    def kept(self) -> dict[str, object]:
        """What the lease's release keeps of this pass's observation: the split, and the deployments list only when
        it was listed (not reused) and no write of this pass could have changed it (such a write's renewal already
        dropped the list from the row)."""
        if self.observed and (self.reused_list or self.fence.wrote_deployments):
            return {**self.observed, "observed_deployments": None}
        return self.observed

    def _unobserved(self, due: list[Rollout], gateway: AzureMl, failure: Failure, deadline: float) -> list[PassItem]:
        """The endpoint could not be read: each due rollout takes the failure in (its policy says what it means)."""
        if not due:
            logger.warning("endpoint (a write in doubt) not observed: %s", failure.error)
        record, now = self.fence.lease.record, self.deps.clock()
        last, intended = record.observed_traffic or {}, intent_rules.intended(record.intents, now)
        for rollout in due:
            siblings = [r for name, r in self.rollouts.items() if name != rollout.plan.deployment]
            answer = Answer(Observe(), failure)
            seen = Observation(
                None, siblings, observed=False, answer=answer, last_traffic=dict(last), intended=intended
            )
            updated, _ = self.runner.run(rollout, seen, gateway, deadline)
            self.rollouts[updated.plan.deployment] = updated
            self.done.append(Stepped.of(updated))
        return self.done

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
                "observed_deployments": view.deployments,
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
        """Each due rollout's decisions, the one holding the turn first. Returns whether a write went out."""
        rollouts, wrote = self.rollouts, False
        drift = self.fence.lease.record.drift is not None
        for rollout in sorted(due, key=lambda r: (r.state is not State.DEPLOYING, r.created_at)):
            if time.monotonic() > deadline:
                self.done.append(Deferred(rollout.plan.deployment))
                break
            current = rollouts[rollout.plan.deployment]
            siblings = [r for name, r in rollouts.items() if name != current.plan.deployment]
            intended = intent_rules.intended(self.fence.lease.record.intents, self.deps.clock())
            seen = Observation(view, siblings, drift=drift, wrote=wrote, intended=intended)
            updated, sent = self.runner.run(current, seen, gateway, deadline)
            wrote = wrote or sent
            rollouts[updated.plan.deployment] = updated
            self.done.append(Stepped.of(updated))
            self._siblings(updated)
        return wrote

    def _siblings(self, by: Rollout) -> None:
        """The effects ``by``'s decisions had on the endpoint's other rollouts: retired, or reinstated."""
        effects, self.runner.for_siblings = self.runner.for_siblings, []
        now = self.deps.clock()
        for effect in effects:
            for name, rollout in list(self.rollouts.items()):
                decision = on_sibling(rollout, effect, by, now)
                if decision is not None:
                    self.rollouts[name] = self.recorder.keep(rollout, decision, now)
