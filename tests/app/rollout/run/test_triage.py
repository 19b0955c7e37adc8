"""What a tick owes an endpoint, from its rows: a decision first, an operation in flight next, a look last."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from app.rollout.decide.model import Cleanup, Progress, Rollout, State
from app.rollout.run.triage import GateDue, Priority, Work, gate_due, leaves_gate_to_tick, ordered, triage
from tests.fakes import WORKSPACE_ID, make_plan

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
BAKE = dt.timedelta(minutes=10)


def rollout(state: State = State.BAKING, *, started: dt.timedelta | None = BAKE, **progress: object) -> Rollout:
    """A canary of ``credit`` in ``state``; its bake started ``started`` ago (None: not started)."""
    plan = replace(make_plan(2), traffic_steps=(10, 100), bake_seconds=int(BAKE.total_seconds()))
    bake_started = NOW - started if started is not None else None
    return Rollout(
        plan=plan,
        state=state,
        created_at=NOW - dt.timedelta(hours=1),
        updated_at=NOW,
        progress=Progress(step=0, bake_started_at=bake_started, **progress),  # type: ignore[arg-type]
    )


def owes(*rollouts: Rollout) -> Priority:
    return triage(WORKSPACE_ID, "credit", rollouts, NOW).priority


def test_a_bake_that_ended_decides_traffic_and_its_gate_is_due_from_the_bake_s_start() -> None:
    ended = rollout(started=BAKE)
    assert owes(ended) is Priority.DECIDES
    due = gate_due(WORKSPACE_ID, "credit", ended, NOW)
    assert due == GateDue(f"{WORKSPACE_ID}/onlineEndpoints/credit", NOW - BAKE, NOW)
    assert triage(WORKSPACE_ID, "credit", [ended], NOW).gates == (due,)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (rollout(started=BAKE / 2), Priority.IDLE),  # mid-bake: a pass only looks
        (rollout(started=BAKE / 2, extensions=1), Priority.IDLE),  # an extended bake ends one bake later
        (rollout(started=BAKE * 2, extensions=1), Priority.DECIDES),
        (rollout(started=BAKE, paused=True), Priority.IDLE),  # paused: waits for a person
        (rollout(started=BAKE / 2, requested="promote"), Priority.DECIDES),  # an operator asked
        (rollout(started=None), Priority.IN_FLIGHT),  # its step's traffic is not in place yet
        (rollout(State.PENDING, started=None), Priority.IN_FLIGHT),
        (rollout(State.DEPLOYING, started=None), Priority.IN_FLIGHT),
        (replace(rollout(State.DEPLOYING, started=None), next_attempt_at=NOW + BAKE), Priority.IDLE),  # backing off
        (replace(rollout(State.DEPLOYING, started=None), next_attempt_at=NOW - BAKE), Priority.IN_FLIGHT),
        (replace(rollout(State.LIVE), cleanup=Cleanup()), Priority.IN_FLIGHT),  # cleanup owed
        (rollout(State.LIVE), Priority.IDLE),
    ],
)
def test_each_rollout_owes_what_its_state_says(case: Rollout, expected: Priority) -> None:
    assert owes(case) is expected


def test_the_endpoint_owes_what_its_most_urgent_rollout_owes_and_rows_it_cannot_see_are_in_flight() -> None:
    assert owes(rollout(started=BAKE / 2), rollout(State.PENDING, started=None)) is Priority.IN_FLIGHT
    assert owes(rollout(State.PENDING, started=None), rollout(started=BAKE)) is Priority.DECIDES
    assert owes() is Priority.IN_FLIGHT  # no active row: its pass decides, as before


def test_no_gate_without_a_bake_or_before_it_ended() -> None:
    unbaked = replace(rollout(started=BAKE), plan=replace(rollout().plan, bake_seconds=0))
    assert gate_due(WORKSPACE_ID, "credit", unbaked, NOW) is None
    assert owes(unbaked) is Priority.DECIDES  # no bake to wait for: the next step is due
    assert gate_due(WORKSPACE_ID, "credit", rollout(started=BAKE / 2), NOW) is None
    assert gate_due(WORKSPACE_ID, "credit", rollout(started=BAKE, paused=True), NOW) is None


def test_passes_go_in_order_of_what_they_owe_then_the_oldest_gate_first() -> None:
    late = GateDue("a", NOW - BAKE, NOW - dt.timedelta(minutes=1))
    early = GateDue("b", NOW - BAKE, NOW - dt.timedelta(minutes=5))
    works = [
        Work(WORKSPACE_ID, "idle", Priority.IDLE),
        Work(WORKSPACE_ID, "deploying", Priority.IN_FLIGHT),
        Work(WORKSPACE_ID, "gate-late", Priority.DECIDES, (late,)),
        Work(WORKSPACE_ID, "asked", Priority.DECIDES),
        Work(WORKSPACE_ID, "gate-early", Priority.DECIDES, (early,)),
    ]
    assert [w.endpoint for w in ordered(works)] == ["gate-early", "gate-late", "asked", "deploying", "idle"]


DELAYS = {"endpoint": 90.0, "deployment": 300.0, "traffic": 30.0, "recheck": 30.0}


def written(action: str, ago: dt.timedelta, state: State = State.DEPLOYING) -> Rollout:
    """A rollout whose last write (``action``, as the ledger records it) was saved ``ago``."""
    base = rollout(state, started=None)
    return replace(base, actions=(action,), updated_at=NOW - ago)


@pytest.mark.parametrize(
    ("action", "ago", "expected"),
    [
        ("PUT deployment credit-v2 (1 x Standard_DS3_v2)", dt.timedelta(seconds=100), Priority.IDLE),
        ("PUT deployment credit-v2 (1 x Standard_DS3_v2)", dt.timedelta(seconds=331), Priority.IN_FLIGHT),
        ("PUT endpoint credit", dt.timedelta(seconds=60), Priority.IDLE),
        ("PUT endpoint credit", dt.timedelta(seconds=121), Priority.IN_FLIGHT),
        ("PUT endpoint credit traffic credit-v1=90%, credit-v2=10%", dt.timedelta(seconds=30), Priority.IDLE),
        ("PUT endpoint credit traffic credit-v1=90%, credit-v2=10%", dt.timedelta(seconds=61), Priority.IN_FLIGHT),
    ],
)
def test_an_operation_whose_follow_up_is_still_to_come_is_only_looked_at(
    action: str, ago: dt.timedelta, expected: Priority
) -> None:
    assert triage(WORKSPACE_ID, "credit", [written(action, ago)], NOW, DELAYS).priority is expected
    # A step's traffic write not yet seen in place waits on its follow-up the same way.
    waiting = written(action, ago, State.BAKING)
    assert triage(WORKSPACE_ID, "credit", [waiting], NOW, DELAYS).priority is expected


def test_without_follow_ups_every_operation_in_flight_is_polled() -> None:
    fresh = written("PUT deployment credit-v2 (1 x Standard_DS3_v2)", dt.timedelta(seconds=10))
    assert triage(WORKSPACE_ID, "credit", [fresh], NOW, None).priority is Priority.IN_FLIGHT
    assert triage(WORKSPACE_ID, "credit", [rollout(State.PENDING, started=None)], NOW, DELAYS).priority is (
        Priority.IN_FLIGHT  # no write yet: its turn to write is what the pass is for
    )


def test_an_endpoint_whose_every_moving_rollout_waits_for_its_follow_up_is_left_to_that_follow_up() -> None:
    deploying = written("PUT deployment credit-v2 (1 x Standard_DS3_v2)", dt.timedelta(seconds=100))
    overdue = written("PUT deployment credit-v2 (1 x Standard_DS3_v2)", dt.timedelta(seconds=331))
    stepping = written(
        "PUT endpoint credit traffic credit-v1=90%, credit-v2=10%", dt.timedelta(seconds=30), State.BAKING
    )

    def awaits(*rollouts: Rollout, delays: dict[str, float] | None = DELAYS) -> bool:
        return triage(WORKSPACE_ID, "credit", rollouts, NOW, delays).awaits_followup

    assert awaits(deploying) and awaits(stepping)
    assert awaits(deploying, rollout(State.LIVE))  # a finished sibling needs nothing
    assert not awaits(overdue)  # its follow-up is late: the tick looks again
    assert not awaits(deploying, delays=None)  # no follow-ups: the tick is all there is
    assert not awaits(deploying, rollout(started=BAKE / 2))  # a bake in progress is still looked at
    assert not awaits(deploying, replace(rollout(State.LIVE), cleanup=Cleanup()))  # cleanup owed
    assert not awaits(replace(deploying, progress=replace(deploying.progress, requested="rollback")))
    assert not awaits(replace(deploying, next_attempt_at=NOW + BAKE))  # backing off: not a follow-up's wait
    assert not awaits(rollout(State.PENDING, started=None))  # its turn to write is the tick's
    assert not awaits()


def test_a_follow_up_leaves_the_endpoint_to_the_tick_only_for_a_gate_due_and_no_operator_waiting() -> None:
    def leaves(*rollouts: Rollout) -> bool:
        return leaves_gate_to_tick(WORKSPACE_ID, "credit", rollouts, NOW)

    assert leaves(rollout(started=BAKE))  # the bake is over: its gate can wait for the tick's batch
    assert leaves(rollout(started=BAKE), rollout(State.DEPLOYING, started=None))  # a sibling waits a tick with it
    assert not leaves(rollout(started=BAKE / 2))  # mid-bake: the pass only looks, reads no metrics
    assert not leaves(rollout(started=BAKE, paused=True))  # paused: no gate
    assert not leaves(rollout(State.DEPLOYING, started=None))  # an operation in flight: advanced now
    assert not leaves(rollout(started=BAKE, requested="promote"))  # an operator asked: carried out now
    assert not leaves(rollout(started=BAKE), rollout(State.DEPLOYING, started=None, requested="rollback"))
    assert not leaves()
