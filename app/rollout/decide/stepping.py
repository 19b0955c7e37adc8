"""Traffic in steps (pure): where a baking rollout goes next.

``next_move``: (step plan, current step, when its bake started, now, gate verdict, pause flag, operator request) →
one ``Move``. It is level-triggered like ``step.py``: call it on every tick; it asks for a gate evaluation
(``EVALUATE``) only once the bake is over, so metrics are read once per bake, not per tick. Operator actions are in
``operator.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from app.rollout.decide.gate import GatePolicy, GateResult, NextAfterInconclusive, Outcome, after_inconclusive


@dataclass(frozen=True)
class StepPlan:
    """Traffic shares of the new deployment, strictly increasing, the last one final; each step bakes ``bake``."""

    steps: tuple[int, ...]
    bake: dt.timedelta = dt.timedelta(0)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a step plan needs at least one step")
        if any(b <= a for a, b in itertools.pairwise(self.steps)):
            raise ValueError(f"steps {self.steps} must be strictly increasing")
        if self.bake < dt.timedelta(0):
            raise ValueError("bake must not be negative")

    @classmethod
    def single(cls, traffic: int, bake: dt.timedelta = dt.timedelta(0)) -> StepPlan:
        return cls((traffic,), bake)

    @property
    def final(self) -> int:
        return self.steps[-1]

    @property
    def gated(self) -> bool:
        """Zero bake: the steps advance without gates (today's behaviour)."""
        return self.bake > dt.timedelta(0)


class MoveKind(StrEnum):
    BAKING = "baking"  # stay at this step; look again at ``wait_until``
    EVALUATE = "evaluate"  # the bake is over: read the window's metrics and call again with the verdict
    ADVANCE = "advance"  # set traffic to ``traffic`` (step ``step``); its bake starts when that write lands
    PROMOTE = "promote"  # set the final traffic now, skipping the remaining bakes
    ROLLBACK = "rollback"  # one write back to the recorded pre-rollout split
    HOLD = "hold"  # stay until an operator acts (paused, or an inconclusive gate with GATE_INCONCLUSIVE=hold)
    DONE = "done"  # the final step's bake passed (or there was none): finish, clean up what it replaced


@dataclass(frozen=True)
class Move:
    kind: MoveKind
    reason: str
    step: int | None = None  # the step index the move goes to (ADVANCE, PROMOTE) or stays at
    traffic: int | None = None  # the new deployment's share after the move
    wait_until: dt.datetime | None = None
    extensions_used: int = 0  # the value to record after this move
    gate: GateResult | None = None  # the evidence the move was decided on


def bake_deadline(started_at: dt.datetime, bake: dt.timedelta, extensions_used: int) -> dt.datetime:
    """End of the current step's bake: one bake, plus one more per extension (the window keeps its start)."""
    return started_at + bake * (1 + extensions_used)


def next_move(
    plan: StepPlan,
    step: int,
    bake_started_at: dt.datetime,
    now: dt.datetime,
    gate: GateResult | None,
    policy: GatePolicy,
    *,
    extensions_used: int = 0,
    paused: bool = False,
    requested: str | None = None,
) -> Move:
    """The next move of a rollout whose new deployment serves ``plan.steps[step]``.

    Order: an operator's rollback, then promote; a pause holds; zero bake advances at once; a bake still
    running waits; an ended bake with no verdict asks for one; PASS advances (DONE after the final step);
    FAIL rolls back; INCONCLUSIVE extends, then does what ``GATE_INCONCLUSIVE`` says.
    """
    if not 0 <= step < len(plan.steps):
        raise ValueError(f"step {step} is not a step of {plan.steps}")
    last = len(plan.steps) - 1
    if requested == "rollback":
        return Move(MoveKind.ROLLBACK, "operator asked for a rollback", step, None, extensions_used=extensions_used)
    if requested == "promote":
        return Move(MoveKind.PROMOTE, "operator promoted: remaining bakes skipped", last, plan.final)
    if requested is not None:
        raise ValueError(f"requested={requested!r}: only promote and rollback are carried out as moves")
    if paused:
        return Move(MoveKind.HOLD, "paused by an operator", step, plan.steps[step], extensions_used=extensions_used)
    if not plan.gated:
        return _forward(plan, step, "no bake: steps advance without gates", None)
    deadline = bake_deadline(bake_started_at, plan.bake, extensions_used)
    if now < deadline:
        return Move(
            MoveKind.BAKING,
            f"baking step {step + 1}/{len(plan.steps)} at {plan.steps[step]}% until {deadline.isoformat()}",
            step,
            plan.steps[step],
            wait_until=deadline,
            extensions_used=extensions_used,
        )
    if gate is None:
        return Move(
            MoveKind.EVALUATE, "bake over: evaluate the gate", step, plan.steps[step], extensions_used=extensions_used
        )
    if gate.outcome is Outcome.PASS:
        return _forward(plan, step, gate.summary, gate)
    if gate.outcome is Outcome.FAIL:
        return Move(MoveKind.ROLLBACK, gate.summary, step, None, extensions_used=extensions_used, gate=gate)
    return _inconclusive(plan, step, bake_started_at, gate, policy, extensions_used)


def _inconclusive(
    plan: StepPlan,
    step: int,
    bake_started_at: dt.datetime,
    gate: GateResult,
    policy: GatePolicy,
    extensions_used: int,
) -> Move:
    """An inconclusive verdict: extend the bake while extensions remain, then do what ``GATE_INCONCLUSIVE`` says."""
    then = after_inconclusive(extensions_used, policy)
    if then is NextAfterInconclusive.EXTEND:
        used = extensions_used + 1
        until = bake_deadline(bake_started_at, plan.bake, used)
        return Move(
            MoveKind.BAKING,
            f"{gate.summary}; bake extended ({used}/{policy.max_extensions}) until {until.isoformat()}",
            step,
            plan.steps[step],
            wait_until=until,
            extensions_used=used,
            gate=gate,
        )
    after = f"{gate.summary}; extensions used up ({extensions_used}/{policy.max_extensions}), GATE_INCONCLUSIVE="
    if then is NextAfterInconclusive.ROLLBACK:
        return Move(MoveKind.ROLLBACK, after + "rollback", step, None, extensions_used=extensions_used, gate=gate)
    if then is NextAfterInconclusive.PROMOTE:
        return _forward(plan, step, after + "promote: the step counts as passed", gate)
    return Move(
        MoveKind.HOLD,
        after + "hold: waiting for an operator",
        step,
        plan.steps[step],
        extensions_used=extensions_used,
        gate=gate,
    )


def _forward(plan: StepPlan, step: int, reason: str, gate: GateResult | None) -> Move:
    if step == len(plan.steps) - 1:
        return Move(MoveKind.DONE, reason, step, plan.final, gate=gate)
    return Move(MoveKind.ADVANCE, reason, step + 1, plan.steps[step + 1], gate=gate)


def rollback_split(recorded: Mapping[str, int], new_deployment: str) -> dict[str, int]:
    """The traffic to write on rollback: the split recorded before the rollout, with the new deployment at 0.

    On a new endpoint the recorded split is empty, so the rollback leaves no live traffic (all zero).
    """
    split = {name: pct for name, pct in recorded.items() if name.lower() != new_deployment.lower()}
    split[new_deployment] = 0
    return split
