"""What each action the rules choose records, and which effects it asks for (pure).

One write per pass, the kill switch (``DEPLOY_MODE=hold``) and the freeze on drift are decided here, for every
write: a write that may not go out now becomes a wait whose reason says why. A rollback held back is recorded
(``requested``) and reported once, so it is carried out as soon as the write may go out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace

from app.rollout.decide import effects as fx
from app.rollout.decide.actions import (
    Action,
    Approved,
    AwaitApproval,
    CreateDeployment,
    CreateEndpoint,
    DropRequest,
    Evaluate,
    Extend,
    Fail,
    Finish,
    Hold,
    Nothing,
    RollBack,
    SetTraffic,
    StartBake,
    Stuck,
    Wait,
)
from app.rollout.decide.effects import Decision, Notice, Notify, Purpose
from app.rollout.decide.gate import GateResult, Outcome
from app.rollout.decide.model import Cleanup, Rollout, State
from app.rollout.decide.policy import Policy
from app.rollout.decide.seen import Observation
from app.rollout.decide.smoke import choose_sample, no_sample
from app.rollout.decide.stepping import bake_deadline
from app.rollout.decide.table import Trigger, target
from app.rollout.decide.traffic import RETIRABLE_STATES

#: Less time than this left in the pass: the smoke test waits for the next one.
MIN_SMOKE_WAIT_S = 2.0
DRIFT_HOLD = (
    "traffic drifted from the app's split (changed outside the app); no traffic write until an operator action or "
    "a new rollout on this endpoint (docs/operations.md)"
)
KILL_SWITCH = "DEPLOY_MODE=hold: no writes to Azure ML; the rollout resumes here when set to apply"
ONE_WRITE = "another write went to this endpoint in this pass"


def changed(
    rollout: Rollout,
    trigger: Trigger,
    reason: str,
    *,
    wanted: State | None = None,
    notice: Notice = Notice.STATE,
    facts: Mapping[str, object] | None = None,
    occurrence: str = "",
) -> tuple[Rollout, tuple[Notify, ...]]:
    """``rollout`` after the table's row for ``trigger``; a change of state is notified (once: it happens once;
    ``occurrence`` tells apart a state entered again without a retry, by a retirement or a reinstatement)."""
    state = target(rollout.state, trigger, wanted)
    record = replace(rollout, state=state, reason=reason)
    if state.terminal and record.cleanup is None:
        record = replace(record, cleanup=Cleanup())  # whatever it leaves behind is cleaned up after it
    if state is rollout.state and notice is Notice.STATE:
        return record, ()
    return record, (Notify(notice, reason, dict(facts or {}), occurrence),)


def waited(rollout: Rollout, reason: str) -> Decision:
    """Nothing to do now; the reason says why (recorded only when it changes)."""
    if rollout.reason == reason and rollout.denied_since is None:
        return Decision(rollout)
    return Decision(replace(rollout, reason=reason, denied_since=None))


def blocked(seen: Observation, policy: Policy, *, traffic: bool) -> str:
    """Why a write may not go out now, or "": one write per endpoint per pass, the kill switch, drift (traffic)."""
    if seen.wrote:
        return ONE_WRITE
    if not policy.writes:
        return KILL_SWITCH
    if traffic and seen.drift:
        return DRIFT_HOLD
    return ""


def apply(rollout: Rollout, action: Action, seen: Observation, policy: Policy, now: dt.datetime) -> Decision:
    """The record and the effects of ``action``, chosen by the rules for ``rollout``."""
    if isinstance(action, Nothing):
        return Decision(rollout)
    if isinstance(action, Wait):
        return waited(rollout, action.reason)
    if isinstance(action, CreateEndpoint | CreateDeployment | SetTraffic):
        return _write(rollout, action, seen, policy, now)
    if isinstance(action, StartBake):
        return _bake(rollout, action, seen, now)
    if isinstance(action, Evaluate):
        assert rollout.progress.bake_started_at is not None
        return Decision(replace(rollout, reason=action.reason), (fx.ReadMetrics(rollout.progress.bake_started_at),))
    if isinstance(action, Extend | Hold):
        return _gate_held(rollout, action, now)
    if isinstance(action, RollBack):
        return _roll_back(rollout, action, seen, policy)
    if isinstance(action, Finish):
        return _finish(rollout, action, seen)
    if isinstance(action, Fail):
        return _fail(rollout, action)
    if isinstance(action, Stuck):
        return _stuck(rollout, action.reason)
    if isinstance(action, AwaitApproval):
        return _await_approval(rollout, action.reason, now)
    if isinstance(action, Approved):
        # Back in the queue for the turn (its wait for people is no time of the rollout's own); decided again at
        # once, so the first step goes out in this pass when the turn is free. The approval itself was told when given.
        kept = rollout.progress.requested if rollout.progress.requested == "promote" else ""  # a promote follows
        progress = replace(rollout.progress, requested=kept)
        record, _ = changed(replace(rollout, progress=progress, turn_taken_at=None), Trigger.APPROVED, action.reason)
        return Decision(record, (), Trigger.APPROVED, again=True)
    assert isinstance(action, DropRequest), f"unhandled action {action!r}"
    record = replace(rollout, reason=action.reason, progress=replace(rollout.progress, requested=""))
    return Decision(record, (Notify(Notice.STUCK, action.reason, severity="error", occurrence=f"drop@{now}"),))


def _write(
    rollout: Rollout,
    action: CreateEndpoint | CreateDeployment | SetTraffic,
    seen: Observation,
    policy: Policy,
    now: dt.datetime,
) -> Decision:
    """A write: held back when it may not go out now, smoke-tested first when it is the first step's, and sent
    by a rollout that holds the endpoint's write turn (it takes it with its first write)."""
    why = blocked(seen, policy, traffic=isinstance(action, SetTraffic))
    if why:
        return waited(rollout, why)
    record, notes = rollout, tuple[Notify, ...]()
    if isinstance(action, SetTraffic) and action.smoke:
        smoked = _smoke(rollout, seen, policy, now)
        if isinstance(smoked, Decision):
            return smoked
        record, notes = smoked
    if isinstance(action, SetTraffic) and action.approval:  # smoke-tested (or skipped): no traffic before approval
        awaited = _await_approval(record, "smoke test passed: awaits an operator's approval before any traffic", now)
        return replace(awaited, effects=(*notes, *awaited.effects))
    if record.state is State.PENDING:
        # Taken again after an approval: told again (the first time was before the wait for people).
        again = "approved" if record.progress.approval_asked_at is not None else ""
        record, taken = changed(
            replace(record, turn_taken_at=now),
            Trigger.TURN_TAKEN,
            "started: holds the endpoint's write turn",
            occurrence=again,
        )
        notes = (*notes, *taken)
    if isinstance(action, SetTraffic) and action.step is not None:
        record = first_move(record, seen)
    return Decision(
        record, (*notes, _request(action)), Trigger.TURN_TAKEN if rollout.state is State.PENDING else Trigger.WAIT
    )


def _request(action: CreateEndpoint | CreateDeployment | SetTraffic) -> fx.Request:
    if isinstance(action, CreateEndpoint):
        return fx.CreateEndpoint()
    if isinstance(action, CreateDeployment):
        return fx.CreateDeployment(action.retry)
    purpose = Purpose.RECOVER if action.retry == "endpoint" else Purpose.STEP
    return fx.PutTraffic(action.traffic, action.mirror, purpose, action.reason, action.step, action.retire, action.gate)


def first_move(rollout: Rollout, seen: Observation) -> Rollout:
    """The split before the rollout, recorded at its first traffic move, whatever path leads there (a retry too):
    a rollback goes back to it, without the new deployment."""
    view, progress = seen.endpoint, rollout.progress
    if progress.before_traffic is not None or view is None:
        return rollout
    before = replace(progress, before_traffic=view.live_traffic(), before_mirror=view.live_mirror())
    return replace(rollout, progress=before)


def _smoke(
    rollout: Rollout, seen: Observation, policy: Policy, now: dt.datetime
) -> Decision | tuple[Rollout, tuple[Notify, ...]]:
    """Before the first step's traffic: send the sample (a request), or record that there is none."""
    sample = choose_sample(rollout.plan.smoke_request, None)
    if sample is not None:
        if seen.time_left < MIN_SMOKE_WAIT_S:
            return waited(rollout, "smoke test deferred to the next pass: this pass's time budget is spent")
        return Decision(rollout, (fx.RunSmoke(sample, seen.time_left),))
    result = no_sample(policy.smoke_required)
    record = smoked(rollout, {**result.as_dict(), "sample": "", "at": now.isoformat()}, result.reason)
    if not result.passed:
        return Decision(record, again=True)  # the rules fail it, traffic untouched
    return record, ()


def smoked(rollout: Rollout, result: Mapping[str, object], reason: str) -> Rollout:
    return replace(rollout, reason=reason, progress=replace(rollout.progress, smoke=dict(result)))


def _bake(rollout: Rollout, action: StartBake, seen: Observation, now: dt.datetime) -> Decision:
    """The step's traffic is in place: the bake starts (the first traffic move when no write was needed)."""
    progress = replace(
        rollout.progress, step=action.step, bake_started_at=now, extensions=0, held=False, reads_failing_since=None
    )
    record = first_move(replace(rollout, progress=progress, turn_taken_at=rollout.turn_taken_at or now), seen)
    record, notes = changed(record, Trigger.BAKE_STARTED, action.reason)
    ends = bake_deadline(now, dt.timedelta(seconds=rollout.plan.bake_seconds), 0)
    # Level-triggered: the split in place leaves them out, whether or not the write that did it was recorded.
    retired = (fx.Retire(action.retire, rollout.plan.deployment),) if action.retire else ()
    return Decision(record, (*notes, *retired, fx.FollowUpAfter("bake", ends)), Trigger.BAKE_STARTED)


def _gate_held(rollout: Rollout, action: Extend | Hold, now: dt.datetime) -> Decision:
    """An inconclusive gate: bake longer, or hold for an operator (told once; no more reads until then)."""
    evidence = action.gate.as_dict()
    progress = replace(rollout.progress, gate=evidence)
    if isinstance(action, Extend):
        progress = replace(progress, extensions=action.extensions)
        record, _ = changed(replace(rollout, progress=progress), Trigger.EXTENDED, action.reason)
        started = progress.bake_started_at or now
        ends = bake_deadline(started, dt.timedelta(seconds=rollout.plan.bake_seconds), action.extensions)
        return Decision(record, (fx.FollowUpAfter("bake", ends),), Trigger.EXTENDED)
    record, _ = changed(replace(rollout, progress=replace(progress, held=True)), Trigger.HELD, action.reason)
    return Decision(record, (_inconclusive(rollout, action.reason, action.gate),), Trigger.HELD)


def _inconclusive(rollout: Rollout, reason: str, gate: GateResult) -> Notify:
    step = rollout.progress.step
    return Notify(Notice.GATE_INCONCLUSIVE, reason, {"gate": gate.as_dict()}, occurrence=f"hold{step}")


def _roll_back(rollout: Rollout, action: RollBack, seen: Observation, policy: Policy) -> Decision:
    """Record the rollback as due (it survives a held write and a restart), then send it in one write."""
    progress = replace(rollout.progress, requested="rollback", paused=False, held=False)
    notes: tuple[Notify, ...] = ()
    if action.gate is not None:
        progress = replace(progress, gate=action.gate.as_dict())
        if action.gate.outcome is Outcome.INCONCLUSIVE:
            notes = (_inconclusive(rollout, action.reason, action.gate),)
    record = replace(rollout, progress=progress)
    if not record.logs:  # kept on the row before cleanup deletes the deployment
        return Decision(record, (*notes, fx.FetchLogs()))
    why = blocked(seen, policy, traffic=True)
    if why and why != ONE_WRITE:
        held = f"rollback held back: {why}; {action.reason}"
        if rollout.reason == held:
            return Decision(record)
        error = Notify(Notice.ROLLBACK_HELD, held, {"gate": progress.gate} if progress.gate else {}, severity="error")
        return Decision(replace(record, reason=held), (*notes, error), Trigger.HELD)
    if why:
        return Decision(replace(record, reason=why), notes)
    request = fx.PutTraffic(action.traffic, action.mirror, Purpose.ROLLBACK, action.reason, gate=action.gate)
    return Decision(record, (*notes, request))


def _await_approval(rollout: Rollout, reason: str, now: dt.datetime) -> Decision:
    """Smoke-tested, no traffic moved: wait for an operator's decision (told once, with the calls that decide)."""
    progress = replace(rollout.progress, approval_asked_at=now)
    record, notes = changed(replace(rollout, progress=progress), Trigger.APPROVAL_ASKED, reason)
    return Decision(record, notes, Trigger.APPROVAL_ASKED)


def _finish(rollout: Rollout, action: Finish, seen: Observation) -> Decision:
    trigger = _FINISHING.get(action.state, Trigger.FINISHED)
    if rollout.state is State.AWAITING_APPROVAL and action.state is State.REJECTED:
        trigger = Trigger.REFUSED  # an operator's rejection, not the endpoint's ownership
    view = seen.endpoint
    exists = view is not None and view.deployment(rollout.plan.deployment) is not None
    if action.state is State.ROLLED_BACK and exists and not rollout.logs:  # before cleanup deletes it
        return Decision(rollout, (fx.FetchLogs(),))
    progress = replace(rollout.progress, requested="", paused=False, held=False)
    facts: dict[str, object] = {}
    if action.gate is not None:
        progress = replace(progress, gate=action.gate.as_dict())
        facts["gate"] = action.gate.as_dict()
    record = replace(rollout, attempts=0, next_attempt_at=None, last_error="", denied_since=None, progress=progress)
    record, notes = changed(record, trigger, action.reason, wanted=action.state, facts=facts)
    if trigger is Trigger.REFUSED:  # an operator's decision, not a fault: told as a warning, not an error
        notes = tuple(replace(note, severity="warning") for note in notes)
    retired = (fx.Retire(action.retire, rollout.plan.deployment),) if action.retire else ()
    return Decision(record, (*notes, *retired), trigger)


_FINISHING = {
    State.SUPERSEDED: Trigger.NEWER_VERSION,
    State.REJECTED: Trigger.NOT_ADOPTED,
    State.ROLLED_BACK: Trigger.ROLLED_BACK,
    State.EXPIRED: Trigger.EXPIRED,
}


def _fail(rollout: Rollout, action: Fail) -> Decision:
    """Failed before any traffic moved: the container logs first (when there is a deployment), then ``failed``."""
    if action.fetch_logs and not rollout.logs:
        return Decision(rollout, (fx.FetchLogs(),))
    smoke = rollout.progress.smoke
    failed_smoke = smoke is not None and not smoke.get("passed")
    record = replace(rollout, progress=replace(rollout.progress, requested="", paused=False))
    notice = Notice.SMOKE_FAILED if failed_smoke else Notice.STATE
    facts = {"smoke": dict(smoke)} if failed_smoke and smoke is not None else None
    record, notes = changed(record, Trigger.GAVE_UP, action.reason, notice=notice, facts=facts)
    return Decision(record, notes, Trigger.GAVE_UP)


def _stuck(rollout: Rollout, reason: str) -> Decision:
    """Nothing the app may do helps: wait for an operator, reported once as an error."""
    if rollout.reason == reason:
        return Decision(rollout)
    notify = Notify(Notice.STUCK, reason, severity="error", occurrence=f"stuck{rollout.progress.step}")
    return Decision(replace(rollout, reason=reason), (notify,))


def on_sibling(rollout: Rollout, effect: fx.Retire | fx.Reinstate, by: Rollout, now: dt.datetime) -> Decision | None:
    """What another rollout's decision means for ``rollout``: retired (its share taken), reinstated (a rollback gave
    it back), or None."""
    name = rollout.plan.deployment.lower()
    if isinstance(effect, fx.Retire) and name in effect.deployments and rollout.state in RETIRABLE_STATES:
        reason = f"retired: version {by.plan.model_version} ({by.plan.deployment}) took over its traffic"
        record, notes = changed(rollout, Trigger.RETIRED, reason, occurrence=_by(by, "retired"))
        return Decision(record, notes, Trigger.RETIRED)
    if isinstance(effect, fx.Reinstate) and name in effect.states and rollout.state is State.SUPERSEDED:
        reason = f"reinstated: the rollback of {by.plan.deployment} gave it its traffic back"
        record, notes = changed(
            rollout, Trigger.REINSTATED, reason, wanted=effect.states[name], occurrence=_by(by, "back")
        )
        return Decision(record, notes, Trigger.REINSTATED)
    return None


def _by(rollout: Rollout, what: str) -> str:
    """What another rollout's attempt did: each of its attempts (it may be retried) is told apart."""
    attempt = (rollout.turn_taken_at or rollout.created_at).isoformat()
    return f"{what}-by-{rollout.plan.deployment}@{attempt}"
