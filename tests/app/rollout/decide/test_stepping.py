"""Traffic steps: every move of a baking rollout."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.gate import GateEvidence, GatePolicy, GateResult, Outcome
from app.rollout.decide.stepping import (
    MoveKind,
    StepPlan,
    bake_deadline,
    next_move,
    rollback_split,
)

pytestmark = pytest.mark.fast

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
BAKE = dt.timedelta(minutes=10)
PLAN = StepPlan((10, 50, 100), BAKE)
POLICY = GatePolicy(max_extensions=2)


def _gate(outcome: Outcome) -> GateResult:
    evidence = GateEvidence(
        T0, T0 + BAKE, T0 + BAKE, "green", ("blue",), 500, 0, 0.0, 50, 4500, 45, 1.1, True, 1, 1.5, None, 100, 40, 0, 0
    )
    return GateResult(outcome, (f"{outcome.value} because",), evidence)


def test_step_plan_rules() -> None:
    assert StepPlan.single(100).steps == (100,) and not StepPlan.single(100).gated
    assert PLAN.final == 100 and PLAN.gated
    for bad in ((), (50, 50), (50, 10)):
        with pytest.raises(ValueError, match="step"):
            StepPlan(bad)
    with pytest.raises(ValueError, match="negative"):
        StepPlan((10,), -BAKE)


def test_bake_deadline_grows_by_one_bake_per_extension() -> None:
    assert bake_deadline(T0, BAKE, 0) == T0 + BAKE
    assert bake_deadline(T0, BAKE, 2) == T0 + 3 * BAKE


def test_zero_bake_advances_through_every_step_without_gates() -> None:
    plan = StepPlan((10, 50, 100))
    moves = [next_move(plan, step, T0, T0, None, POLICY) for step in range(3)]
    assert [(m.kind, m.step, m.traffic) for m in moves] == [
        (MoveKind.ADVANCE, 1, 50),
        (MoveKind.ADVANCE, 2, 100),
        (MoveKind.DONE, 2, 100),
    ]
    assert all(m.gate is None for m in moves)


def test_a_bake_waits_until_its_end() -> None:
    move = next_move(PLAN, 0, T0, T0 + BAKE - dt.timedelta(seconds=1), None, POLICY)
    assert (move.kind, move.step, move.wait_until, move.traffic) == (MoveKind.BAKING, 0, T0 + BAKE, 10)


def test_an_ended_bake_asks_for_the_gate_once() -> None:
    assert next_move(PLAN, 0, T0, T0 + BAKE, None, POLICY).kind is MoveKind.EVALUATE


@pytest.mark.parametrize(
    ("step", "kind", "to", "traffic"),
    [(0, MoveKind.ADVANCE, 1, 50), (1, MoveKind.ADVANCE, 2, 100), (2, MoveKind.DONE, 2, 100)],
)
def test_a_passed_gate_advances_and_the_final_bake_finishes(step: int, kind: MoveKind, to: int, traffic: int) -> None:
    gate = _gate(Outcome.PASS)
    move = next_move(PLAN, step, T0, T0 + BAKE, gate, POLICY)
    assert (move.kind, move.step, move.traffic, move.gate) == (kind, to, traffic, gate)


@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_failed_gate_rolls_back_with_its_evidence(step: int) -> None:
    gate = _gate(Outcome.FAIL)
    move = next_move(PLAN, step, T0, T0 + BAKE, gate, POLICY)
    assert (move.kind, move.gate) == (MoveKind.ROLLBACK, gate)


def test_inconclusive_extends_then_follows_the_setting() -> None:
    gate = _gate(Outcome.INCONCLUSIVE)
    first = next_move(PLAN, 0, T0, T0 + BAKE, gate, POLICY)
    assert (first.kind, first.extensions_used, first.wait_until) == (MoveKind.BAKING, 1, T0 + 2 * BAKE)
    # During the extension the bake waits, then asks for the gate again over the longer window.
    assert next_move(PLAN, 0, T0, T0 + BAKE, None, POLICY, extensions_used=1).kind is MoveKind.BAKING
    assert next_move(PLAN, 0, T0, T0 + 2 * BAKE, None, POLICY, extensions_used=1).kind is MoveKind.EVALUATE
    second = next_move(PLAN, 0, T0, T0 + 2 * BAKE, gate, POLICY, extensions_used=1)
    assert (second.kind, second.extensions_used) == (MoveKind.BAKING, 2)
    expected = {"hold": (MoveKind.HOLD, 0), "rollback": (MoveKind.ROLLBACK, 0), "promote": (MoveKind.ADVANCE, 1)}
    for setting, (kind, step) in expected.items():
        policy = GatePolicy(max_extensions=2, inconclusive=setting)
        move = next_move(PLAN, 0, T0, T0 + 3 * BAKE, gate, policy, extensions_used=2)
        assert (move.kind, move.step) == (kind, step if kind is not MoveKind.ROLLBACK else 0), setting
        assert f"GATE_INCONCLUSIVE={setting}" in move.reason


def test_inconclusive_promote_at_the_final_step_finishes() -> None:
    policy = GatePolicy(max_extensions=0, inconclusive="promote")
    move = next_move(PLAN, 2, T0, T0 + BAKE, _gate(Outcome.INCONCLUSIVE), policy)
    assert move.kind is MoveKind.DONE


def test_pause_holds_even_when_the_bake_is_over() -> None:
    move = next_move(PLAN, 1, T0, T0 + 5 * BAKE, _gate(Outcome.PASS), POLICY, paused=True)
    assert (move.kind, move.traffic) == (MoveKind.HOLD, 50)


def test_operator_requests_come_first() -> None:
    promote = next_move(PLAN, 0, T0, T0, None, POLICY, paused=True, requested="promote")
    assert (promote.kind, promote.step, promote.traffic) == (MoveKind.PROMOTE, 2, 100)
    rollback = next_move(PLAN, 1, T0, T0, _gate(Outcome.PASS), POLICY, requested="rollback")
    assert rollback.kind is MoveKind.ROLLBACK
    with pytest.raises(ValueError, match="only promote and rollback"):
        next_move(PLAN, 0, T0, T0, None, POLICY, requested="pause")
    with pytest.raises(ValueError, match="not a step"):
        next_move(PLAN, 3, T0, T0, None, POLICY)


def test_rollback_split_restores_the_recorded_traffic() -> None:
    assert rollback_split({"blue": 100}, "green") == {"blue": 100, "green": 0}
    assert rollback_split({"blue": 70, "old": 30, "Green": 0}, "green") == {"blue": 70, "old": 30, "green": 0}
    assert rollback_split({}, "green") == {"green": 0}  # a new endpoint: no live traffic afterwards
