"""The state machine's progressive-delivery rules: steps, bakes, gates, rollback, pause, requests."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from typing import Any

import pytest

from app.rollout.decide.actions import (
    CreateDeployment,
    CreateEndpoint,
    DropRequest,
    Evaluate,
    Extend,
    Finish,
    Hold,
    RollBack,
    SetTraffic,
    StartBake,
    Wait,
)
from app.rollout.decide.gate import GateEvidence, GateResult, Outcome
from app.rollout.decide.model import Progress, State
from tests.app.rollout.decide.test_step import NOW, POLICY, decide, deployment, endpoint, plan, rollout

pytestmark = pytest.mark.fast

STEPPED = replace(plan("2", 100), traffic_steps=(10, 50, 100), bake_seconds=600)
BEFORE = {"credit-v1": 100}
BAKED = NOW - dt.timedelta(minutes=11)


def _gate(outcome: Outcome) -> GateResult:
    evidence = GateEvidence(
        NOW,
        NOW,
        NOW,
        "credit-v2",
        ("credit-v1",),
        500,
        0,
        0.0,
        50.0,
        4500,
        50.0,
        1.0,
        True,
        1.0,
        1.5,
        None,
        100,
        10,
        0,
        0,
    )
    return GateResult(outcome, (f"gate {outcome.value}",), evidence)


def _baking(step: int = 0, **progress: Any) -> Any:
    values: dict[str, Any] = {"step": step, "bake_started_at": BAKED, "before_traffic": BEFORE, "smoke": {"passed": 1}}
    values.update(progress)
    return rollout(STEPPED, State.BAKING, turn_taken_at=NOW - dt.timedelta(hours=3), progress=Progress(**values))


def _view(v2: int, state: str = "Succeeded") -> Any:
    traffic = {"credit-v1": 100 - v2, "credit-v2": v2} if v2 < 100 else {"credit-v2": 100}
    return endpoint(deployment("1"), deployment("2", state), traffic={k: v for k, v in traffic.items() if v})


def test_the_first_step_smoke_tests_then_sets_ten_percent_and_its_bake_starts_when_seen() -> None:
    first = decide(rollout(STEPPED, State.DEPLOYING), _view(0))
    assert isinstance(first, SetTraffic) and first.smoke and first.step == 0
    assert first.traffic == {"credit-v1": 90, "credit-v2": 10}
    sent = rollout(STEPPED, State.DEPLOYING, progress=Progress(step=0, smoke={"passed": True}))
    assert decide(sent, _view(10)) == StartBake(0, "baking step 1/3 at 10% for 600 s, then the gate")


def test_a_bake_waits_then_asks_for_the_gate_once_it_is_over() -> None:
    running = _baking(bake_started_at=NOW - dt.timedelta(minutes=3))
    assert isinstance(decide(running, _view(10)), Wait)
    assert isinstance(decide(_baking(), _view(10)), Evaluate)


def test_a_passed_gate_advances_one_step_with_its_evidence_and_the_final_one_finishes() -> None:
    r, view = _baking(), _view(10)
    advance = step_with_gate(r, view, Outcome.PASS)
    assert isinstance(advance, SetTraffic) and advance.step == 1 and advance.gate is not None
    assert advance.traffic == {"credit-v1": 50, "credit-v2": 50} and not advance.smoke
    done = step_with_gate(_baking(2), _view(100), Outcome.PASS)
    assert isinstance(done, Finish) and done.state is State.LIVE and done.gate is not None


def test_a_failed_gate_rolls_back_in_one_write_to_the_recorded_split() -> None:
    action = step_with_gate(_baking(1), _view(50), Outcome.FAIL)
    assert isinstance(action, RollBack)
    assert action.traffic == {"credit-v1": 100, "credit-v2": 0} and action.gate is not None


def test_inconclusive_extends_then_holds() -> None:
    extend = step_with_gate(_baking(), _view(10), Outcome.INCONCLUSIVE)
    assert isinstance(extend, Extend) and extend.extensions == 1
    held = step_with_gate(
        _baking(extensions=2, bake_started_at=NOW - dt.timedelta(minutes=31)), _view(10), Outcome.INCONCLUSIVE
    )
    assert isinstance(held, Hold) and "GATE_INCONCLUSIVE=hold" in held.reason


def test_promote_goes_to_the_final_share_now_and_then_finishes() -> None:
    promote = decide(_baking(0, requested="promote", bake_started_at=NOW), _view(10))
    assert isinstance(promote, SetTraffic) and promote.step == 2 and promote.traffic == {"credit-v2": 100}
    sent = _baking(2, requested="promote", bake_started_at=None)
    assert isinstance(decide(sent, _view(100)), Finish)


def test_rollback_after_the_rollout_ended_live_needs_the_replaced_deployment() -> None:
    ended = replace(_baking(2, requested="rollback"), state=State.LIVE)
    assert isinstance(decide(ended, _view(100)), RollBack)
    gone = endpoint(deployment("2"), traffic={"credit-v2": 100})
    assert isinstance(decide(ended, gone), DropRequest)  # the request is dropped and reported; it stays live


def test_a_rollback_after_the_end_writes_nothing_once_the_endpoint_is_no_longer_the_apps() -> None:
    """An adopted endpoint whose adoption was withdrawn after the rollout ended (the request already recorded) is left
    as it is: the app writes only to the endpoints it created or ADOPT_ENDPOINTS lists now."""
    ended = replace(_baking(2, requested="rollback"), state=State.CANARY)
    adopted = replace(POLICY, adopt_endpoints=frozenset({"credit"}))
    foreign = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 90, "credit-v2": 10}, owned=False)
    assert isinstance(decide(ended, foreign, policy=adopted), RollBack)
    assert isinstance(decide(ended, foreign), DropRequest)  # no longer listed: the request is dropped and reported


def test_a_deployment_that_fails_while_baking_rolls_back_instead_of_failing_with_traffic() -> None:
    assert isinstance(decide(_baking(1), _view(50, "Failed")), RollBack)


def test_a_newer_version_waits_while_a_rollout_bakes() -> None:
    newer = rollout(replace(plan("3"), traffic_steps=()), State.PENDING)
    assert isinstance(decide(newer, _view(10), _baking()), Wait)


def step_with_gate(r: Any, view: Any, outcome: Outcome) -> Any:
    from app.rollout.decide.step import Observation, step

    return step(r, Observation(view), NOW, POLICY, _gate(outcome))


# -- every combination of the new dimensions ----------------------------------------------------------

STATES = [State.PENDING, State.DEPLOYING, State.BAKING, State.LIVE, State.ABORTED]
PAUSED = [False, True]
REQUESTED = ["", "promote", "rollback"]
SHARES = [0, 10, 50, 100]
BAKE = [None, "running", "over"]
GATES = [None, Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE]
BUSY = [False, True]
HOLDER = [False, True]


def test_every_combination_of_progress_respects_the_invariants() -> None:
    checked = 0
    for state, paused, requested, share, bake, gate, busy, holder in itertools.product(
        STATES, PAUSED, REQUESTED, SHARES, BAKE, GATES, BUSY, HOLDER
    ):
        started = {None: None, "running": NOW - dt.timedelta(minutes=2), "over": BAKED}[bake]
        progress = Progress(
            step=[0, 0, 1, 2][SHARES.index(share)] if share else None,
            bake_started_at=started,
            paused=paused,
            requested=requested,
            before_traffic=BEFORE,
            smoke={"passed": True},
        )
        r = rollout(STEPPED, state, turn_taken_at=NOW - dt.timedelta(minutes=5), progress=progress)
        view = _view(share, "Succeeded")
        if busy:
            view = replace(view, provisioning_state="Updating")
        siblings = (rollout(plan("7", model="fraud"), State.BAKING),) if holder else ()
        from app.rollout.decide.step import Observation, step

        action = step(r, Observation(view, siblings), NOW, POLICY, _gate(gate) if gate else None)
        context = (state, paused, requested, share, bake, gate, busy, holder, action)
        writes = isinstance(action, (SetTraffic, CreateDeployment, CreateEndpoint, RollBack))
        if busy or (holder and not state.terminal):
            assert not writes, context
        if paused and not state.terminal:
            assert isinstance(action, Wait), context
        if isinstance(action, RollBack):
            assert requested == "rollback" or gate in (Outcome.FAIL,), context
            assert {k: v for k, v in action.traffic.items() if v} == BEFORE, context
        if state.terminal and requested != "rollback":
            assert not writes, context
        if isinstance(action, SetTraffic):
            assert sum(action.traffic.values()) == 100 and action.step is not None, context
            assert action.traffic.get("credit-v2") in STEPPED.steps, context
            if requested == "promote":
                assert action.traffic == {"credit-v2": 100}, context
        if isinstance(action, Finish) and action.state is State.LIVE:
            assert share == 100 and not busy, context
            assert requested == "promote" or gate in (Outcome.PASS,) or (state is State.BAKING and bake), context
        checked += 1
    assert checked == 5 * 2 * 3 * 4 * 3 * 4 * 2 * 2


def test_an_ended_rollouts_rollback_is_dropped_once_a_newer_rollout_changed_the_endpoint() -> None:
    ended = replace(_baking(2, requested="rollback"), state=State.LIVE)
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v2": 80, "credit-v3": 20})
    newer = rollout(plan("3", 20), State.CANARY, turn_taken_at=NOW)
    assert isinstance(decide(ended, view, newer), DropRequest)
    assert isinstance(decide(ended, view), RollBack)
