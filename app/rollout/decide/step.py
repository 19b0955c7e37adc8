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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from app.platform.clock import as_utc
from app.platform.settings import Settings
from app.rollout.decide.gate import GatePolicy, GateResult, policy_from_settings
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
from app.rollout.decide.stepping import MoveKind, StepPlan, next_move, rollback_split

ACTIVE_STATES = (State.PENDING, State.DEPLOYING, State.BAKING)
TURN_STATES = (State.DEPLOYING, State.BAKING)  # holding the endpoint's write turn
SUPERSEDING_STATES = (State.PENDING, State.DEPLOYING, State.BAKING, State.LIVE, State.CANARY)
GARBAGE_STATES = (State.SUPERSEDED, State.FAILED, State.ROLLED_BACK)
RETIRABLE_STATES = (State.CANARY, State.DARK)
#: Ended states an operator's rollback still applies to (the deployment it replaced must still exist).
ROLLBACK_AFTER_END = (State.LIVE, State.CANARY, State.DARK, State.ABORTED)


@dataclass(frozen=True)
class Policy:
    """The settings the state machine depends on."""

    timeout: dt.timedelta = dt.timedelta(minutes=60)
    keep_deployments: int = 2
    keep_failed_deployments: bool = False
    #: Endpoints the app did not create that it may deploy into (lower case; ``*`` adopts every one).
    adopt_endpoints: frozenset[str] = frozenset()
    #: The platform's gate policy (``GATE_*``); the step uses its extensions and ``GATE_INCONCLUSIVE``.
    gate: GatePolicy = field(default_factory=GatePolicy)

    def may_change(self, endpoint: EndpointView) -> bool:
        """The app changes the endpoints it created, and those ``ADOPT_ENDPOINTS`` lists."""
        return endpoint.owned or "*" in self.adopt_endpoints or endpoint.name.lower() in self.adopt_endpoints


def step_policy(settings: Settings) -> Policy:
    """The step policy from the settings: timeout, what to keep after a cut-over or a failure, adoption, gates."""
    return Policy(
        timeout=dt.timedelta(minutes=settings.rollout_timeout_minutes),
        keep_deployments=settings.keep_deployments,
        keep_failed_deployments=settings.keep_failed_deployments,
        adopt_endpoints=settings.adopt_endpoints,
        gate=policy_from_settings(settings),
    )


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class CreateEndpoint:
    reason: str = "endpoint does not exist"


@dataclass(frozen=True)
class CreateDeployment:
    reason: str = "deployment does not exist"
    retry: str = ""  # "deployment": this PUT is the one retry of a Canceled deployment


@dataclass(frozen=True)
class SetTraffic:
    """PUT the endpoint with this live and mirror traffic. ``retire`` names the earlier canaries and mirrors of the
    same model whose share this write takes away (their rollouts become superseded). ``retry`` "endpoint": this PUT
    is the one re-PUT of a Failed endpoint, traffic unchanged."""

    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    reason: str = ""
    retire: tuple[str, ...] = ()
    retry: str = ""
    step: int | None = None  # the plan step this write sets (recorded on the row); None: not a step's write
    smoke: bool = False  # smoke-test the new deployment first; if it fails, this write is never sent
    gate: GateResult | None = None  # the passed gate this step's promotion rests on


@dataclass(frozen=True)
class Finish:
    """Mark the rollout ``state``. ``retire``: as for ``SetTraffic`` (already out of traffic)."""

    state: State
    reason: str
    retire: tuple[str, ...] = ()
    gate: GateResult | None = None


@dataclass(frozen=True)
class StartBake:
    """The step's traffic is in place: the rollout is ``baking`` and this step's bake starts now (no write)."""

    step: int
    reason: str


@dataclass(frozen=True)
class Evaluate:
    """The bake is over: read the window's metrics and decide again with the gate's result (reads only)."""

    reason: str


@dataclass(frozen=True)
class Extend:
    """An inconclusive gate: bake longer (``extensions`` used after this), keeping the evidence (no write)."""

    extensions: int
    reason: str
    gate: GateResult


@dataclass(frozen=True)
class Hold:
    """Stay at this step until an operator acts (GATE_INCONCLUSIVE=hold); the evidence is kept (no write)."""

    reason: str
    gate: GateResult


@dataclass(frozen=True)
class RollBack:
    """One traffic write back to the split recorded when the rollout took its write turn, then ``rolled_back``."""

    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    reason: str
    gate: GateResult | None = None


@dataclass(frozen=True)
class Fail:
    """Mark the rollout failed. Traffic is untouched; container logs are fetched when there is a deployment.
    Nothing is written: the failed deployment is left to cleanup (``cleanup_step``)."""

    reason: str
    fetch_logs: bool = False


@dataclass(frozen=True)
class Delete:
    """Cleanup: delete this surplus deployment of the app's own (one per pass, best effort)."""

    deployment: str
    reason: str


@dataclass(frozen=True)
class Nothing:
    reason: str = "rollout is finished"


Action = (
    Wait | CreateEndpoint | CreateDeployment | SetTraffic | Finish | Fail | Nothing | StartBake | Evaluate | Extend
) | (Hold | RollBack)
CleanupAction = Delete | Wait | Nothing
WRITE_ACTIONS = (CreateEndpoint, CreateDeployment, SetTraffic)


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
        newer = _newer_version(plan, view, seen.siblings)
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
                _describe(traffic, mirror) + _step_label(plan, k) + note + retired,
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
        _describe(traffic, mirror) + _step_label(plan, k) + f" ({why})" + retired,
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
    return RollBack(traffic, mirror, f"rolled back: {why}; {_describe(traffic, mirror)}", gate)


def retiring(plan: RolloutPlan, view: EndpointView, siblings: Sequence[Rollout]) -> tuple[str, ...]:
    """The earlier canaries and mirrors of the same model on this endpoint, which ``plan``'s rollout retires.

    Only the app's own deployments of an older version whose rollout ended ``canary`` or ``dark``. When every live
    share is on such deployments (an operator promoted a canary by hand), the largest one is the stable one and
    stays.
    """
    me = plan.deployment.lower()
    names = []
    for sibling in siblings:
        other = sibling.plan
        found = view.deployment(other.deployment)
        if (
            found is not None
            and found.owned
            and found.name.lower() != me
            and other.model_name == plan.model_name
            and sibling.state in RETIRABLE_STATES
            and is_newer(plan.model_version, plan.model_created_at, other.model_version, other.model_created_at)
        ):
            names.append(found.name.lower())
    live = view.live_traffic()
    if live and all(name == me or name in names for name in live):
        serving = [name for name in live if name in names]
        if serving:
            names.remove(max(serving, key=lambda name: (live[name], name)))
    return tuple(sorted(names))


def desired_traffic(
    view: EndpointView, plan: RolloutPlan, retire: Sequence[str] = ()
) -> tuple[dict[str, int], dict[str, int]]:
    """Live and mirror traffic once ``plan``'s deployment is healthy (non-zero entries only).

    First the deployments in ``retire`` lose their share (it returns to the others, proportionally) and their
    mirror. Then 100 moves everything to the new deployment (blue/green). 1-99 gives it that share and scales
    the deployments that had traffic to the rest (canary); with nothing else live it takes 100.
    0 leaves live traffic alone and mirrors ``plan.mirror`` percent to it.
    """
    me = plan.deployment.lower()
    current = view.live_traffic()
    gone = {name.lower() for name in retire}
    others = {name: pct for name, pct in current.items() if name != me and name not in gone}
    mirror = {name: pct for name, pct in view.live_mirror().items() if name != me and name not in gone}
    if plan.traffic == 0:
        if plan.mirror:
            mirror = {me: plan.mirror}
        if not gone & set(current):
            return current, mirror
        return (_scale(others, 100) if others else {}), mirror
    if plan.traffic == 100 or not others:
        return {me: 100}, mirror
    traffic = {me: plan.traffic, **_scale(others, 100 - plan.traffic)}
    return {name: pct for name, pct in traffic.items() if pct}, mirror


def _scale(shares: Mapping[str, int], total: int) -> dict[str, int]:
    """Scale ``shares`` to sum to ``total`` by the largest-remainder method (stable, deterministic)."""
    whole = sum(shares.values())
    exact = {name: pct * total / whole for name, pct in shares.items()}
    scaled = {name: int(value) for name, value in exact.items()}
    leftover = total - sum(scaled.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - scaled[n]), n))[:leftover]:
        scaled[name] += 1
    return scaled


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


def cleanup_step(view: EndpointView | None, rollouts: Sequence[Rollout], policy: Policy) -> CleanupAction:
    """Cleanup owed on an endpoint (pure): delete the next surplus deployment, wait, or nothing left to do.

    Cleanup never takes the endpoint's write turn: it waits while any rollout there is pending or deploying and
    while AML is busy with the endpoint, and it deletes one deployment per pass.
    """
    if view is None:
        return Nothing("the endpoint does not exist; nothing to clean up")
    active = next((r for r in rollouts if not r.state.terminal), None)
    if active is not None:
        return Wait(f"cleanup waits for rollout {active.plan.deployment} ({active.state.value})")
    busy = view.busy_reason
    if busy:
        return Wait(f"cleanup waits: AML is busy: {busy}")
    victims = surplus_deployments(view, rollouts, policy)
    if not victims:
        return Nothing("nothing to clean up")
    return Delete(victims[0], f"deleting surplus deployment {victims[0]} (KEEP_DEPLOYMENTS={policy.keep_deployments})")


def surplus_deployments(view: EndpointView, rollouts: Sequence[Rollout], policy: Policy) -> list[str]:
    """The app's own deployments to delete, in order: superseded and failed ones first, then the oldest.

    Kept: the newest ``keep_deployments`` of the app's own deployments that are not garbage (superseded, failed),
    and, whatever their age, every deployment with live or mirror traffic, busy, of an active rollout, or failed
    while ``keep_failed_deployments`` is set. A deployment the app did not create is never touched.
    """
    state_of = {r.plan.deployment.lower(): r.state for r in rollouts}
    live, mirror = view.live_traffic(), view.live_mirror()
    owned = sorted(
        (d for d in view.deployments if d.owned),
        key=lambda d: (d.tags.get("created-at", ""), d.name),
        reverse=True,
    )

    def garbage(d: DeploymentView) -> bool:
        return d.failed or state_of.get(d.name.lower()) in GARBAGE_STATES

    def protected(d: DeploymentView) -> bool:
        name = d.name.lower()
        failed = d.failed or state_of.get(name) in (State.FAILED, State.ROLLED_BACK)
        return bool(
            live.get(name)
            or mirror.get(name)
            or d.busy
            or state_of.get(name) in ACTIVE_STATES
            or (failed and policy.keep_failed_deployments)
        )

    keep = {d.name.lower() for d in [d for d in owned if not garbage(d)][: policy.keep_deployments]}
    victims = [d for d in owned if d.name.lower() not in keep and not protected(d)]
    victims.sort(key=lambda d: (not garbage(d), d.tags.get("created-at", ""), d.name))
    return [d.name for d in victims]


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


def _newer_version(plan: RolloutPlan, view: EndpointView | None, siblings: Sequence[Rollout]) -> str | None:
    """A newer version of the same model that is live on, or headed for, this endpoint."""
    for sibling in siblings:
        other = sibling.plan
        if (
            other.model_name == plan.model_name
            and other.deployment != plan.deployment
            and sibling.state in SUPERSEDING_STATES
            and other.traffic > 0
            and is_newer(other.model_version, other.model_created_at, plan.model_version, plan.model_created_at)
        ):
            return f"version {other.model_version} ({sibling.state.value})"
    for deployment in view.deployments if view else ():
        tags = deployment.tags
        if (
            deployment.owned
            and tags.get("model-name") == plan.model_name
            and view is not None
            and view.live_traffic().get(deployment.name.lower())
            and is_newer(
                tags.get("model-version", ""),
                tags.get("model-created-at", ""),
                plan.model_version,
                plan.model_created_at,
            )
        ):
            return f"version {tags.get('model-version')} (live on {deployment.name})"
    return None


def is_newer(version_a: str, created_a: str, version_b: str, created_b: str) -> bool:
    """Is version A newer than B? Numeric when both are numbers, else by the model's creation time."""
    if version_a.isdigit() and version_b.isdigit():
        return int(version_a) > int(version_b)
    time_a, time_b = _created(created_a), _created(created_b)
    return bool(time_a and time_b and time_a > time_b)


def _created(text: str) -> dt.datetime | None:
    """A ``model-created-at`` value: a tag anyone can edit. A naive time (no offset, as some tools write it) is
    read as UTC, like the ledger does; an unreadable one counts as unknown rather than stop the endpoint."""
    try:
        return as_utc(dt.datetime.fromisoformat(text)) if text else None
    except ValueError:
        return None


def _describe(traffic: Mapping[str, int], mirror: Mapping[str, int]) -> str:
    live = ", ".join(f"{name}={pct}%" for name, pct in sorted(traffic.items())) or "none"
    mirrored = ", ".join(f"{name}={pct}%" for name, pct in sorted(mirror.items()))
    return f"traffic {live}" + (f"; mirror {mirrored}" if mirrored else "")
