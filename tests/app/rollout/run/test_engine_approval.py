"""Approval as a step of any rollout, on the fakes: it waits warm and smoke-tested with no traffic, then an operator's
approve takes it on, reject ends it and deletes its deployment, an unanswered request expires, and a newer version
supersedes it."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.model import State
from tests.app.rollout.run.scenes import CREDIT, SAMPLE, act, live_v1, ticks
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast

AWAITING = "AmlEvents.Rollout.AwaitingApproval"
CANARY = {**CREDIT, "traffic": "20", "smoke_request": SAMPLE}


def _awaiting(tags: dict[str, str] | None = None, **settings: object) -> FakeWorld:
    world = live_v1(**settings)
    world.configure(require_approval=True)
    world.register("credit", 2, tags or CANARY)
    world.settle()
    assert world.rollout("credit-v2").state is State.AWAITING_APPROVAL
    return world


def test_a_rollout_that_needs_approval_waits_warm_and_smoke_tested_with_no_traffic() -> None:
    world = _awaiting()
    waiting = world.rollout("credit-v2")
    assert waiting.progress.smoke is not None and waiting.progress.smoke["passed"]
    assert waiting.progress.approval_asked_at is not None
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert "credit-v2" in world.aml.deployments("credit")  # warm
    assert world.notified_about("credit-v2").count(AWAITING) == 1
    ticks(world, 10)  # waiting is no work: nothing more is written or told
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert world.notified_about("credit-v2").count(AWAITING) == 1
    assert world.rollout("credit-v2").state is State.AWAITING_APPROVAL


def test_the_tag_asks_for_approval_without_the_setting_and_no_tag_waives_the_setting() -> None:
    world = live_v1()
    world.register("credit", 2, {**CANARY, "approval": "required"})
    world.settle()
    assert world.rollout("credit-v2").state is State.AWAITING_APPROVAL


def test_approve_takes_the_rollout_to_its_planned_traffic() -> None:
    world = _awaiting()
    status, _ = act(world, "credit-v2", "approve", "looks good")
    assert status == 202
    world.settle()
    approved = world.rollout("credit-v2")
    assert approved.state is State.CANARY
    assert world.aml.traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
    assert approved.progress.before_traffic == {"credit-v1": 100}  # a rollback would go back to it
    entry = [e for e in approved.progress.history if e["action"] == "approve"]
    assert len(entry) == 1 and entry[0]["reason"] == "looks good" and entry[0]["caller"]
    assert act(world, "credit-v2", "approve")[0] == 202  # the same decision again changes nothing
    assert act(world, "credit-v2", "reject")[0] == 409  # and is not taken back


def test_the_time_awaiting_approval_does_not_count_toward_the_rollout_timeout() -> None:
    world = _awaiting(rollout_timeout_minutes=60)
    world.clock.advance(dt.timedelta(days=2).total_seconds())
    ticks(world, 2)
    assert world.rollout("credit-v2").state is State.AWAITING_APPROVAL
    assert act(world, "credit-v2", "approve")[0] == 202
    world.settle()
    assert world.rollout("credit-v2").state is State.CANARY


def test_reject_ends_it_rejected_and_cleanup_deletes_its_deployment() -> None:
    world = _awaiting()
    assert act(world, "credit-v2", "reject", "not this one")[0] == 202
    world.settle()
    rejected = world.rollout("credit-v2")
    assert rejected.state is State.REJECTED
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert "credit-v2" not in world.aml.deployments("credit")
    assert act(world, "credit-v2", "approve")[0] == 409  # a decision is not taken back
    assert act(world, "credit-v2", "retry")[0] == 409
    [told] = [n for n in world.sink.received if n.type == "AmlEvents.Rollout.Rejected"]
    assert told.severity == "warning"  # an operator's decision, not a fault


def test_a_rejected_deployment_is_kept_with_keep_failed_deployments() -> None:
    world = _awaiting(keep_failed_deployments=True)
    assert act(world, "credit-v2", "reject")[0] == 202
    world.settle()
    assert world.rollout("credit-v2").state is State.REJECTED
    assert "credit-v2" in world.aml.deployments("credit")


def test_an_unanswered_request_expires_and_can_be_retried() -> None:
    world = _awaiting(approval_timeout=dt.timedelta(hours=1))
    world.clock.advance(3601)
    ticks(world, 2)
    expired = world.rollout("credit-v2")
    assert expired.state is State.EXPIRED
    assert "AmlEvents.Rollout.ApprovalExpired" in world.notified_about("credit-v2")
    world.settle()
    assert "credit-v2" not in world.aml.deployments("credit")
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert act(world, "credit-v2", "retry")[0] == 202  # asks again
    world.settle()
    assert world.rollout("credit-v2").state is State.AWAITING_APPROVAL
    assert world.notified_about("credit-v2").count(AWAITING) == 2


def test_a_newer_version_supersedes_one_awaiting_approval_and_says_so() -> None:
    world = _awaiting()
    world.register("credit", 3, CANARY)
    world.settle()
    superseded = world.rollout("credit-v2")
    assert superseded.state is State.SUPERSEDED and "awaited approval" in superseded.reason
    assert world.rollout("credit-v3").state is State.AWAITING_APPROVAL
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_an_abort_while_awaiting_approval_ends_it_with_no_traffic() -> None:
    world = _awaiting()
    assert act(world, "credit-v2", "abort")[0] == 202
    world.settle()
    assert world.rollout("credit-v2").state is State.ABORTED
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_a_failed_smoke_test_fails_before_any_approval_is_asked() -> None:
    world = live_v1()
    world.configure(require_approval=True)
    world.smoke.answer("credit-v2", 500, b"boom")
    world.register("credit", 2, CANARY)
    world.settle()
    assert world.rollout("credit-v2").state is State.FAILED
    assert AWAITING not in world.notified_about("credit-v2")


def test_a_promote_asked_before_the_approval_waits_for_it_and_then_skips_the_bakes() -> None:
    world = live_v1()
    world.configure(require_approval=True)
    world.register("credit", 2, {**CREDIT, "traffic_steps": "10,50,100", "bake": "10m", "smoke_request": SAMPLE})
    assert act(world, "credit-v2", "promote")[0] == 202
    world.settle()
    waiting = world.rollout("credit-v2")
    assert waiting.state is State.AWAITING_APPROVAL and waiting.progress.requested == "promote"
    assert world.aml.traffic("credit") == {"credit-v1": 100}  # a promote is no approval
    assert act(world, "credit-v2", "approve")[0] == 202
    world.settle()
    assert world.rollout("credit-v2").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v2": 100}
