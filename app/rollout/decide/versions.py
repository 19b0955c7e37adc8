"""Which model version is newer (pure): numeric versions by number, others by the model's creation time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from app.platform.clock import as_utc
from app.rollout.decide.model import EndpointView, Rollout, RolloutPlan, State

#: States in which a newer version's rollout makes an older one give way: live, or on its way.
SUPERSEDING_STATES = (State.PENDING, State.DEPLOYING, State.BAKING, State.LIVE, State.CANARY)


def newer_version(plan: RolloutPlan, view: EndpointView | None, siblings: Sequence[Rollout]) -> str | None:
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
