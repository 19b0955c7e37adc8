"""The effect loop for one rollout: ask the transition function, record what it decided, carry out its effects
(writes fenced by the endpoint's lease), and feed each request's answer back in. It decides nothing itself."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.errors import describe_error
from app.platform.workspace import WorkspaceRef
from app.rollout.decide import effects as fx
from app.rollout.decide.effects import Answer, Decision
from app.rollout.decide.failure_policy import broken
from app.rollout.decide.failures import ErrorKind, Failure
from app.rollout.decide.transition import transition
from app.rollout.ledger.ledger import LeaseLost, StaleRollout
from app.rollout.run import telemetry
from app.rollout.run.failing import classify

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.model import Rollout
    from app.rollout.decide.policy import Policy
    from app.rollout.decide.seen import Observation
    from app.rollout.run.fencing import Fence
    from app.rollout.run.records import Recorder

logger = logging.getLogger(__name__)

#: Decisions for one rollout in one pass: a read (smoke, metrics, logs) answered, then a write answered.
MAX_DECISIONS = 6
#: The gate's outcomes as the telemetry counter names them.
GATE_OUTCOMES = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}


class EffectRunner:
    """Runs one rollout's decisions in one pass over its endpoint, under the pass's lease."""

    def __init__(self, deps: Deps, policy: Policy, fence: Fence, recorder: Recorder) -> None:
        self.deps = deps
        self.policy = policy
        self.fence = fence
        self.recorder = recorder
        #: Effects on the endpoint's other rollouts (retired, reinstated), for the pass to carry out.
        self.for_siblings: list[fx.Retire | fx.Reinstate] = []

    def run(self, rollout: Rollout, seen: Observation, gateway: AzureMl, deadline: float) -> tuple[Rollout, bool]:
        """Decide, record, carry out, feed back, until a decision asks for nothing more. Returns the rollout as
        recorded and whether a write went out."""
        wrote, action, reason = False, "", ""
        with telemetry.step_span(rollout, seen.siblings) as done:
            for _ in range(MAX_DECISIONS):
                seen = replace(seen, time_left=deadline - time.monotonic())
                decision = self._decide(rollout, seen)
                action, reason = action or decision.action, reason or decision.rollout.reason
                rollout = self._keep(rollout, decision)
                request = decision.request
                if request is None:
                    break
                answer = self._carry_out(request, rollout, seen, gateway)
                wrote = wrote or request.writes
                seen = replace(seen, answer=answer, wrote=seen.wrote or request.writes)
            done(rollout, action, reason)
        return rollout, wrote

    def _decide(self, rollout: Rollout, seen: Observation) -> Decision:
        now = self.deps.clock()
        try:
            return transition(rollout, seen, self.policy, now)
        except (LeaseLost, StaleRollout):
            raise
        except Exception as err:
            # One bad row (a hand edit, a tag the rules never met) is its own rollout's problem, not the endpoint's.
            logger.exception(
                "rollout %s/%s: deciding its next step raised", rollout.plan.endpoint, rollout.plan.deployment
            )
            failure = Failure(ErrorKind.INTERNAL, describe_error(err), "internal", f"{type(err).__name__}: {err}")
            return broken(rollout, seen, failure, self.policy, now)

    def _keep(self, before: Rollout, decision: Decision) -> Rollout:
        """Record the decision, tell people, and ask for the follow-ups it needs."""
        now = self.deps.clock()
        saved = self.recorder.keep(before, decision, now)
        for effect in decision.side_effects:
            if isinstance(effect, fx.FollowUpAfter):
                self.fence.followups.after_at(effect.kind, effect.at, now)
            elif isinstance(effect, fx.Retire | fx.Reinstate):
                self.for_siblings.append(effect)
        if decision.gate is not None:
            outcome = GATE_OUTCOMES[decision.gate.outcome.value]
            telemetry.gate_evaluated("metrics", outcome, saved.plan.endpoint)
            logger.info("rollout %s/%s gate: %s", saved.plan.endpoint, saved.plan.deployment, decision.gate.summary)
        return saved

    def _carry_out(self, request: fx.Request, rollout: Rollout, seen: Observation, gateway: AzureMl) -> Answer:
        """One request, its errors classified once (``failing.classify``); a lost lease or a stale row stops the
        pass."""
        plan = rollout.plan
        try:
            return self._send(request, rollout, seen, gateway)
        except (LeaseLost, StaleRollout):
            raise
        except Exception as err:
            failure = classify(err)
            logger.warning(
                "rollout %s/%s: %s failed (%s): %s",
                plan.endpoint,
                plan.deployment,
                type(request).__name__,
                failure.kind.value,
                failure.error,
            )
            return Answer(request, failure)

    def _send(self, request: fx.Request, rollout: Rollout, seen: Observation, gateway: AzureMl) -> Answer:
        plan, now = rollout.plan, self.deps.clock()
        if isinstance(request, fx.CreateEndpoint):
            self.fence.renew()
            gateway.create_endpoint(plan.endpoint)
        elif isinstance(request, fx.CreateDeployment):
            self.fence.renew()
            gateway.create_deployment(plan, now)
        elif isinstance(request, fx.PutTraffic):
            self.fence.send_traffic(gateway, plan.endpoint, plan.deployment, request.traffic, request.mirror)
        elif isinstance(request, fx.ReadMetrics):
            metrics = self.deps.metrics(WorkspaceRef.from_arm_id(plan.workspace_id))
            window = metrics.read_window(f"{plan.workspace_id}/onlineEndpoints/{plan.endpoint}", request.start, now)
            return Answer(request, window=window)
        elif isinstance(request, fx.RunSmoke):
            smoke = self.deps.smoke(gateway.workspace)
            return Answer(request, smoke=smoke.run(plan.endpoint, plan.deployment, request.sample, request.wait_s))
        elif isinstance(request, fx.FetchLogs):
            return Answer(request, logs=gateway.get_logs(plan.endpoint, plan.deployment))
        else:
            raise AssertionError(f"{type(request).__name__} is not sent for a rollout")
        logger.info("rollout %s/%s sent %s", plan.endpoint, plan.deployment, type(request).__name__)
        return Answer(request)
