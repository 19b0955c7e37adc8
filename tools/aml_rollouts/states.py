"""What the CLI knows about rollout states and operator actions: two tables, one line per entry.

A state the app reports that is not in ``STATES`` (a newer app) is shown as it is, in a neutral style, and
counts as still in progress: ``status`` keeps waiting for it until ``--timeout`` and then says it is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """How a state ends a wait: what ``status`` exits with."""

    RUNNING = "running"  # still moving: keep waiting (exit 2 when the wait ends first)
    SERVING = "serving"  # ended serving as planned (exit 0)
    ENDED = "ended"  # ended without serving as planned (exit 1)


@dataclass(frozen=True)
class StateStyle:
    """One state: its phase, its colour in the terminal (a rich style) and on the dashboard (a CSS class)."""

    phase: Phase
    colour: str
    badge: str
    meaning: str


#: Every state the app reports (docs/rollout.md, "States"). Adding a state is one line here.
STATES: dict[str, StateStyle] = {
    "pending": StateStyle(Phase.RUNNING, "cyan", "running", "accepted; waiting for its turn on the endpoint"),
    "deploying": StateStyle(Phase.RUNNING, "cyan", "running", "creating the endpoint, the deployment, the traffic"),
    "baking": StateStyle(Phase.RUNNING, "blue", "running", "a step's traffic is in place and watched"),
    "live": StateStyle(Phase.SERVING, "green", "good", "serves its final share, 100%"),
    "canary": StateStyle(Phase.SERVING, "green", "good", "serves its final share beside the previous deployments"),
    "dark": StateStyle(Phase.SERVING, "green", "good", "deployed with 0% live traffic (mirror traffic maybe)"),
    "planned": StateStyle(Phase.ENDED, "magenta", "neutral", "DEPLOY_MODE=plan: recorded, never applied"),
    "superseded": StateStyle(Phase.ENDED, "yellow", "neutral", "a newer version of the model got there first"),
    "aborted": StateStyle(Phase.ENDED, "yellow", "warn", "an operator stopped it where it was"),
    "rolled_back": StateStyle(Phase.ENDED, "red", "bad", "traffic went back to the split before the rollout"),
    "failed": StateStyle(Phase.ENDED, "red", "bad", "the deployment failed, timed out or was refused"),
    "rejected": StateStyle(Phase.ENDED, "red", "bad", "invalid tags or endpoint, or an operator rejected it"),
    "awaiting_approval": StateStyle(
        Phase.RUNNING, "yellow", "warn", "smoke-tested, no traffic: waits for an operator to approve or reject it"
    ),
    "expired": StateStyle(Phase.ENDED, "yellow", "warn", "nobody approved or rejected it within APPROVAL_TIMEOUT"),
}

UNKNOWN = StateStyle(Phase.RUNNING, "white", "unknown", "a state this CLI does not know; upgrade aml-rollouts")


def style_of(state: str) -> StateStyle:
    return STATES.get(state, UNKNOWN)


def phase_of(rollout: Mapping[str, Any]) -> Phase:
    """A rollout's phase: its state's, except that an operator's promote or rollback still to do keeps it running."""
    progress = rollout.get("progress")
    requested = progress.get("requested") if isinstance(progress, dict) else None
    phase = style_of(str(rollout.get("state"))).phase
    return Phase.RUNNING if requested else phase


@dataclass(frozen=True)
class Action:
    """One operator action: ``POST /api/rollouts/{endpoint}/{deployment}/{name}``."""

    name: str
    summary: str


#: The operator actions the app accepts (docs/operations.md, "Steer a rollout"). Adding one is one line here.
ACTIONS: tuple[Action, ...] = (
    Action("promote", "skip the remaining bakes and go to the final share now, whatever the gates say"),
    Action("rollback", "send traffic back, in one write, to the split before the rollout"),
    Action("abort", "stop where it is: no further writes, traffic stays as it is"),
    Action("retry", "start a failed, rolled back or aborted rollout again from its plan"),
    Action("pause", "hold it at its step: bakes do not advance"),
    Action("resume", "go on after a pause: the step's bake starts again"),
    Action("approve", "let a rollout awaiting approval take its first traffic step (recorded: who, when, why)"),
    Action("reject", "end a rollout awaiting approval as rejected; its deployment is deleted"),
)
