"""The rollout state machine (pure): plan + ledger row + observed AML state → the next single action.

Every action is one write at most, never waited on; the next observation tells how it went.
Rules, in order: back off after transient errors; time out; give way to a newer version of the
same model; wait for the endpoint's write turn (one rollout per endpoint writes at a time); wait
while AML is busy with the endpoint (a write then would get 409); create the endpoint; create the
deployment; fail if it failed; set traffic; finish (deleting one old deployment after a cut-over).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.clock import as_utc
from shared.rollout.model import DeploymentView, EndpointView, Rollout, RolloutPlan, State

ACTIVE_STATES = (State.PENDING, State.DEPLOYING)
SUPERSEDING_STATES = (State.PENDING, State.DEPLOYING, State.LIVE, State.CANARY)
GARBAGE_STATES = (State.SUPERSEDED, State.FAILED)


@dataclass(frozen=True)
class Policy:
    """The settings the state machine depends on."""

    timeout: dt.timedelta = dt.timedelta(minutes=60)
    keep_deployments: int = 2
    keep_failed_deployments: bool = False


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class CreateEndpoint:
    reason: str = "endpoint does not exist"


@dataclass(frozen=True)
class CreateDeployment:
    reason: str = "deployment does not exist"


@dataclass(frozen=True)
class SetTraffic:
    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    reason: str = ""


@dataclass(frozen=True)
class Finish:
    """Mark the rollout ``state``; optionally delete one old deployment (cleanup after a cut-over)."""

    state: State
    reason: str
    delete: str | None = None


@dataclass(frozen=True)
class Fail:
    """Mark the rollout failed. Traffic is untouched; container logs are fetched when there is a deployment."""

    reason: str
    fetch_logs: bool = False
    delete: str | None = None


@dataclass(frozen=True)
class Nothing:
    reason: str = "rollout is finished"


Action = Wait | CreateEndpoint | CreateDeployment | SetTraffic | Finish | Fail | Nothing
WRITE_ACTIONS = (CreateEndpoint, CreateDeployment, SetTraffic)


@dataclass(frozen=True)
class Observation:
    """What the step function sees. ``endpoint`` is None when the endpoint does not exist."""

    endpoint: EndpointView | None
    siblings: Sequence[Rollout] = field(default_factory=tuple)  # other rollouts on the same endpoint


def step(rollout: Rollout, seen: Observation, now: dt.datetime, policy: Policy) -> Action:
    """Decide the next action for ``rollout``. Pure: no I/O, no clock, no randomness."""
    if rollout.state.terminal:
        return Nothing(f"rollout is {rollout.state.value}")
    plan, view = rollout.plan, seen.endpoint
    mine = view.deployment(plan.deployment) if view else None
    mine_has_traffic = bool(view and mine and (view.live_traffic().get(mine.name.lower())))

    if rollout.next_attempt_at and now < rollout.next_attempt_at:
        return Wait(f"backing off after an error until {rollout.next_attempt_at.isoformat()}")
    if now - rollout.created_at > policy.timeout:
        minutes = int(policy.timeout.total_seconds() // 60)
        return _fail(
            f"timed out after {minutes} minutes while {rollout.reason or rollout.state.value}", view, mine, policy
        )
    if not mine_has_traffic:
        newer = _newer_version(plan, view, seen.siblings)
        if newer:
            return Finish(State.SUPERSEDED, f"superseded: {newer} is newer than {plan.model_version}")
    holder = next((s for s in seen.siblings if s.state is State.DEPLOYING and s.plan != plan), None)
    if holder:
        return Wait(f"waiting for rollout {holder.plan.deployment} to finish on endpoint {plan.endpoint}")

    if view is None:
        return CreateEndpoint()
    busy = view.busy_reason
    if busy:
        return Wait(f"AML is busy: {busy}")
    if view.provisioning_state.lower() in ("failed", "canceled"):
        return Fail(f"endpoint {view.name} is {view.provisioning_state}")
    if mine is None:
        return CreateDeployment()
    if not mine.serves(plan.model_name, plan.model_version):
        return Fail(
            f"deployment name {mine.name} is already used by another model ({mine.model or mine.tags}); "
            "it is left untouched"
        )
    if mine.failed:
        return _fail(f"deployment {mine.name} ended {mine.provisioning_state}", view, mine, policy)

    traffic, mirror = desired_traffic(view, plan)
    if traffic != view.live_traffic() or mirror != view.live_mirror():
        return SetTraffic(traffic, mirror, _describe(traffic, mirror))
    return _finish(plan, view, seen.siblings, policy)


def desired_traffic(view: EndpointView, plan: RolloutPlan) -> tuple[dict[str, int], dict[str, int]]:
    """Live and mirror traffic once ``plan``'s deployment is healthy (non-zero entries only).

    100 moves everything to the new deployment (blue/green). 1-99 gives it that share and scales
    the deployments that had traffic to the rest (canary); with nothing else live it takes 100.
    0 leaves live traffic alone and mirrors ``plan.mirror`` percent to it.
    """
    me = plan.deployment.lower()
    current = view.live_traffic()
    others = {name: pct for name, pct in current.items() if name != me}
    mirror = {name: pct for name, pct in view.live_mirror().items() if name != me}
    if plan.traffic == 0:
        if plan.mirror:
            mirror = {me: plan.mirror}
        return current, mirror
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


def _finish(plan: RolloutPlan, view: EndpointView, siblings: Sequence[Rollout], policy: Policy) -> Finish:
    if plan.traffic == 0:
        return Finish(State.DARK, f"deployed with no live traffic, {plan.mirror}% mirrored")
    others = [name for name in view.live_traffic() if name != plan.deployment.lower()]
    if others:
        return Finish(State.CANARY, f"canary at {plan.traffic}%, {', '.join(sorted(others))} keep the rest")
    note = "" if plan.traffic == 100 else f" (canary {plan.traffic}% asked, but nothing else was live)"
    victim = _cleanup_victim(plan, view, siblings, policy)
    cleanup = f"; deleting old deployment {victim}" if victim else ""
    return Finish(State.LIVE, f"serving 100% of traffic{note}{cleanup}", delete=victim)


def _cleanup_victim(plan: RolloutPlan, view: EndpointView, siblings: Sequence[Rollout], policy: Policy) -> str | None:
    """The oldest of the app's own idle deployments beyond the newest ``keep_deployments``."""
    state_of = {s.plan.deployment.lower(): s.state for s in siblings}
    active = {name for name, state in state_of.items() if state in ACTIVE_STATES}
    owned = sorted(
        (d for d in view.deployments if d.owned and d.name.lower() != plan.deployment.lower()),
        key=lambda d: (d.tags.get("created-at", ""), d.name),
        reverse=True,
    )
    keepers = [d for d in owned if state_of.get(d.name.lower()) not in GARBAGE_STATES]
    keep = {d.name.lower() for d in keepers[: max(policy.keep_deployments - 1, 0)]}
    victims = [
        d
        for d in owned
        if d.name.lower() not in keep
        and d.name.lower() not in active
        and not d.busy
        and not view.live_traffic().get(d.name.lower())
        and not view.live_mirror().get(d.name.lower())
    ]
    return victims[-1].name if victims else None


def _fail(reason: str, view: EndpointView | None, mine: DeploymentView | None, policy: Policy) -> Fail:
    if mine is None or view is None:
        return Fail(reason)
    idle_and_ours = mine.owned and not mine.busy and not view.live_traffic().get(mine.name.lower())
    if policy.keep_failed_deployments or not idle_and_ours:
        kept = "kept (KEEP_FAILED_DEPLOYMENTS=true)" if policy.keep_failed_deployments else "left in place"
        return Fail(f"{reason}; deployment {mine.name} {kept}", fetch_logs=True)
    return Fail(f"{reason}; deleting deployment {mine.name}", fetch_logs=True, delete=mine.name)


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
