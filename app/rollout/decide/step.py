"""The rollout's rules (pure): plan + ledger row + observed AML state → the next single action.

Every action is one write at most, never waited on; the next observation tells how it went. ``transition`` turns the
action into the next record and its effects. Rules, in order: an ended rollout does nothing but an operator's
rollback; back off after an error; time out (counted from taking the write turn); refuse an endpoint the app may not
change; give way to a newer version of the same model; wait for the endpoint's write turn (one rollout per endpoint
writes at a time); hold while paused; wait while AML is busy with the endpoint (a write then would get 409); roll
back when asked; create the endpoint; re-PUT a Failed endpoint once; create the deployment; PUT a Canceled one again
once; fail if it failed; set the traffic of the current step (the first such write smoke-tests the new deployment
before it is sent; retiring earlier canaries and mirrors of the same model); bake each step and act on its gate
(``stepping.next_move``); finish. Once traffic has moved, a failure rolls back instead of failing.
Cleanup (deleting surplus deployments) is a separate decision, ``cleanup.cleanup_step``, never a rollout's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from app.rollout.decide.actions import (
    Action,
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
from app.rollout.decide.awaiting import approval_given, awaiting
from app.rollout.decide.gate import GateResult
from app.rollout.decide.model import (
    APP_TAG,
    APP_TAG_VALUE,
    FAILED_STATES,
    DeploymentView,
    EndpointView,
    Rollout,
    RolloutPlan,
    State,
)
from app.rollout.decide.policy import Policy
from app.rollout.decide.rollback import rollback, rollback_blocker, rollback_why
from app.rollout.decide.seen import Observation
from app.rollout.decide.stepping import MoveKind, StepPlan, next_move
from app.rollout.decide.traffic import (
    describe,
    desired_traffic,
    refused_shares,
    retiring,
    serves,
)
from app.rollout.decide.versions import newer_version

TURN_STATES = (State.DEPLOYING, State.BAKING)  # holding the endpoint's write turn
#: Bounded by their own rules, not ROLLOUT_TIMEOUT_MINUTES: bakes (gates, extensions) and approvals (APPROVAL_TIMEOUT).
UNTIMED = (State.BAKING, State.AWAITING_APPROVAL)
HELD = "held: the gate stayed inconclusive (GATE_INCONCLUSIVE=hold); an operator promotes, rolls back or aborts"
#: Ended states an operator's rollback still applies to (the deployment it replaced must still exist).
ROLLBACK_AFTER_END = (State.LIVE, State.CANARY, State.DARK, State.ABORTED)


def step(
    rollout: Rollout, seen: Observation, now: dt.datetime, policy: Policy, gate: GateResult | None = None
) -> Action:
    """Decide the next action for ``rollout``. Pure: no I/O, no clock, no randomness.

    ``gate``: the result of the metric gate, when the caller evaluated it after an ``Evaluate``.
    """
    if rollout.state.terminal:
        return _after_end(rollout, seen, policy)
    if rollout.next_attempt_at and now < rollout.next_attempt_at:
        return Wait(f"backing off after an error until {rollout.next_attempt_at.isoformat()}")
    action = _running(rollout, seen, now, policy, gate)
    timed_out = _timed_out(rollout, now, policy)
    if timed_out and isinstance(action, Wait | CreateEndpoint | CreateDeployment | SetTraffic):
        view = seen.endpoint
        given = _give_up(rollout, view, timed_out, policy)  # instead of writing or waiting any longer
        if isinstance(given, RollBack) and view is not None and view.busy_reason:
            return Wait(f"timed out; the rollback waits: AML is busy: {view.busy_reason}")
        return given
    return action


def _running(rollout: Rollout, seen: Observation, now: dt.datetime, policy: Policy, gate: GateResult | None) -> Action:
    """A running rollout's next action, its timeout aside."""
    plan, view, progress = rollout.plan, seen.endpoint, rollout.progress
    mine = view.deployment(plan.deployment) if view else None
    moved = traffic_moved(rollout, view)
    if view is not None and not policy.may_change(view):
        return _refuse(rollout, view, moved)
    if not serves(rollout, view) and rollout.state is not State.BAKING:  # an in-doubt write is the intents' to undo
        newer = newer_version(plan, view, seen.siblings)
        if newer:
            reason = f"superseded: {newer} is newer than {plan.model_version}"
            if rollout.state is State.AWAITING_APPROVAL:
                reason += " while it awaited approval (no decision is needed now)"
            return Finish(State.SUPERSEDED, reason)
    if rollout.state is State.AWAITING_APPROVAL:  # it holds no write turn: a decision, the time or a failure moves it
        return awaiting(rollout, mine, now, policy)
    holder = next((s for s in seen.siblings if s.state in TURN_STATES and s.plan != plan), None)
    if holder:
        return Wait(
            f"waiting for rollout {holder.plan.deployment} ({holder.state.value}) to finish on endpoint {plan.endpoint}"
        )
    if progress.paused:
        # A pause never shields a failed deployment that may serve from its rollback.
        if mine is None or not mine.failed or not moved or view is None or view.busy_reason:
            return Wait("paused by an operator: no writes and no bake until resumed")
        return rollback(rollout, view, f"deployment {mine.name} ended {mine.provisioning_state}", None)
    if view is None:
        if moved:
            return rollback(rollout, view, f"endpoint {plan.endpoint} no longer exists", None)
        return CreateEndpoint()
    busy = view.busy_reason
    if busy:
        return Wait(f"AML is busy: {busy}")
    if progress.requested == "rollback":
        return rollback(rollout, view, rollback_why(progress), None)
    return _deployment(rollout, view, seen, now, policy, gate, mine, moved)


def _deployment(
    rollout: Rollout,
    view: EndpointView,
    seen: Observation,
    now: dt.datetime,
    policy: Policy,
    gate: GateResult | None,
    mine: DeploymentView | None,
    moved: bool,
) -> Action:
    """The endpoint is idle and the app's: recover it, create the deployment, then the steps."""
    plan, progress = rollout.plan, rollout.progress
    if view.provisioning_state.lower() in FAILED_STATES:
        if "endpoint" not in rollout.retries:
            return SetTraffic(
                view.live_traffic(),
                view.live_mirror(),
                f"again to recover it from {view.provisioning_state}, traffic unchanged",
                retry="endpoint",
            )
        reason = f"endpoint {view.name} is {view.provisioning_state}, also after one PUT to recover it"
        return _give_up(rollout, view, reason, policy)
    if mine is None:
        if moved:
            return rollback(rollout, view, f"deployment {plan.deployment} disappeared", None)
        return CreateDeployment()
    if not mine.serves(plan.model_name, plan.model_version):
        return Fail(
            f"deployment name {mine.name} is already used by another model ({mine.model or mine.tags}); "
            "it is left untouched"
        )
    if mine.failed:
        if moved:
            return rollback(rollout, view, f"deployment {mine.name} ended {mine.provisioning_state}", None)
        if mine.provisioning_state.lower() == "canceled" and "deployment" not in rollout.retries:
            return CreateDeployment(f"deployment {mine.name} was Canceled: PUT it again once", retry="deployment")
        return _fail(f"deployment {mine.name} ended {mine.provisioning_state}", view, mine, policy)
    smoke = progress.smoke
    if smoke is not None and not smoke.get("passed") and not moved:
        return _fail(str(smoke.get("reason") or "smoke test failed"), view, mine, policy)
    return _steps(rollout, view, seen, now, policy, gate, serves(rollout, view))


def traffic_moved(rollout: Rollout, view: EndpointView | None) -> bool:
    """May the new deployment be serving? A step's traffic was sent (or is baking), or AML shows it serving."""
    return rollout.state is State.BAKING or rollout.progress.step is not None or serves(rollout, view)


def _timed_out(rollout: Rollout, now: dt.datetime, policy: Policy) -> str:
    """Why the rollout timed out, or "": the rollout's own time with the write turn (queueing behind other rollouts
    does not count; rows from before ``turn_taken_at`` existed fall back to their creation time once deploying).
    Bakes and pauses are bounded by their own rules."""
    started = rollout.turn_taken_at or (rollout.created_at if rollout.state is State.DEPLOYING else None)
    if started is None or rollout.state in UNTIMED or rollout.progress.paused or now - started <= policy.timeout:
        return ""
    minutes = int(policy.timeout.total_seconds() // 60)
    doing = rollout.reason or rollout.state.value
    return f"timed out after {minutes} minutes with the endpoint's write turn while {doing}"


def _after_end(rollout: Rollout, seen: Observation, policy: Policy) -> Action:
    """An ended rollout does nothing, but carry out an operator's rollback of one whose deployment kept traffic."""
    view = seen.endpoint
    if rollout.progress.requested != "rollback" or rollout.state not in ROLLBACK_AFTER_END:
        return Nothing(f"rollout is {rollout.state.value}")
    if view is not None and not policy.may_change(view):  # adoption withdrawn since the request was recorded
        return DropRequest(
            f"cannot roll back: endpoint {view.name} was not created by the app and ADOPT_ENDPOINTS no longer lists "
            "it; traffic left as it is (add it to ADOPT_ENDPOINTS, or roll back by hand in Azure ML)"
        )
    blocked = rollback_blocker(rollout, view, seen.siblings)
    if blocked:
        return DropRequest(f"cannot roll back: {blocked}; traffic left as it is")
    if view is not None and view.busy_reason:
        return Wait(f"rollback waits: AML is busy: {view.busy_reason}")
    return rollback(rollout, view, "an operator asked for a rollback", None)


def _give_up(rollout: Rollout, view: EndpointView | None, reason: str, policy: Policy) -> Action:
    """No retry fixes it: fail a rollout that moved no traffic; roll back one that did (never failed while serving)."""
    if traffic_moved(rollout, view):
        return rollback(rollout, view, reason, None)
    mine = view.deployment(rollout.plan.deployment) if view else None
    return _fail(reason, view, mine, policy)


def _steps(
    rollout: Rollout,
    view: EndpointView,
    seen: Observation,
    now: dt.datetime,
    policy: Policy,
    gate: GateResult | None,
    mine_has_traffic: bool,
) -> Action:
    """The deployment is healthy: set the current step's traffic, bake it, act on its gate, finish."""
    plan, progress = rollout.plan, rollout.progress
    retire = retiring(plan, view, seen.siblings)
    last = len(plan.steps) - 1
    promote = progress.requested == "promote"
    current = progress.step if progress.step is not None else 0
    k = last if promote else min(current, last)
    if progress.bake_started_at is None or k != progress.step:
        return _to_step(rollout, view, policy, retire, k, mine_has_traffic)
    if promote:  # the final step is in place, baking or held: promoted, its gate skipped
        finish = _finish(plan, view, retire)
        return replace(finish, reason=finish.reason + " (promoted by an operator: the final bake skipped)")
    if not plan.bakes:  # a row that started baking with nothing to judge (no live traffic)
        return _finish(plan, view, retire)
    if progress.held:  # GATE_INCONCLUSIVE=hold: no more reads; an operator promotes, rolls back or aborts
        return Wait(rollout.reason or HELD)
    return _after_bake(rollout, view, now, policy, gate, retire, k)


def _to_step(
    rollout: Rollout, view: EndpointView, policy: Policy, retire: tuple[str, ...], k: int, mine_has_traffic: bool
) -> Action:
    """Step ``k``'s traffic: set it, or, in place, start its bake (or move on when there is nothing to bake)."""
    plan, progress = rollout.plan, rollout.progress
    last, promote = len(plan.steps) - 1, progress.requested == "promote"
    traffic, mirror = desired_traffic(view, replace(plan, traffic=plan.steps[k]), retire)
    refused = [name for name in refused_shares(view, traffic, mirror) if name != plan.deployment.lower()]
    if refused:
        return _give_up(rollout, view, f"the split needs {', '.join(refused)}, which Azure ML shows failed", policy)
    if traffic != view.live_traffic() or mirror != view.live_mirror():
        # Approval comes after the smoke test and before any traffic (the first step's write waits for it).
        approval = progress.before_traffic is None and policy.needs_approval(plan) and not approval_given(progress)
        smoke = progress.smoke
        if approval and (mine_has_traffic or (smoke is not None and smoke.get("passed"))):
            return AwaitApproval("smoke test passed: awaits an operator's approval before any traffic")
        retired = f"; retiring {', '.join(retire)}" if retire else ""
        skipped = promote and k != (progress.step if progress.step is not None else 0)
        note = " (promoted by an operator: remaining bakes skipped)" if skipped else ""
        return SetTraffic(
            traffic,
            mirror,
            describe(traffic, mirror) + _step_label(plan, k) + note + retired,
            retire=retire,
            step=k,
            smoke=progress.smoke is None and not mine_has_traffic,
            approval=approval,
        )
    if not plan.bakes or promote:
        if k == last:
            finish = _finish(plan, view, retire)
            return replace(finish, reason=finish.reason + " (promoted by an operator)") if promote else finish
        return _step_write(plan, view, retire, k + 1, "no bake: steps advance without gates", None)
    reason = f"baking step {k + 1}/{last + 1} at {plan.steps[k]}% for {plan.bake_seconds} s, then the gate"
    return StartBake(k, reason, retire)


def _after_bake(
    rollout: Rollout,
    view: EndpointView,
    now: dt.datetime,
    policy: Policy,
    gate: GateResult | None,
    retire: tuple[str, ...],
    k: int,
) -> Action:
    """Step ``k`` bakes: wait for its end, ask for the gate, and act on the verdict (``stepping.next_move``)."""
    plan, progress = rollout.plan, rollout.progress
    assert progress.bake_started_at is not None
    last = len(plan.steps) - 1
    move = next_move(
        StepPlan(plan.steps, dt.timedelta(seconds=plan.bake_seconds)),
        k,
        progress.bake_started_at,
        now,
        gate,
        policy.gate,
        extensions_used=progress.extensions,
    )
    if move.kind is MoveKind.BAKING:
        return Extend(move.extensions_used, move.reason, move.gate) if move.gate is not None else Wait(move.reason)
    if move.kind is MoveKind.EVALUATE:
        return Evaluate(f"step {k + 1}/{last + 1}: {move.reason}")
    if move.kind is MoveKind.ADVANCE:
        assert move.step is not None
        return _step_write(plan, view, retire, move.step, f"step {k + 1} promoted: {move.reason}", move.gate)
    if move.kind is MoveKind.DONE:
        finish = _finish(plan, view, retire)
        return replace(finish, reason=f"{finish.reason}; final bake passed: {move.reason}", gate=move.gate)
    if move.kind is MoveKind.ROLLBACK:
        return rollback(rollout, view, move.reason, move.gate)
    if move.kind is MoveKind.HOLD and move.gate is not None:
        return Hold(move.reason, move.gate)
    return Wait(move.reason)


def _step_write(
    plan: RolloutPlan, view: EndpointView, retire: tuple[str, ...], k: int, why: str, gate: GateResult | None
) -> SetTraffic:
    traffic, mirror = desired_traffic(view, replace(plan, traffic=plan.steps[k]), retire)
    retired = f"; retiring {', '.join(retire)}" if retire else ""
    return SetTraffic(
        traffic,
        mirror,
        describe(traffic, mirror) + _step_label(plan, k) + f" ({why})" + retired,
        retire=retire,
        step=k,
        gate=gate,
    )


def _step_label(plan: RolloutPlan, k: int) -> str:
    return f" (step {k + 1}/{len(plan.steps)})" if len(plan.steps) > 1 else ""


def _finish(plan: RolloutPlan, view: EndpointView, retire: tuple[str, ...]) -> Finish:
    if plan.traffic == 0:
        return Finish(State.DARK, f"deployed with no live traffic, {plan.mirror}% mirrored", retire=retire)
    others = [name for name in view.live_traffic() if name != plan.deployment.lower()]
    if others:
        return Finish(
            State.CANARY, f"canary at {plan.traffic}%, {', '.join(sorted(others))} keep the rest", retire=retire
        )
    note = "" if plan.traffic == 100 else f" (canary {plan.traffic}% asked, but nothing else was live)"
    return Finish(State.LIVE, f"serving 100% of traffic{note}", retire=retire)


def _refuse(rollout: Rollout, view: EndpointView, moved: bool) -> Action:
    """An endpoint the app may not change: rejected before any write, failed (traffic untouched) after one, and
    left to an operator once traffic moved (the app writes nothing more to it, a rollback included)."""
    reason = (
        f"endpoint {view.name} was not created by this app (it has no tag {APP_TAG}={APP_TAG_VALUE}) and is not "
        f"in ADOPT_ENDPOINTS; nothing was written to it. To deploy into it, add {view.name} to ADOPT_ENDPOINTS; "
        "otherwise set the model's endpoint tag to an endpoint of the app's own"
    )
    if moved:
        return Stuck(f"endpoint {view.name} is no longer the app's (no tag {APP_TAG}={APP_TAG_VALUE}, not adopted)")
    if rollout.actions:
        return Fail(reason)
    return Finish(State.REJECTED, reason)


def _fail(reason: str, view: EndpointView | None, mine: DeploymentView | None, policy: Policy) -> Fail:
    """A ``Fail`` whose reason says what becomes of the deployment."""
    if mine is None or view is None:
        return Fail(reason)
    if not mine.owned:
        return Fail(f"{reason}; deployment {mine.name} was not created by the app and is left in place", True)
    if policy.keep_failed_deployments:
        return Fail(f"{reason}; deployment {mine.name} kept (KEEP_FAILED_DEPLOYMENTS=true)", fetch_logs=True)
    return Fail(f"{reason}; cleanup deletes deployment {mine.name} once it is idle", fetch_logs=True)
