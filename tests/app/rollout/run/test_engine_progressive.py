"""Progressive delivery on fakes: the smoke test, steps promoted on metrics, rollback to the split it found."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from app.rollout.decide.model import State
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}
SAMPLE = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}})
STEPS = {"traffic_steps": "10,50,100", "bake": "10m", "smoke_request": SAMPLE}
GATES = {"gate_metric_lag": dt.timedelta(0), "gate_min_requests": 100, "gate_max_extensions": 1}
PROMOTED, ROLLED_BACK = "AmlEvents.Rollout.StepPromoted", "AmlEvents.Rollout.RolledBack"
SMOKE_PASSED, SMOKE_FAILED = "AmlEvents.Rollout.SmokeTestPassed", "AmlEvents.Rollout.SmokeTestFailed"


@pytest.fixture
def world() -> FakeWorld:
    world = FakeWorld(**GATES)
    world.register("credit", 1, CREDIT)
    world.settle()
    return world


def _splits(world: FakeWorld) -> list[dict[str, int]]:
    """Every live split the app wrote to the endpoint, in order."""
    return [{k: v for k, v in live.items() if v} for _, name, live, _ in world.aml.traffic_log if name == "credit"]


def test_a_healthy_canary_is_promoted_step_by_step_on_its_metrics(world: FakeWorld) -> None:
    world.register("credit", 2, {**CREDIT, **STEPS})
    world.settle()

    rollout = world.rollout("credit-v2")
    assert rollout.state is State.LIVE
    assert _splits(world)[1:] == [
        {"credit-v1": 90, "credit-v2": 10},
        {"credit-v1": 50, "credit-v2": 50},
        {"credit-v2": 100},
    ]
    assert rollout.progress.smoke is not None and rollout.progress.smoke["passed"]
    assert rollout.progress.gate is not None and rollout.progress.gate["outcome"] == "pass"
    notified = world.notified_about("credit-v2")
    assert notified.count(PROMOTED) == 2 and SMOKE_PASSED in notified and notified[-1] == "AmlEvents.Rollout.Live"
    assert len(world.smoke.requests) == 1
    assert len(world.metrics.reads) == 3  # one window per bake, the last step's too


@pytest.mark.parametrize(
    "health", [{"error_rate": 20.0}, {"p99_ms": 900.0}], ids=["server-errors", "latency-against-the-stable-p99"]
)
def test_a_canary_that_breaches_its_gate_is_rolled_back_to_the_split_it_found(
    world: FakeWorld, health: dict[str, float]
) -> None:
    world.metrics.set_health("credit-v2", **health)
    world.register("credit", 2, {**CREDIT, **STEPS})
    world.settle()

    rollout = world.rollout("credit-v2")
    assert rollout.state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert rollout.progress.gate is not None and rollout.progress.gate["outcome"] == "fail"
    assert _splits(world)[1:] == [{"credit-v1": 90, "credit-v2": 10}, {"credit-v1": 100}]  # never past the 1st step
    assert ROLLED_BACK in world.notified_about("credit-v2")
    assert "credit-v2" not in world.aml.deployments("credit")  # cleaned up
    # What an operator reads at 3 a.m.: the row and the notification say it was the gate, with its evidence.
    assert rollout.reason.startswith("rolled back: gate fail: ")
    [told] = [n for n in world.sink.received if n.type == ROLLED_BACK]
    assert told.facts.get("gate", {}).get("outcome") == "fail"


def test_a_failing_smoke_test_fails_the_rollout_before_any_traffic_reaches_it(world: FakeWorld) -> None:
    world.smoke.answer("credit-v2", 500, b'{"error": "boom"}')
    world.register("credit", 2, {**CREDIT, **STEPS})
    world.settle()

    rollout = world.rollout("credit-v2")
    assert rollout.state is State.FAILED
    assert rollout.progress.smoke is not None and rollout.progress.smoke["status"] == 500
    assert all("credit-v2" not in split for split in _splits(world))
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert SMOKE_FAILED in world.notified_about("credit-v2")


def test_too_little_traffic_extends_the_bake_then_holds_at_the_step() -> None:
    world = FakeWorld(**GATES)
    world.metrics.rpm = 20  # two requests a minute on the 10% step: never enough to judge
    world.register("credit", 1, CREDIT)
    world.settle()
    world.register("credit", 2, {**CREDIT, **STEPS})
    for _ in range(40):
        world.tick()
        world.clock.advance(60)
        world.wait_for_aml()

    rollout = world.rollout("credit-v2")
    assert rollout.state is State.BAKING and rollout.progress.extensions == 1
    assert rollout.progress.gate is not None and rollout.progress.gate["outcome"] == "inconclusive"
    assert world.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}
    assert world.notified_about("credit-v2").count("AmlEvents.Rollout.GateInconclusive") == 1


def test_a_bake_s_start_notes_when_its_gate_falls_due_on_the_active_index(world: FakeWorld) -> None:
    world.register("credit", 2, {**CREDIT, **STEPS})
    for _ in range(10):
        world.wait_for_aml()
        world.advance()
        rollout = world.rollout("credit-v2")
        if rollout.progress.bake_started_at is not None:
            break
    started = rollout.progress.bake_started_at
    assert rollout.state is State.BAKING and started is not None
    entry = world.ledger.active.find(rollout.plan.workspace_id, "credit")
    assert entry is not None and entry.gate_due == started + dt.timedelta(minutes=10)  # the bake's end
    assert [e.gate_due for e in world.ledger.active.endpoints(world.clock())] == [entry.gate_due]


def test_without_follow_ups_no_gate_is_noted() -> None:
    world = FakeWorld(**GATES)
    world.deps = replace(world.deps, followups=None)
    world.register("credit", 1, {**CREDIT, **STEPS})
    for _ in range(10):
        world.wait_for_aml()
        world.advance()
    assert world.rollout("credit-v1").progress.bake_started_at is not None
    entry = world.ledger.active.find(world.rollout("credit-v1").plan.workspace_id, "credit")
    assert entry is not None and entry.gate_due is None
