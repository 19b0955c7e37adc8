"""Nothing stuck, silent or lost: a dark rollout has nothing to bake, a failed gate held back by drift is recorded and
reported, an aborted deployment never costs the previous one its place, a rollback keeps the logs and the rows."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.model import State
from tests.app.rollout.run.scenes import BAKE, CREDIT, GATES, act, canary_baking, live_v1, ticks
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast


def test_a_dark_rollout_has_nothing_to_bake_and_never_holds_up_the_next_version() -> None:
    world = live_v1(bake_default=dt.timedelta(minutes=10))
    world.register("credit", 2, {**CREDIT, "traffic": "0"})
    ticks(world, 5)
    assert world.rollout("credit-v2").state is State.DARK

    world.register("credit", 3, CREDIT)
    world.settle()
    assert world.rollout("credit-v3").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v3": 100}


def test_a_failed_gate_on_a_drifted_endpoint_is_recorded_and_reported_as_an_error() -> None:
    world = canary_baking()
    world.metrics.set_health("credit-v2", error_rate=20.0)
    world.aml.set_traffic_by_hand("credit", {"credit-v1": 80, "credit-v2": 20})
    world.wait_for_aml()
    writes = len(world.aml.writes)
    world.clock.advance(BAKE.total_seconds())
    ticks(world, 5)

    held = world.rollout("credit-v2")
    assert held.state is State.BAKING
    assert held.progress.gate is not None and held.progress.gate["outcome"] == "fail"
    errors = [n for n in world.sink.received if n.severity == "error" and n.subject.endswith("/credit-v2")]
    assert len(errors) == 1
    assert len(world.aml.writes) == writes  # the rollback is held back: the split was changed by hand
    assert world.aml.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}


def test_an_abort_before_any_traffic_moved_never_costs_the_previous_deployment_its_place() -> None:
    world = live_v1()
    world.register("credit", 2, CREDIT)
    world.settle()
    world.register("credit", 3, CREDIT)  # its deployment is being created
    assert world.rollout("credit-v3").state is State.DEPLOYING
    assert act(world, "credit-v3", "abort")[0] == 202
    world.settle()

    assert world.aml.traffic("credit") == {"credit-v2": 100}
    assert "credit-v1" in world.aml.deployments("credit")  # kept for a rollback of v2


def test_a_rolled_back_deployment_keeps_its_container_logs() -> None:
    world = canary_baking()
    world.metrics.set_health("credit-v2", error_rate=20.0)
    world.settle()

    rolled_back = world.rollout("credit-v2")
    assert rolled_back.state is State.ROLLED_BACK
    assert "credit-v2" in rolled_back.logs
    assert "credit-v2" not in world.aml.deployments("credit")  # cleaned up after the logs were kept


def test_a_retired_dark_deployment_is_dark_again_when_a_rollback_restores_its_mirror() -> None:
    world = live_v1()
    world.register("credit", 2, {**CREDIT, "traffic": "0", "mirror": "10"})
    world.settle()
    assert world.aml.mirror("credit") == {"credit-v2": 10}
    world.metrics.set_health("credit-v3", error_rate=20.0)
    world.register("credit", 3, {**CREDIT, "traffic_steps": "10,100", "bake": "10m"})
    world.settle()

    assert world.rollout("credit-v3").state is State.ROLLED_BACK
    assert world.aml.mirror("credit") == {"credit-v2": 10}
    assert world.rollout("credit-v2").state is State.DARK
    told = world.notified_about("credit-v2")
    assert told.count("AmlEvents.Rollout.Dark") == 2 and told.count("AmlEvents.Rollout.Superseded") == 1


def test_an_earlier_canary_is_retired_even_when_the_write_that_took_its_share_went_unanswered() -> None:
    world = live_v1()
    world.register("credit", 2, {**CREDIT, "traffic": "20"})
    world.settle()
    world.register("credit", 3, {**CREDIT, "traffic_steps": "10,100", "bake": "10m"})
    world.wait_for_aml()
    world.aml.drop_answer("set_traffic", landed=True)  # v3's first step lands; the app never hears back
    ticks(world, 3)

    assert world.rollout("credit-v3").state is State.BAKING
    assert world.aml.traffic("credit") == {"credit-v1": 90, "credit-v3": 10}
    assert world.rollout("credit-v2").state is State.SUPERSEDED


def test_a_deployment_retired_again_by_a_retried_rollout_is_told_again() -> None:
    world = live_v1()
    world.register("credit", 2, {**CREDIT, "traffic": "0", "mirror": "10"})
    world.settle()
    world.metrics.set_health("credit-v3", error_rate=20.0)
    world.register("credit", 3, {**CREDIT, "traffic_steps": "10,100", "bake": "10m"})
    world.settle()  # v3 retires v2's mirror, fails its gate, and its rollback gives the mirror back
    assert world.rollout("credit-v2").state is State.DARK
    world.metrics.set_health("credit-v3")
    assert act(world, "credit-v3", "retry")[0] == 202
    world.settle()  # retired again

    assert world.rollout("credit-v2").state is State.SUPERSEDED
    assert world.notified_about("credit-v2").count("AmlEvents.Rollout.Superseded") == 2


def test_a_dark_rollout_never_mirrors_to_a_deployment_someone_gave_live_traffic() -> None:
    world = FakeWorld(**GATES)
    world.register("credit", 1, {**CREDIT, "traffic": "0", "mirror": "10"})
    for _ in range(3):  # the endpoint, then the deployment
        world.wait_for_aml()
        world.tick()
        if world.aml.state("credit", "credit-v1") == "Succeeded":
            break
    world.wait_for_aml()
    world.aml.set_traffic_by_hand("credit", {"credit-v1": 100})  # by hand, before the app set its mirror
    world.wait_for_aml()
    world.settle()

    assert not [c for c in world.aml.calls_to("set_traffic") if c.status == 400]
    assert world.rollout("credit-v1").state is State.DARK
    assert world.aml.traffic("credit") == {"credit-v1": 100} and world.aml.mirror("credit") == {}
