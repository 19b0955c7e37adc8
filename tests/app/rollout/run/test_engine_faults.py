"""The engine on fakes under Azure's faults: late writes, hand-made traffic changes, refused cleanups, bad states."""

from __future__ import annotations

import pytest

from app.rollout.decide.model import State
from app.rollout.ledger.ledger import LEASE_KEY, partition_key
from tests.fakes import WORKSPACE_ID, FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}


def _live(world: FakeWorld, version: int, **tags: str) -> None:
    world.register("credit", version, {**CREDIT, **tags})
    world.settle()


def _expire_lease(world: FakeWorld) -> None:
    """The endpoint's lease runs out (its holder stalled): time passes beyond it."""
    record = world.ledger.leases.read(WORKSPACE_ID, "credit")
    assert record.until is not None
    world.clock.now = max(world.clock.now, record.until) + (world.clock.now - world.clock.now)
    world.clock.advance(1)


def test_a_traffic_write_that_lands_late_is_undone_and_never_counts_as_live(world: FakeWorld) -> None:
    _live(world, 1)
    world.register("credit", 2, CREDIT)
    world.wait_for_aml()
    world.aml.hold_next("set_traffic")  # instance A's traffic PUT for v2 stalls on the wire
    world.tick()
    _expire_lease(world)
    world.register("credit", 3, CREDIT)  # instance B: v3 supersedes v2 and takes the traffic
    world.wait_for_aml()
    world.tick()
    world.wait_for_aml()
    assert world.aml.traffic("credit") == {"credit-v3": 100}

    [late] = world.aml.land_held()  # A's PUT lands last, giving v2 everything
    assert late.landed and world.aml.traffic("credit") == {"credit-v2": 100}
    world.settle()

    assert world.aml.traffic("credit") == {"credit-v3": 100}
    assert world.rollout("credit-v3").state is State.LIVE
    assert world.rollout("credit-v2").state is State.SUPERSEDED
    assert "AmlEvents.Rollout.Live" not in world.notified_about("credit-v2")
    assert world.notified.count("AmlEvents.Rollout.TrafficRestored") == 1
    assert not [c for c in world.aml.calls_to("delete_deployment") if c.deployment == "credit-v3"]


def test_a_traffic_change_made_by_hand_is_reported_once_and_never_fought(world: FakeWorld) -> None:
    _live(world, 1)
    world.register("credit", 2, CREDIT)
    world.wait_for_aml()
    world.tick()  # v2's traffic is written
    world.wait_for_aml()
    world.aml.set_traffic_by_hand("credit", {"credit-v1": 100})  # an operator rolls back in the portal
    world.wait_for_aml()
    writes = len(world.aml.writes)
    for _ in range(3):
        world.tick()
        world.clock.advance(60)

    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert len(world.aml.writes) == writes  # no traffic write at all
    assert world.notified.count("AmlEvents.Rollout.TrafficDrift") == 1
    assert world.rollout("credit-v2").state is State.DEPLOYING
    assert world.ledger.leases.read(WORKSPACE_ID, "credit").drift is not None


def test_a_new_rollout_after_a_hand_made_change_takes_the_split_as_it_is_now(world: FakeWorld) -> None:
    _live(world, 1)
    _live(world, 2, traffic="20")
    world.aml.set_traffic_by_hand("credit", {"credit-v1": 50, "credit-v2": 50})
    world.wait_for_aml()
    _live(world, 3)

    assert world.aml.traffic("credit") == {"credit-v3": 100}
    assert world.rollout("credit-v3").state is State.LIVE
    assert world.notified.count("AmlEvents.Rollout.TrafficDrift") <= 1
    assert world.ledger.leases.read(WORKSPACE_ID, "credit").drift is None


def test_a_refused_cleanup_delete_is_reported_once_retried_and_never_fails_the_live_rollout(world: FakeWorld) -> None:
    for version in (1, 2):
        _live(world, version)
    world.aml.fail_next("delete_deployment", 400, count=2)
    _live(world, 3)

    assert world.rollout("credit-v3").state is State.LIVE
    assert world.notified.count("AmlEvents.Rollout.CleanupFailed") == 1
    assert [c.status for c in world.aml.calls_to("delete_deployment")] == [400, 400, 200]
    assert set(world.aml.deployments("credit")) == {"credit-v2", "credit-v3"}


def test_a_failed_endpoint_is_put_again_once_with_its_traffic_unchanged_and_the_rollout_proceeds(
    world: FakeWorld,
) -> None:
    _live(world, 1)
    world.aml.set_state("credit", state="Failed")
    _live(world, 2)

    assert world.rollout("credit-v2").state is State.LIVE
    assert world.rollout("credit-v2").retries == ("endpoint",)
    splits = [live for _, name, live, _ in world.aml.traffic_log if name == "credit"]
    assert splits == [{"credit-v1": 100}, {"credit-v1": 100}, {"credit-v2": 100}]  # the recovery PUT changed nothing


def test_an_endpoint_failing_again_after_its_recovery_fails_the_rollout(world: FakeWorld) -> None:
    _live(world, 1)
    world.aml.set_state("credit", state="Failed")
    world.aml.end_next_operations("credit")
    _live(world, 2)

    assert world.rollout("credit-v2").state is State.FAILED
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_a_canceled_deployment_is_put_again_once(world: FakeWorld) -> None:
    _live(world, 1)
    world.aml.fail_deployment("credit-v2", state="Canceled")
    _live(world, 2)

    assert world.rollout("credit-v2").state is State.LIVE
    assert [c.deployment for c in world.aml.calls_to("create_deployment")] == ["credit-v1", "credit-v2", "credit-v2"]


def test_a_scaling_deployment_holds_the_endpoint_until_it_has_scaled(world: FakeWorld) -> None:
    _live(world, 1)
    world.aml.set_state("credit", "credit-v1", state="Scaling", seconds=600)
    world.register("credit", 2, CREDIT)
    for _ in range(5):
        world.tick()
        world.clock.advance(60)
    assert world.aml.calls_to("create_deployment", "credit")[-1].deployment == "credit-v1"  # nothing new sent

    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE


def test_an_unreadable_row_is_set_aside_and_the_endpoints_other_rollouts_carry_on(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)
    pk = partition_key(WORKSPACE_ID, "credit")
    store = world.store
    row = store.rows[(pk, "credit-v1")]
    store.rows[(pk, "credit-v0")] = type(row)(pk, "credit-v0", {**row.data, "State": "exploded"}, "etag-hand")
    world.settle()

    assert world.rollout("credit-v1").state is State.LIVE
    assert store.rows[(pk, "credit-v0")].data["Active"] is False  # not read again every tick
    assert "DecodeError" in store.rows[(pk, "credit-v0")].data


def test_follow_ups_alone_take_a_rollout_live_without_a_timer_tick(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)
    for _ in range(10):
        due = world.queue.next_due()
        if due is None:
            break
        world.clock.now = max(world.clock(), due)
        world.deliver_followups()

    assert world.rollout("credit-v1").state is State.LIVE
    assert {m.followup.reason.split()[0] for m in world.queue.sent} >= {"endpoint", "deployment", "traffic"}


def test_a_follow_up_that_cannot_be_sent_never_fails_the_write(world: FakeWorld) -> None:
    world.queue.fail = True
    world.register("credit", 1, CREDIT)

    assert world.rollout("credit-v1").state is State.DEPLOYING
    assert world.aml.calls_to("create_endpoint")[0].status == 200
    world.settle()  # the timer is the safety net
    assert world.rollout("credit-v1").state is State.LIVE


def test_a_pass_releases_the_lease_and_caches_what_it_observed(world: FakeWorld) -> None:
    _live(world, 1)
    record = world.ledger.leases.read(WORKSPACE_ID, "credit")

    assert record.owner == "" and record.until is not None and record.until <= world.clock()
    assert record.observed_traffic == {"credit-v1": 100}
    assert world.store.rows[(partition_key(WORKSPACE_ID, "credit"), LEASE_KEY)].data["Token"] >= 3
