"""The transition table: every state reachable, every row consistent, every operator rule backed by a row."""

from __future__ import annotations

import pytest

from app.rollout.decide.model import State
from app.rollout.decide.operator import OPERATOR_RULES, OperatorAction
from app.rollout.decide.table import ROWS, ImpossibleTransition, Trigger, allows, target

pytestmark = pytest.mark.fast


def test_every_state_is_reached_and_every_active_state_can_end() -> None:
    reached = {row.target for row in ROWS}
    assert reached == set(State)
    for state in State:
        if not state.terminal:
            assert any(row.source is state and row.target.terminal for row in ROWS), state


def test_rows_are_unique_and_a_final_state_changes_only_by_an_operator_or_a_rollback() -> None:
    keys = [(row.source, row.trigger, row.target) for row in ROWS]
    assert len(keys) == len(set(keys))
    by_people = {Trigger.ROLLED_BACK, Trigger.RETRIED, Trigger.RETIRED, Trigger.REINSTATED}
    for row in ROWS:
        if row.source is not None and row.source.terminal:
            assert row.trigger in by_people, row


def test_target_refuses_what_the_table_does_not_hold() -> None:
    assert target(State.PENDING, Trigger.TURN_TAKEN) is State.DEPLOYING
    assert target(State.BAKING, Trigger.FINISHED, State.CANARY) is State.CANARY
    with pytest.raises(ImpossibleTransition):
        target(State.BAKING, Trigger.GAVE_UP)  # after traffic moved, never failed
    with pytest.raises(ImpossibleTransition):
        target(State.BAKING, Trigger.FINISHED, State.DARK)
    with pytest.raises(ImpossibleTransition):
        target(State.DEPLOYING, Trigger.FINISHED)  # several targets: the caller must say which
    assert not allows(State.LIVE, Trigger.ABORTED)


@pytest.mark.parametrize("action", list(OperatorAction))
def test_every_operator_rule_that_changes_the_state_is_a_row_of_the_table(action: OperatorAction) -> None:
    for state, rule in OPERATOR_RULES[action].items():
        if rule.trigger is not None:
            assert allows(state, rule.trigger), (action, state)
