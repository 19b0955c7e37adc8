"""What the CLI and the dashboard say about a rollout, from the status API's own JSON (built by the app's code)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from aml_rollouts import view
from aml_rollouts.states import ACTIONS, STATES, Phase, phase_of, style_of
from app.rollout.decide.approval import APPROVAL_ACTIONS
from app.rollout.decide.gate import GateEvidence, GatePolicy, GateResult, Outcome
from app.rollout.decide.model import Progress, Rollout, State
from app.rollout.decide.operator import ACTIONS as APP_ACTIONS
from tests.fakes import make_plan

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


def status(state: State, *, step: int | None = None, **progress: Any) -> dict[str, Any]:
    """A rollout as ``GET /api/rollouts`` shows it: three steps of 10, 50 and 100%, a 10-minute bake each."""
    plan = dataclasses.replace(make_plan("2"), traffic_steps=(10, 50, 100), bake_seconds=600)
    rollout = Rollout(plan, state, NOW, NOW, progress=Progress(step=step, **progress))
    return rollout.as_status()


def test_every_state_and_action_of_the_app_is_in_the_cli_s_tables() -> None:
    assert {s.value for s in State} <= set(STATES)
    assert tuple(action.name for action in ACTIONS) == (*APP_ACTIONS, *APPROVAL_ACTIONS)


def test_a_rollout_awaiting_approval_is_still_running_and_an_expired_one_has_ended() -> None:
    assert phase_of(status(State.AWAITING_APPROVAL)) is Phase.RUNNING
    assert phase_of(status(State.EXPIRED)) is Phase.ENDED
    assert style_of("awaiting_approval").badge == style_of("expired").badge == "warn"


def test_a_state_the_cli_does_not_know_renders_as_is_and_counts_as_still_running() -> None:
    rollout = status(State.BAKING) | {"state": "awaiting_judgement"}
    assert style_of("awaiting_judgement").badge == "unknown"
    assert phase_of(rollout) is Phase.RUNNING
    assert view.step_text(rollout) == "before step 1/3"


@pytest.mark.parametrize(
    ("state", "step", "marks", "text"),
    [
        (State.PENDING, None, ["next", "next", "next"], "before step 1/3"),
        (State.BAKING, 0, ["current", "next", "next"], "step 1/3 at 10%"),
        (State.BAKING, 1, ["done", "current", "next"], "step 2/3 at 50%"),
        (State.ROLLED_BACK, 0, ["failed", "skipped", "skipped"], "step 1/3 at 10%"),
        (State.ABORTED, 1, ["done", "stopped", "skipped"], "step 2/3 at 50%"),
        (State.LIVE, 2, ["done", "done", "done"], "3/3 steps done"),
        (State.FAILED, None, ["skipped", "skipped", "skipped"], "before step 1/3"),
    ],
)
def test_steps_are_marked_by_where_the_rollout_is(state: State, step: int | None, marks: list[str], text: str) -> None:
    rollout = status(state, step=step)
    assert [s.status for s in view.steps_of(rollout)] == marks
    assert [s.share for s in view.steps_of(rollout)] == [10, 50, 100]
    assert view.step_text(rollout) == text


def test_an_operator_request_keeps_an_ended_rollout_running_until_it_is_carried_out() -> None:
    rollout = status(State.LIVE, step=2, requested="rollback")
    assert phase_of(rollout) is Phase.RUNNING
    assert view.next_decision(rollout) == (None, "the operator's rollback: carried out at the next tick")


def test_the_next_decision_of_a_bake_is_its_end_plus_its_extensions() -> None:
    started = NOW - dt.timedelta(minutes=3)
    rollout = status(State.BAKING, step=1, bake_started_at=started, extensions=1)
    due, what = view.next_decision(rollout)
    assert due == started + dt.timedelta(minutes=20) and "gate" in what
    assert view.next_decision(status(State.BAKING, step=1, bake_started_at=started, paused=True))[0] is None
    assert view.next_decision(status(State.LIVE, step=2))[0] is None


def test_the_split_is_the_observed_one_else_the_intended_one_largest_first() -> None:
    observed = {
        "observedTraffic": {"credit-v1": 90, "credit-v2": 10},
        "observedMirror": {},
        "observedAt": NOW.isoformat(),
        "intendedTraffic": {"credit-v1": 50, "credit-v2": 50},
    }
    split = view.split_of(observed)
    assert (split.live, split.source) == ((("credit-v1", 90), ("credit-v2", 10)), "observed")
    assert split.share("CREDIT-V2") == 10
    assert view.split_of({"observedTraffic": None, "intendedTraffic": {"a": 100}}).text() == "a 100%"
    assert view.split_of(None).source == "unknown"


def test_a_gate_s_evidence_is_read_with_its_thresholds() -> None:
    evidence = GateEvidence(
        window_start=NOW,
        window_end=NOW + dt.timedelta(minutes=10),
        counted_until=NOW + dt.timedelta(minutes=10),
        new_deployment="credit-v2",
        stable_deployments=("credit-v1",),
        new_requests=300.0,
        stable_requests=2700.0,
        new_errors=60.0,
        error_share_pct=20.0,
        new_p99_ms=900.0,
        stable_p99_ms=60.0,
        latency_ratio=15.0,
        baseline=True,
        max_error_rate=GatePolicy().max_error_rate,
        max_latency_ratio=GatePolicy().max_latency_ratio,
        max_p99_ms=None,
        min_requests=GatePolicy().min_requests,
        points_used=20,
        points_outside_window=0,
        points_dropped_for_lag=0,
        notes=(),
    )
    gate = GateResult(Outcome.FAIL, ("server-error share 20.00% > 1%",), evidence).as_dict()
    shown = view.gate_of(gate)
    assert shown is not None
    assert (shown.outcome, shown.error_pct, shown.ratio, shown.requests_new) == ("fail", 20.0, 15.0, 300.0)
    assert shown.summary.startswith("gate fail: ")
    assert "15.00x" in shown.evidence() and "credit-v1" in shown.evidence()
    assert view.gate_of(None) is None
