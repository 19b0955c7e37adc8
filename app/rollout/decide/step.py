"""The rollout state machine (pure): plan + ledger row + observed AML state → the next single action.

Every action is one write at most, never waited on; the next observation tells how it went.
Rules, in order: back off after transient errors; time out (counted from taking the write turn);
give way to a newer version of the same model; wait for the endpoint's write turn (one rollout per
endpoint writes at a time); wait while AML is busy with the endpoint (a write then would get 409);
create the endpoint; re-PUT a Failed endpoint once; create the deployment; PUT a Canceled one again
once; fail if it failed; hold while paused; roll back when asked; set the traffic of the current step
(the first such write smoke-tests the new deployment before it is sent; retiring earlier canaries and
mirrors of the same model); bake each step and act on its gate (``progress.next_move``); finish.
Cleanup (deleting surplus deployments) is a separate decision, ``cleanup_step``, never a rollout's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from app.rollout.decide.actions import (
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
from app.rollout.decide.stepping import MoveKind, StepPlan, next_move, rollback_split
from app.rollout.decide.traffic import describe, desired_traffic, retiring
from app.rollout.decide.versions import newer_version

TURN_STATES = (State.DEPLOYING, State.BAKING)  # holding the endpoint's write turn
#: Ended states an operator's rollback still applies to (the deployment it replaced must still exist).
ROLLBACK_AFTER_END = (State.LIVE, State.CANARY, State.DARK, State.ABORTED)


@dataclass(frozen=True)
class Observation:
    """What the step function sees. ``endpoint`` is None when the endpoint does not exist."""

    endpoint: EndpointView | None
    siblings: Sequence[Rollout] = field(default_factory=tuple)  # other rollouts on the same endpoint


def step(
    rollout: Rollout, seen: Observation, now: dt.datetime, policy: Policy, gate: GateResult | None = None
) -> Action:
    """Decide the next action for ``rollout``. Pure: no I/O, no clock, no randomness.

    ``gate``: the result of the metric gate, when the caller evaluated it after an ``Evaluate``.
    """
    plan, view, progress = rollout.plan, seen.endpoint, rollout.progress
    mine = view.deployment(plan.deployment) if view else None
    mine_has_traffic = bool(view and mine and (view.live_traffic().get(mine.name.lower())))
    if rollout.state.terminal:
        if progress.requested == "rollback" and rollout.state in ROLLBACK_AFTER_END:
            if view is not None and view.busy_reason:
                return Wait(f"rollback waits: AML is busy: {view.busy_reason}")
            return _rollback(rollout, view, "an operator asked for a rollback", None)
        return Nothing(f"rollout is {rollout.state.value}")
    baking = rollout.state is State.BAKING

    if rollout.next_attempt_at and now < rollout.next_attempt_at:
        return Wait(f"backing off after an error until {rollout.next_attempt_at.isoformat()}")
    # The rollout's own time: queueing behind other rollouts does not count (rows from before turn_taken_at
    # existed fall back to their creation time once deploying). Bakes and pauses are bounded by their own rules.
    started = rollout.turn_taken_at or (rollout.created_at if rollout.state is State.DEPLOYING else None)
    if started is not None and not baking and not progress.paused and now - started > policy.timeout:
        minutes = int(policy.timeout.total_seconds() // 60)
        return _fail(
            f"timed out after {minutes} minutes with the endpoint's write turn while "
            f"{rollout.reason or rollout.state.value}",
            view,
            mine,
            policy,
        )
    if view is not None and not policy.may_change(view):
        return _refuse(rollout, view)
    if not mine_has_traffic and not baking:
        newer = newer_version(plan, view, seen.siblings)
        if newer:
            return Finish(State.SUPERSEDED, f"superseded: {newer} is newer than {plan.model_version}")
    holder = next((s for s in seen.siblings if s.state in TURN_STATES and s.plan != plan), None)
    if holder:
        return Wait(
            f"waiting for rollout {holder.plan.deployment} ({holder.state.value}) to finish on endpoint {plan.endpoint}"
        )
    if progress.paused:
        return Wait("paused by an operator: no writes and no bake until resumed")

    if view is None:
        if baking:
            return Fail(f"endpoint {plan.endpoint} no longer exists while baking")
        return CreateEndpoint()
    busy = view.busy_reason
    if busy:
        return Wait(f"AML is busy: {busy}")
    if progress.requested == "rollback":
        return _rollback(rollout, view, "an operator asked for a rollback", None)
    if view.provisioning_state.lower() in FAILED_STATES:
        if "endpoint" not in rollout.retries:
            return SetTraffic(
                view.live_traffic(),
                view.live_mirror(),
                f"again to recover it from {view.provisioning_state}, traffic unchanged",
                retry="endpoint",
            )
        return Fail(f"endpoint {view.name} is {view.provisioning_state}, also after one PUT to recover it")
    if mine is None:
        if baking:
            return _rollback(rollout, view, f"deployment {plan.deployment} disappeared while baking", None)
        return CreateDeployment()
    if not mine.serves(plan.model_name, plan.model_version):
        return Fail(
            f"deployment name {mine.name} is already used by another model ({mine.model or mine.tags}); "
            "it is left untouched"
        )
    if mine.failed:
        if baking:
            return _rollback(rollout, view, f"deployment {mine.name} ended {mine.provisioning_state}", None)
        if mine.provisioning_state.lower() == "canceled" and "deployment" not in rollout.retries:
            return CreateDeployment(f"deployment {mine.name} was Canceled: PUT it again once", retry="deployment")
        return _fail(f"deployment {mine.name} ended {mine.provisioning_state}", view, mine, policy)
    return _steps(rollout, view, seen, now, policy, gate, mine_has_traffic)


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
        traffic, mirror = desired_traffic(view, replace(plan, traffic=plan.steps[k]), retire)
        if traffic != view.live_traffic() or mirror != view.live_mirror():
            retired = f"; retiring {', '.join(retire)}" if retire else ""
            note = " (promoted by an operator: remaining bakes skipped)" if promote and k != current else ""
            return SetTraffic(
                traffic,
                mirror,
                describe(traffic, mirror) + _step_label(plan, k) + note + retired,
                retire=retire,
                step=k,
                smoke=progress.smoke is None and not mine_has_traffic,
            )
        if plan.bake_seconds <= 0 or promote:
            if k == last:
                finish = _finish(plan, view, retire)
                return replace(finish, reason=finish.reason + " (promoted by an operator)") if promote else finish
            return _step_write(plan, view, retire, k + 1, "no bake: steps advance without gates", None)
        return StartBake(
            k, f"baking step {k + 1}/{last + 1} at {plan.steps[k]}% for {plan.bake_seconds} s, then the gate"
        )
    assert progress.bake_started_at is not None
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
        if move.gate is not None:
            return Extend(move.extensions_used, move.reason, move.gate)
        return Wait(move.reason)
    if move.kind is MoveKind.EVALUATE:
        return Evaluate(f"step {k + 1}/{last + 1}: {move.reason}")
    if move.kind is MoveKind.ADVANCE:
        assert move.step is not None
        return _step_write(plan, view, retire, move.step, f"step {k + 1} promoted: {move.reason}", move.gate)
    if move.kind is MoveKind.DONE:
        finish = _finish(plan, view, retire)
        return replace(finish, reason=f"{finish.reason}; final bake passed: {move.reason}", gate=move.gate)
    if move.kind is MoveKind.ROLLBACK:
        return _rollback(rollout, view, move.reason, move.gate)
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


def _rollback(rollout: Rollout, view: EndpointView | None, why: str, gate: GateResult | None) -> RollBack | Finish:
    """Back, in one write, to the split recorded when the rollout took its write turn."""
    plan, progress = rollout.plan, rollout.progress
    mine = plan.deployment.lower()
    moved = view is not None and (mine in view.live_traffic() or mine in view.live_mirror())
    if view is None or progress.before_traffic is None or not moved:
        return Finish(State.ROLLED_BACK, f"rolled back: {why}; no traffic had moved to it, nothing written", gate=gate)
    missing = sorted(name for name, pct in progress.before_traffic.items() if pct and view.deployment(name) is None)
    if missing:
        return Finish(
            rollout.state if rollout.state.terminal else State.FAILED,
            f"cannot roll back ({why}): deployment(s) {', '.join(missing)} of the recorded split no longer exist; "
            "traffic left as it is",
            gate=gate,
        )
    traffic = rollback_split({k.lower(): v for k, v in progress.before_traffic.items()}, mine)
    mirror = {k.lower(): v for k, v in progress.before_mirror.items() if k.lower() != mine and v}
    return RollBack(traffic, mirror, f"rolled back: {why}; {describe(traffic, mirror)}", gate)


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


def _refuse(rollout: Rollout, view: EndpointView) -> Finish | Fail:
    """An endpoint the app may not change: rejected before any write, failed (traffic untouched) after one."""
    reason = (
        f"endpoint {view.name} was not created by this app (it has no tag {APP_TAG}={APP_TAG_VALUE}) and is not "
        f"in ADOPT_ENDPOINTS; nothing was written to it. To deploy into it, add {view.name} to ADOPT_ENDPOINTS; "
        "otherwise set the model's endpoint tag to an endpoint of the app's own"
    )
    if rollout.actions:
        return Fail(reason)
    return Finish(State.REJECTED, reason)


def failure(reason: str, view: EndpointView | None, mine: DeploymentView | None, policy: Policy) -> Fail:
    """A ``Fail`` whose reason says what becomes of the deployment (also for a failed smoke test)."""
    return _fail(reason, view, mine, policy)


def _fail(reason: str, view: EndpointView | None, mine: DeploymentView | None, policy: Policy) -> Fail:
    if mine is None or view is None:
        return Fail(reason)
    if not mine.owned:
        return Fail(f"{reason}; deployment {mine.name} was not created by the app and is left in place", True)
    if policy.keep_failed_deployments:
        return Fail(f"{reason}; deployment {mine.name} kept (KEEP_FAILED_DEPLOYMENTS=true)", fetch_logs=True)
    return Fail(f"{reason}; cleanup deletes deployment {mine.name} once it is idle", fetch_logs=True)
