"""The rollout engine on fakes: what Azure ML is sent, the states rollouts reach, and the notifications people get."""

from __future__ import annotations

import pytest

from app.rollout.decide.model import State
from tests.fakes import WORKSPACE_ID, FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}
STARTED, LIVE, CANARY = "AmlEvents.Rollout.Started", "AmlEvents.Rollout.Live", "AmlEvents.Rollout.Canary"
FAILED, SUPERSEDED = "AmlEvents.Rollout.Failed", "AmlEvents.Rollout.Superseded"


def _live(world: FakeWorld, version: int, **tags: str) -> None:
    world.register("credit", version, {**CREDIT, **tags})
    world.settle()


def _writes(world: FakeWorld) -> list[tuple[str, str]]:
    return [(c.op, c.deployment) for c in world.aml.writes]


def test_a_new_endpoint_goes_live_blue_green_with_one_write_per_pass(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)
    ticks = world.settle()

    assert _writes(world) == [("create_endpoint", ""), ("create_deployment", "credit-v1"), ("set_traffic", "")]
    assert all(call.status == 200 for call in world.aml.calls)  # never a 409: it waited for each operation
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert world.rollout("credit-v1").state is State.LIVE
    assert world.notified == [STARTED, LIVE]
    assert ticks <= 3


def test_nothing_is_written_while_azure_ml_is_still_busy_with_the_last_write(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)  # the endpoint PUT: creating for 90 s
    world.clock.advance(30)
    world.tick()
    assert _writes(world) == [("create_endpoint", "")]
    assert world.rollout("credit-v1").state is State.DEPLOYING

    world.clock.advance(60)
    world.tick()
    assert _writes(world)[-1] == ("create_deployment", "credit-v1")


def test_a_canary_splits_traffic_with_the_live_deployment(world: FakeWorld) -> None:
    _live(world, 1)
    world.register("credit", 2, {**CREDIT, "traffic": "20"})
    world.settle()

    assert world.aml.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
    assert world.rollout("credit-v2").state is State.CANARY
    assert world.rollout("credit-v1").state is State.LIVE
    assert world.notified_about("credit-v2") == [STARTED, CANARY]


def test_a_blue_green_cut_over_keeps_the_previous_deployment_and_deletes_older_ones(world: FakeWorld) -> None:
    for version in (1, 2, 3):
        _live(world, version)
    world.settle()

    assert world.aml.traffic("credit") == {"credit-v3": 100}
    assert set(world.aml.deployments("credit")) == {"credit-v2", "credit-v3"}  # KEEP_DEPLOYMENTS=2
    assert [c.deployment for c in world.aml.calls_to("delete_deployment")] == ["credit-v1"]
    assert world.rollout("credit-v1").state is State.LIVE  # its record is history, not undone


def test_a_newer_version_supersedes_one_that_has_not_been_deployed_yet(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)  # the endpoint is being created: v1 waits for it
    world.register("credit", 2, CREDIT)
    world.settle()

    assert world.rollout("credit-v1").state is State.SUPERSEDED
    assert world.rollout("credit-v2").state is State.LIVE
    assert [c.deployment for c in world.aml.calls_to("create_deployment")] == ["credit-v2"]
    assert SUPERSEDED in world.notified_about("credit-v1") and LIVE not in world.notified_about("credit-v1")


def test_the_same_event_delivered_again_changes_nothing(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT, event_id="evt-1")
    world.deliver_registered("credit", 1, CREDIT, event_id="evt-1")
    world.deliver_registered("credit", 1, CREDIT, event_id="evt-2")
    world.settle()

    assert len(world.aml.calls_to("create_deployment")) == 1
    assert world.rollout("credit-v1").event_ids == ("evt-1", "evt-2")
    assert world.notified == [STARTED, LIVE]


def _deployment_put_answered(world: FakeWorld, status: int) -> None:
    """v1's endpoint exists; its deployment PUT, sent by the next tick, gets ``status``."""
    world.register("credit", 1, CREDIT)
    world.wait_for_aml()
    world.aml.fail_next("create_deployment", status)
    world.tick()


def test_a_409_from_azure_ml_is_waited_out_and_never_fails_the_rollout(world: FakeWorld) -> None:
    _deployment_put_answered(world, 409)
    rollout = world.rollout("credit-v1")
    assert rollout.state is State.DEPLOYING and rollout.attempts == 0 and rollout.next_attempt_at is None

    world.settle()
    assert world.rollout("credit-v1").state is State.LIVE
    assert [c.status for c in world.aml.calls_to("create_deployment")] == [409, 200]


def test_a_transient_error_backs_off_then_the_write_is_sent_again(world: FakeWorld) -> None:
    _deployment_put_answered(world, 503)
    waiting = world.rollout("credit-v1")
    assert waiting.attempts == 1 and waiting.error_source == "azureml"
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > world.clock()

    world.tick()  # still backing off: nothing is sent
    assert len(world.aml.calls_to("create_deployment")) == 1

    world.clock.now = waiting.next_attempt_at
    world.settle()
    assert world.rollout("credit-v1").state is State.LIVE
    assert [c.status for c in world.aml.calls_to("create_deployment")] == [503, 200]


def test_a_refused_write_fails_the_rollout_and_leaves_the_live_traffic_alone(world: FakeWorld) -> None:
    _live(world, 1)
    world.register("credit", 2, CREDIT)
    world.wait_for_aml()
    world.aml.fail_next("set_traffic", 400)
    world.settle()

    failed = world.rollout("credit-v2")
    assert failed.state is State.FAILED and failed.error_source == "azureml"
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert FAILED in world.notified_about("credit-v2")


def test_a_deployment_that_fails_in_azure_ml_fails_the_rollout_with_its_logs_and_is_removed(world: FakeWorld) -> None:
    _live(world, 1)
    world.aml.fail_deployment("credit-v2")
    world.register("credit", 2, CREDIT)
    world.settle()

    failed = world.rollout("credit-v2")
    assert failed.state is State.FAILED
    assert "Failed" in failed.logs  # the container's log lines are kept on the row
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert "credit-v2" not in world.aml.deployments("credit")  # KEEP_FAILED_DEPLOYMENTS=false
    assert world.notified_about("credit-v2") == [STARTED, FAILED]


def test_a_failed_deployment_is_kept_for_inspection_when_the_settings_say_so() -> None:
    world = FakeWorld(keep_failed_deployments=True)
    world.aml.fail_deployment("credit-v1")
    world.register("credit", 1, CREDIT)
    world.settle()

    assert world.rollout("credit-v1").state is State.FAILED
    assert world.aml.deployments("credit") == {"credit-v1": "Failed"}


@pytest.mark.parametrize(
    ("landed", "puts"),
    [(True, [None]), (False, [None, 200])],
    ids=["landed-so-not-sent-again", "lost-so-sent-again"],
)
def test_a_write_without_an_answer_is_decided_on_what_the_next_observation_shows(
    world: FakeWorld, landed: bool, puts: list[int | None]
) -> None:
    world.register("credit", 1, CREDIT)
    world.wait_for_aml()
    world.aml.drop_answer("create_deployment", landed=landed)
    world.tick()
    world.settle()

    assert [c.status for c in world.aml.calls_to("create_deployment")] == puts
    assert world.rollout("credit-v1").state is State.LIVE


def test_hold_mode_records_and_reads_but_writes_nothing() -> None:
    world = FakeWorld(deploy_mode="hold")
    world.register("credit", 1, CREDIT)
    for _ in range(3):
        world.tick()
        world.clock.advance(300)

    assert world.aml.writes == []
    assert world.rollout("credit-v1").state is State.PENDING
    assert world.aml.calls_to("observe")  # it keeps looking


def test_a_write_denied_while_a_role_propagates_waits_then_fails_after_the_permission_budget() -> None:
    world = FakeWorld(permission_retry_minutes=10)
    world.aml.register_model("credit", 1, CREDIT)
    world.aml.deny_next("create_endpoint", count=100)
    world.deliver_registered("credit", 1, CREDIT)
    waiting = world.rollout("credit-v1")
    assert waiting.state is State.DEPLOYING and waiting.error_source == "permission"
    assert waiting.denied_since == world.clock() and waiting.next_attempt_at is not None

    for _ in range(12):
        world.clock.advance(minutes=1)
        world.tick()
    failed = world.rollout("credit-v1")
    assert failed.state is State.FAILED and failed.error_source == "permission"
    assert world.aml.endpoints == {}


def test_models_registered_while_writes_are_denied_are_deployed_once_the_role_applies(world: FakeWorld) -> None:
    world.aml.deny_next("create_endpoint", count=3)
    world.register("credit", 1, CREDIT)
    for _ in range(6):
        world.clock.advance(minutes=2)
        world.tick()
        world.wait_for_aml()
    world.settle()

    assert world.rollout("credit-v1").state is State.LIVE
    assert [c.status for c in world.aml.calls_to("create_endpoint")][-1] == 200


def test_an_endpoint_leased_by_another_instance_gets_no_write_from_this_one(world: FakeWorld) -> None:
    world.aml.register_model("credit", 1, CREDIT)
    ledger = world.ledger
    assert ledger.acquire_lease(WORKSPACE_ID, "credit", "other-instance", world.clock(), 60) is not None
    world.deliver_registered("credit", 1, CREDIT)
    world.tick()

    assert world.aml.calls_to("observe") == [] and world.aml.writes == []
    assert world.rollout("credit-v1").state is State.PENDING

    world.clock.advance(61)  # the other instance's lease runs out: this one takes over
    world.settle()
    assert world.rollout("credit-v1").state is State.LIVE
