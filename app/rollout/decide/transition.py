"""The rollout's whole life as one function (pure): record + what was seen + policy + time → next record + effects.

``transition`` takes the recorded rollout, the observation (the endpoint, its other rollouts, whether a write went
out this pass, whether the lease row flags drift, and the answer to the last request: a write's outcome, a metric
window, a smoke result, container logs, or the failure of any of them), the policy (``DEPLOY_MODE``, budgets, gates)
and the time. It returns a ``Decision``: the next record and the effects, the request (if any) last. The effect loop
(``app/rollout/run``) carries them out and feeds the request's answer back in; it decides nothing itself.

The parts: the rules choose an action (``step.py``), the moves turn it into a record and effects under the guards
of one write per pass, the kill switch and drift (``moves.py``), answers are taken in here, and failures mean what
``failure_policy.py`` says. Every change of state is a row of ``table.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from app.rollout.decide import effects as fx
from app.rollout.decide.effects import Answer, Decision, Notice, Notify, Purpose
from app.rollout.decide.failure_policy import after_failure
from app.rollout.decide.gate import GateResult, MetricWindow, evaluate_gate
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.moves import apply, changed, smoked, waited
from app.rollout.decide.policy import Policy
from app.rollout.decide.seen import Observation
from app.rollout.decide.step import step
from app.rollout.decide.table import Trigger

#: Decisions chained in one call (an answer taken in, then the rules again): smoke → write, logs → fail.
MAX_CHAIN = 4
#: The follow-up each write asks for: when its operation should be done.
FOLLOW_UP = {fx.CreateEndpoint: "endpoint", fx.CreateDeployment: "deployment", fx.PutTraffic: "traffic"}


def transition(rollout: Rollout, seen: Observation, policy: Policy, now: dt.datetime) -> Decision:
    """The next record of ``rollout`` and the effects that go with it. Pure: no I/O, no clock, no randomness."""
    answer = seen.answer
    if answer is None:
        first = decide(rollout, seen, policy, now)
    elif answer.failure is not None:
        first = after_failure(rollout, seen, answer, policy, now)
    else:
        first = _answered(rollout, seen, answer, policy, now)
    return _chain(first, replace(seen, answer=None), policy, now)


def decide(
    rollout: Rollout, seen: Observation, policy: Policy, now: dt.datetime, gate: GateResult | None = None
) -> Decision:
    """The rules' action for ``rollout``, as a record and effects."""
    action = step(rollout, seen, now, policy, gate)
    return replace(apply(rollout, action, seen, policy, now), action=type(action).__name__)


def _chain(decision: Decision, seen: Observation, policy: Policy, now: dt.datetime) -> Decision:
    """Decide again while a decision changed what the rules see (a smoke result, logs, a verdict taken in)."""
    effects, gate, action = list(decision.effects), decision.gate, decision.action
    for _ in range(MAX_CHAIN):
        if not decision.again:
            break
        assert decision.request is None, "a decision decided again asks for nothing first"
        decision = decide(decision.rollout, seen, policy, now, decision.gate)
        effects.extend(decision.effects)
        action = action or decision.action
    if decision.again:
        decision = waited(decision.rollout, "decided again too many times in one pass; next pass")
    return replace(decision, effects=tuple(effects), gate=gate or decision.gate, again=False, action=action)


def _answered(rollout: Rollout, seen: Observation, answer: Answer, policy: Policy, now: dt.datetime) -> Decision:
    """A request that succeeded: record what it did or read, and decide again where the rules go on."""
    request = answer.request
    if isinstance(request, fx.PutTraffic) and request.purpose is Purpose.ROLLBACK:
        return _rolled_back(rollout, request)
    if isinstance(request, fx.CreateEndpoint | fx.CreateDeployment | fx.PutTraffic):
        return _written(rollout, request)
    if isinstance(request, fx.ReadMetrics):
        assert answer.window is not None
        gate = judge(rollout, seen, answer.window, policy, now)
        progress = replace(rollout.progress, reads_failing_since=None)
        failing = rollout.progress.reads_failing_since is not None
        record = replace(rollout, progress=progress, attempts=0 if failing else rollout.attempts)
        return Decision(record, gate=gate, again=True)
    if isinstance(request, fx.RunSmoke):
        assert answer.smoke is not None
        result = answer.smoke
        if result.skipped:  # cut short by the pass's budget: no verdict, sent again next pass
            return waited(rollout, result.reason)
        record = smoked(
            rollout, {**result.as_dict(), "sample": request.sample.source, "at": now.isoformat()}, result.reason
        )
        facts = {"smoke": record.progress.smoke}
        notes = (Notify(Notice.SMOKE_PASSED, result.reason, facts, occurrence="smoke"),) if result.passed else ()
        return Decision(record, notes, again=True)
    if isinstance(request, fx.FetchLogs):
        return Decision(replace(rollout, logs=answer.logs or "(no container logs)"), again=True)
    raise AssertionError(f"{type(request).__name__} has no answer to take in")


def judge(rollout: Rollout, seen: Observation, window: MetricWindow, policy: Policy, now: dt.datetime) -> GateResult:
    """The gate's verdict on the window: the new deployment against the stable ones the endpoint shows."""
    plan, view = rollout.plan, seen.endpoint
    stable = sorted(name for name in (view.live_traffic() if view else {}) if name != plan.deployment.lower())
    gate, notes = policy.gate.tightened(plan.max_error_rate, plan.max_p99_ms)
    return evaluate_gate(window, plan.deployment, stable, gate, now, notes)


def _written(rollout: Rollout, request: fx.CreateEndpoint | fx.CreateDeployment | fx.PutTraffic) -> Decision:
    """A write went out: record it, and the step it set; a promotion on evidence and a retirement are told."""
    plan = rollout.plan
    if isinstance(request, fx.CreateEndpoint):
        sent, retry = f"PUT endpoint {plan.endpoint}", ""
    elif isinstance(request, fx.CreateDeployment):
        sent, retry = f"PUT deployment {plan.deployment} ({plan.instance_count} x {plan.instance_type})", request.retry
    else:
        sent, retry = (
            f"PUT endpoint {plan.endpoint} {request.reason}",
            "endpoint" if request.purpose is Purpose.RECOVER else "",
        )
    record = replace(
        rollout,
        reason=f"sent {sent}",
        actions=(*rollout.actions, sent),
        retries=(*rollout.retries, retry) if retry else rollout.retries,
        attempts=0,
        next_attempt_at=None,
        last_error="",
        error_source="",
        denied_since=None,
    )
    effects: list[fx.Effect] = [fx.FollowUpAfter(FOLLOW_UP[type(request)])]
    if isinstance(request, fx.PutTraffic) and request.purpose is Purpose.STEP:
        record, told = _stepped(record, request)
        effects.extend(told)
    record, _ = changed(record, Trigger.WRITE_SENT, record.reason)
    return Decision(record, tuple(effects), Trigger.WRITE_SENT)


def _stepped(rollout: Rollout, request: fx.PutTraffic) -> tuple[Rollout, list[fx.Effect]]:
    """A step's traffic was sent: record the step (its bake starts when the split is seen in place)."""
    progress, told = rollout.progress, list[fx.Effect]()
    if request.step != progress.step:
        progress = replace(progress, step=request.step, bake_started_at=None, extensions=0)
    if request.retire:
        progress = replace(progress, retired=tuple(sorted({*progress.retired, *request.retire})))
        told.append(fx.Retire(request.retire, rollout.plan.deployment))
    if request.gate is not None and request.step is not None:
        evidence = request.gate.as_dict()
        progress = replace(progress, gate=evidence)
        facts = {"gate": evidence, "step": request.step + 1, "share": rollout.plan.steps[request.step]}
        reason = f"step promoted on evidence: {request.reason}"
        told.append(Notify(Notice.STEP_PROMOTED, reason, facts, occurrence=f"step{request.step}"))
    return replace(rollout, progress=progress), told


def _rolled_back(rollout: Rollout, request: fx.PutTraffic) -> Decision:
    """The rollback's one write went out: ``rolled_back``, with the split it restored and the gate it rests on."""
    plan, progress = rollout.plan, rollout.progress
    sent = f"PUT endpoint {plan.endpoint} {request.reason}"
    facts: dict[str, object] = {"traffic": dict(request.traffic), "mirror": dict(request.mirror)}
    if progress.gate is not None and (request.gate is not None or progress.gate.get("outcome") == "fail"):
        facts["gate"] = progress.gate  # the verdict it carries out (a passed gate of an earlier step is no reason)
    record = replace(
        rollout,
        progress=replace(progress, requested="", paused=False, held=False),
        actions=(*rollout.actions, sent),
        attempts=0,
        next_attempt_at=None,
        last_error="",
    )
    record, notes = changed(record, Trigger.ROLLED_BACK, request.reason, facts=facts)
    effects: tuple[fx.Effect, ...] = (*notes, fx.FollowUpAfter("traffic"))
    # The earlier canaries and mirrors this rollout retired, that the restored split serves again, are theirs again.
    back = {
        name: State.CANARY if request.traffic.get(name) else State.DARK
        for name in progress.retired
        if request.traffic.get(name) or request.mirror.get(name)
    }
    if back:
        effects = (*effects, fx.Reinstate(back, plan.deployment))
    return Decision(record, effects, Trigger.ROLLED_BACK)
