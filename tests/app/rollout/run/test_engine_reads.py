"""Reads that fail (the metrics, the smoke request, the endpoint itself) are retried with a bounded back-off, and once
traffic has moved no failure ends the rollout ``failed`` with the new deployment still serving."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from app.rollout.decide.model import State
from app.rollout.run.engine import RolloutEngine
from tests.app.rollout.run.scenes import BAKE, CREDIT, STEPS, canary_baking, live_v1, ticks
from tests.fakes import WORKSPACE_ID

pytestmark = pytest.mark.fast

CANARY_SPLIT = {"credit-v1": 90, "credit-v2": 10}
INCONCLUSIVE = "AmlEvents.Rollout.GateInconclusive"


@pytest.mark.parametrize("status", [503, 429, 403, None], ids=["503", "429", "403", "no-answer"])
def test_a_metrics_read_that_fails_is_retried_and_the_canary_keeps_its_step(status: int | None) -> None:
    world = canary_baking()
    world.metrics.failures = [status] * 3
    world.clock.advance(BAKE.total_seconds())
    ticks(world, 3)

    baking = world.rollout("credit-v2")
    assert baking.state is State.BAKING
    assert world.aml.traffic("credit") == CANARY_SPLIT
    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE


def test_failed_reads_of_the_endpoint_never_fail_a_canary_that_serves_traffic() -> None:
    world = canary_baking()
    world.aml.fail_next("observe", 503, count=15)
    ticks(world, 15)

    assert world.rollout("credit-v2").state is State.BAKING
    assert world.aml.traffic("credit") == CANARY_SPLIT
    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE


def test_a_step_write_refused_after_traffic_moved_rolls_back_instead_of_failing() -> None:
    world = canary_baking()
    world.aml.fail_next("set_traffic", 400)
    world.settle()

    rolled_back = world.rollout("credit-v2")
    assert rolled_back.state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_a_smoke_request_that_cannot_connect_is_tried_again_not_failed() -> None:
    world = live_v1()
    world.smoke.answer("credit-v2", None, connects=False)
    world.register("credit", 2, {**CREDIT, **STEPS})
    ticks(world, 2)
    assert world.rollout("credit-v2").state is State.DEPLOYING

    del world.smoke.answers["credit-v2"]  # the network is back
    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE
    assert len(world.smoke.requests) >= 2


def test_a_monitoring_outage_longer_than_the_extensions_is_inconclusive_and_holds_with_one_notice() -> None:
    world = canary_baking()  # GATE_MAX_EXTENSIONS=1, GATE_INCONCLUSIVE=hold (the default)
    world.metrics.fail_until(world.clock() + 10 * BAKE)
    world.clock.advance(BAKE.total_seconds())
    ticks(world, 5, every_s=60)
    assert not world.rollout("credit-v2").progress.held  # within the extension's time: still retrying

    ticks(world, 15, every_s=60)
    held = world.rollout("credit-v2")
    assert held.state is State.BAKING and held.progress.held
    assert held.progress.gate is not None and held.progress.gate["outcome"] == "inconclusive"
    assert world.notified_about("credit-v2").count(INCONCLUSIVE) == 1
    assert world.aml.traffic("credit") == CANARY_SPLIT
    reads = len(world.metrics.reads)
    ticks(world, 5)
    assert len(world.metrics.reads) == reads  # a hold reads nothing more: it waits for an operator


def test_a_monitoring_outage_follows_gate_inconclusive_rollback() -> None:
    world = canary_baking(gate_inconclusive="rollback")
    world.metrics.fail_until(world.clock() + 10 * BAKE, status=None)
    world.settle()

    rolled_back = world.rollout("credit-v2")
    assert rolled_back.state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert INCONCLUSIVE in world.notified_about("credit-v2")


def test_a_rollout_whose_answered_traffic_write_was_not_recorded_is_never_failed_while_it_serves() -> None:
    world = live_v1()
    world.register("credit", 2, CREDIT)
    world.wait_for_aml()

    def other_instance() -> None:  # takes the endpoint over once this instance's lease runs out, and does a pass
        record = world.ledger.leases.read(WORKSPACE_ID, "credit")
        assert record.until is not None
        world.clock.now = record.until + dt.timedelta(seconds=1)
        RolloutEngine(world.deps).advance(WORKSPACE_ID, "credit", time.monotonic() + 30)

    world.aml.hold_next("set_traffic")  # the other instance's traffic write stalls on the wire
    world.aml.interleave("set_traffic", other_instance)
    world.tick()  # this instance's write lands and is answered, but its record is refused: the row changed
    assert world.aml.traffic("credit") == {"credit-v2": 100}
    world.aml.fail_next("observe", 400)  # a read no retry fixes
    world.tick()

    assert world.rollout("credit-v2").state is not State.FAILED
    world.aml.held.clear()
    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v2": 100}
