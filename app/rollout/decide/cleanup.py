"""Cleanup owed on an endpoint after rollouts end (pure): which surplus deployment of the app's own goes next."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from app.rollout.decide.actions import Delete, Nothing, Wait
from app.rollout.decide.failures import ErrorKind, Failure, backoff_delay
from app.rollout.decide.model import Cleanup, DeploymentView, EndpointView, Rollout, State
from app.rollout.decide.policy import Policy

ACTIVE_STATES = (State.PENDING, State.DEPLOYING, State.BAKING, State.AWAITING_APPROVAL)
#: Rollouts whose deployment is of no further use once it serves nothing: deleted first, and it takes no place among
#: the ``KEEP_DEPLOYMENTS`` (an aborted one that serves nothing is no rollback target either; one that serves is
#: kept for as long as it does).
GARBAGE_STATES = (State.SUPERSEDED, State.FAILED, State.ROLLED_BACK, State.ABORTED, State.REJECTED, State.EXPIRED)
#: Kept under ``KEEP_FAILED_DEPLOYMENTS`` (to look into): failed, rolled back, rejected by an operator, expired.
KEPT_WHEN_ASKED = (State.FAILED, State.ROLLED_BACK, State.REJECTED, State.EXPIRED)
CleanupAction = Delete | Wait | Nothing


def cleanup_step(
    view: EndpointView | None, rollouts: Sequence[Rollout], policy: Policy, *, wrote: bool = False
) -> CleanupAction:
    """Cleanup owed on an endpoint (pure): delete the next surplus deployment, wait, or nothing left to do.

    Cleanup never takes the endpoint's write turn: it waits while any rollout there is pending or deploying and
    while AML is busy with the endpoint, and it deletes one deployment per pass.
    """
    if view is None:
        return Nothing("the endpoint does not exist; nothing to clean up")
    if not policy.writes:
        return Wait("cleanup waits: DEPLOY_MODE=hold, no deletes")
    if wrote:
        return Wait("cleanup waits for the next pass: a write went to this endpoint in this pass")
    # A rollout awaiting approval writes nothing and may wait for days: cleanup goes on around it (its deployment is
    # protected).
    active = next((r for r in rollouts if not r.state.terminal and r.state is not State.AWAITING_APPROVAL), None)
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
        failed = d.failed or state_of.get(name) in KEPT_WHEN_ASKED
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


@dataclass(frozen=True)
class CleanupFailure:
    """What a refused delete means: what is still owed (None: given up), whether to report it (the first time)."""

    owed: Cleanup | None
    report: bool
    reason: str


def after_cleanup_failure(
    owed: Cleanup, deployment: str, failure: Failure, policy: Policy, now: dt.datetime
) -> CleanupFailure:
    """A 409 is tried again next pass; anything else backs off and is reported once; after ``ROLLOUT_MAX_ATTEMPTS``
    failed deletes in a row the app stops trying (an error in the log says to delete it by hand)."""
    if failure.kind is ErrorKind.BUSY:
        return CleanupFailure(owed, False, f"waiting, AML answered 409 to DELETE {deployment}")
    attempts = owed.attempts + 1
    if attempts >= policy.max_attempts:
        return CleanupFailure(None, False, f"gave up deleting {deployment} after {attempts} attempts: {failure.detail}")
    delay = backoff_delay(attempts)
    reason = f"deleting {deployment} failed (attempt {attempts}), retrying after {delay}: {failure.detail}"
    return CleanupFailure(Cleanup(attempts, now + delay, failure.detail), attempts == 1, reason)
