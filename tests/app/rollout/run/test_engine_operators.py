"""The operator's word is kept: abort and retry still roll back to the split found, promote finishes a final bake or a
hold, a hold waits for the operator, pause never shields a failed deployment, and the kill switch stops every write."""

from __future__ import annotations

import pytest

from app.rollout.decide.model import State
from tests.app.rollout.run.scenes import (
    CREDIT,
    act,
    bake_started,
    canary_baking,
    live_v1,
    splits,
    ticks,
)
from tests.fakes import WORKSPACE_ID

pytestmark = pytest.mark.fast

INCONCLUSIVE = "AmlEvents.Rollout.GateInconclusive"


@pytest.mark.parametrize("step", [0, 1], ids=["first-step", "second-step"])
def test_abort_then_retry_then_a_failing_gate_rolls_back_to_the_split_before_the_rollout(step: int) -> None:
    world = canary_baking()
    bake_started(world, "credit-v2", step=step)
    assert act(world, "credit-v2", "abort")[0] == 202
    assert act(world, "credit-v2", "retry")[0] == 202
    world.metrics.set_health("credit-v2", error_rate=20.0)
    world.settle()

    assert world.rollout("credit-v2").state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}


@pytest.mark.parametrize(
    ("tags", "final"),
    [({"traffic": "20", "bake": "10m"}, 0), ({"traffic_steps": "10,50,100", "bake": "10m"}, 2)],
    ids=["only-step", "final-step"],
)
def test_promote_during_the_final_bake_finishes_without_the_gate(tags: dict[str, str], final: int) -> None:
    world = live_v1()
    world.register("credit", 2, {**CREDIT, **tags})
    bake_started(world, "credit-v2", step=final)
    world.metrics.set_health("credit-v2", error_rate=20.0)  # from now on the gate would fail it
    assert act(world, "credit-v2", "promote")[0] == 202
    world.settle()

    promoted = world.rollout("credit-v2")
    assert promoted.state in (State.LIVE, State.CANARY) and not promoted.progress.requested
    assert "credit-v2" in world.aml.traffic("credit")


def test_promote_ends_an_inconclusive_hold() -> None:
    world = live_v1()
    world.metrics.rpm = 2  # too few requests for any verdict, however long the window
    world.register("credit", 2, {**CREDIT, "traffic": "20", "bake": "10m"})
    ticks(world, 40)
    assert world.notified_about("credit-v2").count(INCONCLUSIVE) == 1
    assert act(world, "credit-v2", "promote")[0] == 202
    world.settle()

    promoted = world.rollout("credit-v2")
    assert promoted.state is State.CANARY and not promoted.progress.requested
    assert world.aml.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}


def test_an_inconclusive_hold_reads_no_more_metrics_and_waits_for_an_operator() -> None:
    world = live_v1()
    world.metrics.rpm = 20
    world.register("credit", 2, {**CREDIT, "traffic_steps": "10,50,100", "bake": "10m"})
    ticks(world, 40)
    assert world.notified_about("credit-v2").count(INCONCLUSIVE) == 1
    reads = len(world.metrics.reads)

    world.metrics.rpm = 6000  # plenty of traffic now: a gate would decide by itself
    ticks(world, 20)
    held = world.rollout("credit-v2")
    assert len(world.metrics.reads) == reads
    assert held.state is State.BAKING and held.progress.step == 0
    assert world.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}
    assert world.notified_about("credit-v2").count(INCONCLUSIVE) == 1


def test_a_paused_canary_whose_deployment_fails_is_rolled_back() -> None:
    world = canary_baking()
    assert act(world, "credit-v2", "pause")[0] == 202
    world.aml.set_state("credit", "credit-v2", state="Failed")
    ticks(world, 3)

    assert world.rollout("credit-v2").state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_the_kill_switch_also_holds_back_the_restore_after_a_late_write() -> None:
    world = live_v1()
    world.register("credit", 2, CREDIT)
    world.wait_for_aml()
    world.aml.hold_next("set_traffic")  # instance A's traffic PUT for v2 stalls on the wire
    world.tick()
    record = world.ledger.leases.read(WORKSPACE_ID, "credit")
    assert record.until is not None
    world.clock.now = record.until
    world.clock.advance(1)  # A's lease runs out
    world.register("credit", 3, CREDIT)  # instance B: v3 supersedes v2 and takes the traffic
    world.wait_for_aml()
    world.tick()
    world.wait_for_aml()
    assert world.aml.traffic("credit") == {"credit-v3": 100}

    world.configure(deploy_mode="hold")
    [late] = world.aml.land_held()  # A's PUT lands last, giving v2 everything
    assert late.landed
    writes = len(world.aml.writes)
    ticks(world, 3)
    assert len(world.aml.writes) == writes
    assert world.aml.traffic("credit") == {"credit-v2": 100}

    world.configure(deploy_mode="apply")
    ticks(world, 2)
    assert world.aml.traffic("credit") == {"credit-v3": 100}
    assert splits(world)[-1] == {"credit-v3": 100}
