"""A traffic write's follow-up observes the endpoint without listing its deployments: the write changed the split,
not the deployments, so the list the pass before it kept on the endpoint's row stands in (one ARM read, not two).
Only while nothing since could have changed the deployments, once, and never when the split names one it lacks."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from app.rollout.decide.followup import TRAFFIC_WRITE, FollowUp
from app.rollout.decide.model import DeploymentView, State, covers_split
from app.rollout.ledger.leases import EndpointRecord
from app.rollout.run.followup import LATE_S, follow_up
from tests.app.rollout.run.scenes import CREDIT, canary_baking, live_v1
from tests.fakes import WORKSPACE_ID
from tests.fakes.world import FakeWorld

pytestmark = pytest.mark.fast


def _row(world: FakeWorld) -> EndpointRecord:
    return world.ledger.leases.read(WORKSPACE_ID, "credit")


def _on_follow_ups(world: FakeWorld, deployment: str) -> list[tuple[str, bool]]:
    """Deliver follow-ups alone (no timer) until ``deployment`` is final; each one's kind and whether its pass
    observed the endpoint without listing the deployments."""
    delivered = []
    for _ in range(40):
        if world.rollout(deployment).state.terminal:
            break
        due = world.queue.next_due()
        assert due is not None, f"no follow-up left, and {deployment} is {world.rollout(deployment).state}"
        world.clock.now = max(world.clock(), due)
        for message in world.queue.take_due():
            skipped = len(world.aml.lists_skipped)
            follow_up(message.to_json(), 1, world.deps)
            delivered.append((message.kind, len(world.aml.lists_skipped) > skipped))
    return delivered


def test_a_traffic_writes_follow_up_reads_the_endpoint_alone_and_every_other_lists_the_deployments() -> None:
    world = live_v1()
    world.register("credit", 2, CREDIT)  # blue/green onto the endpoint v1 serves
    delivered = _on_follow_ups(world, "credit-v2")

    assert world.rollout("credit-v2").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v2": 100}
    assert (TRAFFIC_WRITE, True) in delivered
    assert all(skipped == (kind == TRAFFIC_WRITE) for kind, skipped in delivered), delivered


def test_a_pass_that_writes_a_deployment_keeps_no_list_and_the_next_follow_up_lists_them() -> None:
    world = live_v1()
    assert _row(world).observed_deployments is not None  # the last pass wrote nothing: its list is kept

    world.register("credit", 2, CREDIT)  # the event's pass sends the deployment's PUT
    assert _row(world).observed_deployments is None
    world.wait_for_aml()
    follow_up(FollowUp(WORKSPACE_ID, "credit", TRAFFIC_WRITE).to_json(), 1, world.deps)

    assert world.aml.lists_skipped == []
    kept = _row(world).observed_deployments
    assert kept is not None and "credit-v2" in {d.name for d in kept}


def test_a_kept_list_is_used_once_then_the_deployments_are_listed_again() -> None:
    world = canary_baking()
    world.advance()  # a pass that writes nothing during the bake: its list is kept
    assert _row(world).observed_deployments is not None
    traffic = FollowUp(WORKSPACE_ID, "credit", TRAFFIC_WRITE).to_json()
    follow_up(traffic, 1, world.deps)
    assert world.aml.lists_skipped == ["credit"]
    assert _row(world).observed_deployments is None

    follow_up(traffic, 1, world.deps)
    assert world.aml.lists_skipped == ["credit"]  # listed this time
    assert _row(world).observed_deployments is not None


def test_a_split_naming_a_deployment_the_list_lacks_is_listed_again() -> None:
    world = live_v1()
    known = _row(world).observed_deployments
    assert known is not None and [d.name for d in known] == ["credit-v1"]
    world.register("credit", 2, CREDIT)
    world.settle()  # v2 serves now, and the row keeps a list that names it

    view = world.aml.observe("credit", known)  # the list as it was before v2
    assert view is not None and "credit-v2" in {d.name for d in view.deployments}
    assert world.aml.lists_skipped == []


@pytest.mark.parametrize(
    ("traffic", "mirror", "covered"),
    [
        ({"a": 100}, {}, True),
        ({"A": 90, "b": 10}, {}, True),  # names compare case-insensitively, as Azure ML's do
        ({"a": 90, "c": 10}, {}, False),
        ({"a": 100, "c": 0}, {}, False),  # at 0% it takes no request, but it exists and the app must see it
        ({"a": 100}, {"c": 10}, False),  # mirrored traffic reaches a deployment too
        ({}, {}, True),
    ],
)
def test_a_list_covers_a_split_when_it_names_every_deployment_the_split_names(
    traffic: dict[str, int], mirror: dict[str, int], covered: bool
) -> None:
    known = (DeploymentView("a", "Succeeded"), DeploymentView("B", "Succeeded"))
    assert covers_split(known, traffic, mirror) is covered


def test_each_follow_up_is_sent_with_the_time_it_falls_due_and_one_handled_late_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = live_v1()
    world.queue.waiting.clear()  # what v1's rollout left there
    world.register("credit", 2, CREDIT)
    [scheduled] = world.queue.waiting
    assert scheduled.followup.due_at == scheduled.due_at  # the message says what the queue was told

    world.clock.now = scheduled.due_at + dt.timedelta(seconds=LATE_S + 30)  # a backlogged queue
    [message] = world.queue.take_due()
    with caplog.at_level(logging.WARNING, logger="app.rollout.run.followup"):
        follow_up(message.to_json(), 1, world.deps)
    [late] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert late.args is not None and late.args[1] == LATE_S + 30

    world.clock.now = world.queue.waiting[0].due_at  # the next one, on time
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="app.rollout.run.followup"):
        follow_up(world.queue.take_due()[0].to_json(), 1, world.deps)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
