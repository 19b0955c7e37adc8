"""Rolling back (pure): the one write back to the split before the rollout, or why there is none to make."""

from __future__ import annotations

from collections.abc import Sequence

from app.rollout.decide.actions import Action, DropRequest, Finish, RollBack, Stuck
from app.rollout.decide.gate import GateResult
from app.rollout.decide.model import EndpointView, Progress, Rollout, State
from app.rollout.decide.traffic import describe, rollback_target, serves

#: States of a rollout that has changed (or holds the turn to change) the endpoint's traffic.
CHANGED_THE_ENDPOINT = (State.DEPLOYING, State.BAKING, State.LIVE, State.CANARY, State.DARK, State.ABORTED)


def rollback(rollout: Rollout, view: EndpointView | None, why: str, gate: GateResult | None) -> Action:
    """Back, in one write, to the split before the rollout (``traffic.rollback_target``). A row that recorded no
    split (written before the split was recorded at the first traffic move) goes back to the others it shares with."""
    plan, progress = rollout.plan, rollout.progress
    if view is None or (progress.before_traffic is None and not serves(rollout, view)):
        return Finish(State.ROLLED_BACK, f"rolled back: {why}; no traffic had moved to it, nothing written", gate=gate)
    before = progress.before_traffic
    if before is None:
        before = view.live_traffic()
        if not any(pct for name, pct in before.items() if name != plan.deployment.lower()):
            return _cannot_roll_back(rollout, f"{why}: no split was recorded before the rollout")
    target = rollback_target(before, progress.before_mirror, view, plan.deployment)
    if target is None:
        gone = ", ".join(sorted(name for name, pct in before.items() if pct))
        return _cannot_roll_back(rollout, f"{why}: the deployments of the split before the rollout ({gone}) are gone")
    traffic, mirror = target
    return RollBack(traffic, mirror, f"rolled back: {why}; {describe(traffic, mirror)}", gate)


def rollback_why(progress: Progress) -> str:
    """Why a rollback recorded on the row (``requested``) is under way, for its reason: the operator who asked, or the
    gate whose verdict it carries out (kept on the row while the container logs were fetched first)."""
    last = progress.history[-1] if progress.history else {}
    if last.get("action") == "rollback" and last.get("effect") == "request_rollback":
        return "an operator asked for a rollback"
    gate = (
        progress.gate
    )  # a failed verdict is acted on at once: it is this rollback's cause (an inconclusive one may not be)
    if gate is not None and gate.get("outcome") == "fail":
        return "gate fail: " + "; ".join(str(reason) for reason in gate.get("reasons") or ())
    return "a rollback is under way"


def _cannot_roll_back(rollout: Rollout, why: str) -> Action:
    if rollout.state.terminal:
        return DropRequest(f"cannot roll back ({why}); traffic left as it is")
    return Stuck(f"cannot roll back ({why}); traffic left as it is until an operator acts (abort)")


def rollback_blocker(rollout: Rollout, view: EndpointView | None, siblings: Sequence[Rollout]) -> str:
    """Why an ended rollout cannot be rolled back, or "": a newer rollout changed the endpoint since (roll that one
    back first: rolling this one back would silently undo it), or the split it replaced is gone."""
    started = rollout.turn_taken_at or rollout.created_at
    newer = [
        other
        for other in siblings
        if other.plan.deployment != rollout.plan.deployment
        and other.state in CHANGED_THE_ENDPOINT
        and (other.turn_taken_at or other.created_at) > started
    ]
    if newer:
        return (
            f"{newer[0].plan.deployment} ({newer[0].state.value}) changed the endpoint since; roll that one back first"
        )
    before = {name: pct for name, pct in (rollout.progress.before_traffic or {}).items() if pct}
    if view is None or not before:
        return "there is no split from before it to go back to"
    if rollback_target(before, rollout.progress.before_mirror, view, rollout.plan.deployment) is None:
        return f"the deployments it replaced ({', '.join(sorted(before))}) are gone or failed"
    return ""
