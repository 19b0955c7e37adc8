"""Carries out the progressive-delivery actions of ``step``: the smoke test, the gate's reads, bakes, rollbacks."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.workspace import WorkspaceRef
from app.rollout.decide.actions import Action, Evaluate, Extend, Hold, RollBack, SetTraffic, StartBake, Wait
from app.rollout.decide.gate import evaluate_gate, policy_from_settings
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.policy import Policy
from app.rollout.decide.smoke import choose_sample, no_sample
from app.rollout.decide.step import Observation, failure, step
from app.rollout.run import telemetry
from app.rollout.run.notifications import GATE_INCONCLUSIVE, SMOKE_PASSED, STEP_PROMOTED

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.gate import GateResult
    from app.rollout.run.fencing import Fence
    from app.rollout.run.records import Recorder

logger = logging.getLogger(__name__)

#: The gate's outcomes as the telemetry counter names them.
GATE_OUTCOMES = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}

#: A gate decision leads to at most this many more decisions in one pass (evaluate → advance).
MAX_DECISIONS = 3
#: Less time than this left in the pass: the smoke test waits for the next one.
MIN_SMOKE_WAIT_S = 2.0


class ProgressiveRunner:
    """Progressive delivery's effects: everything between one decision of ``step`` and the next."""

    def __init__(self, deps: Deps, policy: Policy, recorder: Recorder, fence: Fence) -> None:
        self.deps = deps
        self.policy = policy
        self.recorder = recorder
        self.fence = fence

    # ----------------------------------------------------------------------------------------- before a decision

    def prepare(
        self, rollout: Rollout, action: Action, seen: Observation, gateway: AzureMl, deadline: float
    ) -> tuple[Rollout, Action]:
        """Run what ``action`` needs first (the smoke test, the gate's metric reads) and decide again."""
        for _ in range(MAX_DECISIONS):
            if isinstance(action, SetTraffic) and action.smoke:
                rollout, action = self._smoke(rollout, action, seen, gateway, deadline)
                if isinstance(action, SetTraffic):
                    return rollout, replace(action, smoke=False)
                return rollout, action
            if not isinstance(action, Evaluate):
                return rollout, action
            gate = self._evaluate(rollout, seen)
            action = step(rollout, seen, self.deps.clock(), self.policy, gate)
        return rollout, action

    def _smoke(
        self, rollout: Rollout, action: SetTraffic, seen: Observation, gateway: AzureMl, deadline: float
    ) -> tuple[Rollout, Action]:
        """One sample request to the new deployment alone; its result goes on the row before any traffic moves."""
        plan, settings, now = rollout.plan, self.deps.settings, self.deps.clock()
        sample = choose_sample(plan.smoke_request, None)
        if sample is None:
            result, source = no_sample(settings.smoke_required), ""
        else:
            if settings.deploy_mode == "hold":
                return rollout, Wait("DEPLOY_MODE=hold: the smoke test waits, like every write")
            # The smoke call fits in this invocation's budget: it waits at most what is left of it, and a call cut
            # short by the budget (not by SMOKE_TIMEOUT_SECONDS) is no verdict: the next pass sends it again.
            left = deadline - time.monotonic()
            if left < MIN_SMOKE_WAIT_S:
                return rollout, Wait("smoke test deferred to the next pass: this pass's time budget is spent")
            result = self.deps.smoke(gateway.workspace).run(plan.endpoint, plan.deployment, sample, left)
            source = sample.source
            if result.skipped:
                return rollout, Wait(result.reason)
        record = {**result.as_dict(), "sample": source, "at": now.isoformat()}
        rollout = self.recorder.save(
            replace(rollout, progress=replace(rollout.progress, smoke=record), reason=result.reason), now
        )
        if not result.passed:
            view = seen.endpoint
            mine = view.deployment(plan.deployment) if view else None
            return rollout, failure(result.reason, view, mine, self.policy)
        if not result.skipped:
            self.recorder.notify(
                rollout, rollout.state, result.reason, kind=SMOKE_PASSED, facts={"smoke": record}, occurrence="smoke"
            )
        return rollout, action

    def _evaluate(self, rollout: Rollout, seen: Observation) -> GateResult:
        """Read the bake window's metrics (two ARM reads) and judge the new deployment."""
        plan, progress, now = rollout.plan, rollout.progress, self.deps.clock()
        assert progress.bake_started_at is not None
        view = seen.endpoint
        stable = sorted(name for name in (view.live_traffic() if view else {}) if name != plan.deployment.lower())
        policy, notes = policy_from_settings(self.deps.settings).tightened(plan.max_error_rate, plan.max_p99_ms)
        window = self.deps.metrics(WorkspaceRef.from_arm_id(plan.workspace_id)).read_window(
            f"{plan.workspace_id}/onlineEndpoints/{plan.endpoint}", progress.bake_started_at, now
        )
        result = evaluate_gate(window, plan.deployment, stable, policy, now, notes)
        logger.info("rollout %s/%s gate: %s", plan.endpoint, plan.deployment, result.summary)
        telemetry.gate_evaluated("metrics", GATE_OUTCOMES[result.outcome.value], plan.endpoint)
        return result

    # ------------------------------------------------------------------------------------------ after a decision

    def stepped(self, rollout: Rollout, action: SetTraffic, now: dt.datetime) -> Rollout:
        """A step's traffic write was sent: record the step (its bake starts when the write is seen in place)."""
        if action.step is None:
            return rollout
        progress = rollout.progress
        if action.step != progress.step:
            progress = replace(progress, step=action.step, bake_started_at=None, extensions=0)
        if action.gate is not None:
            evidence = action.gate.as_dict()
            progress = replace(progress, gate=evidence)
            promoted = replace(rollout, progress=progress)
            self.recorder.notify(
                promoted,
                rollout.state,
                f"step promoted on evidence: {action.reason}",
                kind=STEP_PROMOTED,
                facts={"gate": evidence, "step": action.step + 1, "share": rollout.plan.steps[action.step]},
                occurrence=f"step{action.step}",
            )
        return replace(rollout, progress=progress)

    def apply(
        self, rollout: Rollout, action: StartBake | Extend | Hold | RollBack, gateway: AzureMl, now: dt.datetime
    ) -> Rollout:
        ledger = self.recorder
        if isinstance(action, StartBake):
            progress = replace(rollout.progress, step=action.step, bake_started_at=now, extensions=0)
            baking = replace(rollout, progress=progress)
            if rollout.state is State.BAKING:
                return ledger.save(replace(baking, reason=action.reason), now)
            return self.recorder.transition(baking, State.BAKING, action.reason, now)
        if isinstance(action, Extend):
            progress = replace(rollout.progress, extensions=action.extensions, gate=action.gate.as_dict())
            return ledger.save(replace(rollout, progress=progress, reason=action.reason), now)
        if isinstance(action, Hold):
            if rollout.reason == action.reason:
                return rollout
            evidence = action.gate.as_dict()
            held = ledger.save(
                replace(rollout, progress=replace(rollout.progress, gate=evidence), reason=action.reason), now
            )
            self.recorder.notify(
                held,
                held.state,
                action.reason,
                kind=GATE_INCONCLUSIVE,
                facts={"gate": evidence},
                occurrence=f"hold{rollout.progress.step}",
            )
            return held
        return self._roll_back(rollout, action, gateway, now)

    def _roll_back(self, rollout: Rollout, action: RollBack, gateway: AzureMl, now: dt.datetime) -> Rollout:
        """One traffic write (fenced, recorded as an intent), then ``rolled_back`` with the evidence."""
        plan = rollout.plan
        self.fence.send_traffic(gateway, plan.endpoint, plan.deployment, action.traffic, action.mirror)
        sent = f"PUT endpoint {plan.endpoint} {action.reason}"
        progress = replace(rollout.progress, requested="", paused=False)
        facts: Mapping[str, object] = {"traffic": dict(action.traffic), "mirror": dict(action.mirror)}
        if action.gate is not None:
            progress = replace(progress, gate=action.gate.as_dict())
            facts = {**facts, "gate": action.gate.as_dict()}
        logger.warning("rollout %s/%s %s", plan.endpoint, plan.deployment, action.reason)
        return self.recorder.transition(
            replace(
                rollout,
                progress=progress,
                actions=(*rollout.actions, sent),
                attempts=0,
                next_attempt_at=None,
                last_error="",
            ),
            State.ROLLED_BACK,
            action.reason,
            now,
            facts=facts,
        )
