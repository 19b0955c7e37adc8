"""The rollout state machine (pure): plan + ledger row + observed AML state → the next single action.

Every action is one write at most, never waited on; the next observation tells how it went.
Rules, in order: back off after transient errors; time out (counted from taking the write turn);
give way to a newer version of the same model; wait for the endpoint's write turn (one rollout per
endpoint writes at a time); wait while AML is busy with the endpoint (a write then would get 409);
create the endpoint; re-PUT a Failed endpoint once; create the deployment; PUT a Canceled one again
once; fail if it failed; set traffic (retiring earlier canaries and mirrors of the same model); finish.
Cleanup (deleting surplus deployments) is a separate decision, ``cleanup_step``, never a rollout's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.clock import as_utc
from shared.rollout.model import (
    APP_TAG,
    APP_TAG_VALUE,
    FAILED_STATES,
    DeploymentView,
    EndpointView,
    Rollout,
    RolloutPlan,
    State,
)

ACTIVE_STATES = (State.PENDING, State.DEPLOYING)
SUPERSEDING_STATES = (State.PENDING, State.DEPLOYING, State.LIVE, State.CANARY)
GARBAGE_STATES = (State.SUPERSEDED, State.FAILED)
RETIRABLE_STATES = (State.CANARY, State.DARK)


@dataclass(frozen=True)
class Policy:
    """The settings the state machine depends on."""

    timeout: dt.timedelta = dt.timedelta(minutes=60)
    keep_deployments: int = 2
    keep_failed_deployments: bool = False
    #: Endpoints the app did not create that it may deploy into (lower case; ``*`` adopts every one).
    adopt_endpoints: frozenset[str] = frozenset()

    def may_change(self, endpoint: EndpointView) -> bool:
        """The app changes the endpoints it created, and those ``ADOPT_ENDPOINTS`` lists."""
        return endpoint.owned or "*" in self.adopt_endpoints or endpoint.name.lower() in self.adopt_endpoints


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


@dataclass(frozen=True)
class Finish:
    """Mark the rollout ``state``. ``retire``: as for ``SetTraffic`` (already out of traffic)."""

    state: State
    reason: str
    retire: tuple[str, ...] = ()


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


Action = Wait | CreateEndpoint | CreateDeployment | SetTraffic | Finish | Fail | Nothing
CleanupAction = Delete | Wait | Nothing
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
    # The rollout's own time: queueing behind other rollouts does not count (rows from before turn_taken_at
    # existed fall back to their creation time once deploying).
    started = rollout.turn_taken_at or (rollout.created_at if rollout.state is State.DEPLOYING else None)
    if started is not None and now - started > policy.timeout:
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
        return CreateDeployment()
    if not mine.serves(plan.model_name, plan.model_version):
        return Fail(
            f"deployment name {mine.name} is already used by another model ({mine.model or mine.tags}); "
            "it is left untouched"
        )
    if mine.failed:
        if mine.provisioning_state.lower() == "canceled" and "deployment" not in rollout.retries:
            return CreateDeployment(f"deployment {mine.name} was Canceled: PUT it again once", retry="deployment")
        return _fail(f"deployment {mine.name} ended {mine.provisioning_state}", view, mine, policy)

    retire = retiring(plan, view, seen.siblings)
    traffic, mirror = desired_traffic(view, plan, retire)
    if traffic != view.live_traffic() or mirror != view.live_mirror():
        retired = f"; retiring {', '.join(retire)}" if retire else ""
        return SetTraffic(traffic, mirror, _describe(traffic, mirror) + retired, retire=retire)
    return _finish(plan, view, retire)


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
        failed = d.failed or state_of.get(name) is State.FAILED
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
