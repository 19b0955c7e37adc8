"""Traffic splits (pure): the split a rollout wants, the earlier canaries it retires, the split a rollback restores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.rollout.decide.model import EndpointView, Rollout, RolloutPlan, State
from app.rollout.decide.versions import is_newer

#: Ended states whose deployment a newer version of the same model retires (takes its share).
RETIRABLE_STATES = (State.CANARY, State.DARK)


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
    the deployments that had traffic to the rest (canary); with nothing else live it takes 100. A deployment Azure
    ML shows failed gets no share (it refuses traffic to one): its share goes to the new deployment too.
    0 leaves live traffic alone and mirrors ``plan.mirror`` percent to it.
    """
    me = plan.deployment.lower()
    current = view.live_traffic()
    gone = {name.lower() for name in retire}
    if plan.traffic:
        gone |= {d.name.lower() for d in view.deployments if d.failed and d.name.lower() != me}
    others = {name: pct for name, pct in current.items() if name != me and name not in gone}
    mirror = {name: pct for name, pct in view.live_mirror().items() if name != me and name not in gone}
    if plan.traffic == 0:
        if plan.mirror and not current.get(me):  # Azure ML mirrors only to a deployment with no live share
            mirror = {me: plan.mirror}
        if not gone & set(current):
            return current, mirror
        return (scale(others, 100) if others else {}), mirror
    if plan.traffic == 100 or not others:
        return {me: 100}, mirror
    traffic = {me: plan.traffic, **scale(others, 100 - plan.traffic)}
    return {name: pct for name, pct in traffic.items() if pct}, mirror


def scale(shares: Mapping[str, int], total: int) -> dict[str, int]:
    """Scale ``shares`` to sum to ``total`` by the largest-remainder method (stable, deterministic)."""
    whole = sum(shares.values())
    exact = {name: pct * total / whole for name, pct in shares.items()}
    scaled = {name: int(value) for name, value in exact.items()}
    leftover = total - sum(scaled.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - scaled[n]), n))[:leftover]:
        scaled[name] += 1
    return scaled


def rollback_target(
    before: Mapping[str, int], before_mirror: Mapping[str, int], view: EndpointView, new_deployment: str
) -> tuple[dict[str, int], dict[str, int]] | None:
    """The split a rollback writes: the split found before the rollout without the new deployment, the others scaled
    back to exactly their shares of it (a split recorded mid-rollout, after a retry, still holds the new one).

    Deployments of that split that no longer exist, or failed, are left out and the rest scaled up; None when none of
    those that had traffic is left (nothing to roll back to). An empty split (a new endpoint) leaves no live traffic.
    """
    me = new_deployment.lower()
    others = {name.lower(): pct for name, pct in before.items() if name.lower() != me and pct}
    present = {name: pct for name, pct in others.items() if _serviceable(view, name)}
    if others and not present:
        return None
    traffic = {**(scale(present, 100) if present else {}), me: 0}
    mirror = {
        name.lower(): pct
        for name, pct in before_mirror.items()
        if name.lower() != me and pct and _serviceable(view, name) and not traffic.get(name.lower())
    }
    return traffic, mirror


def _serviceable(view: EndpointView, name: str) -> bool:
    """Can ``name`` take traffic back? It exists and has not failed (Azure ML refuses traffic to a failed one)."""
    found = view.deployment(name)
    return found is not None and not found.failed


def serves(rollout: Rollout, view: EndpointView | None) -> bool:
    """Does the rollout's new deployment have live or mirrored traffic in ``view``?"""
    if view is None:
        return False
    me = rollout.plan.deployment.lower()
    return bool(view.live_traffic().get(me) or view.live_mirror().get(me))


def describe(traffic: Mapping[str, int], mirror: Mapping[str, int]) -> str:
    live = ", ".join(f"{name}={pct}%" for name, pct in sorted(traffic.items()) if pct) or "none"
    mirrored = ", ".join(f"{name}={pct}%" for name, pct in sorted(mirror.items()) if pct)
    return f"traffic {live}" + (f"; mirror {mirrored}" if mirrored else "")


def refused_shares(view: EndpointView, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> list[str]:
    """The deployments a split gives a share to that Azure ML would refuse it for: gone, or not succeeded."""
    named = {name for name, pct in (*traffic.items(), *mirror.items()) if pct}
    found = {name: view.deployment(name) for name in named}
    return sorted(name for name, deployment in found.items() if deployment is None or not deployment.succeeded)
