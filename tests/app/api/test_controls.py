"""Operator controls on fakes: each action's answer, what it records, what it changes in Azure ML, who is told."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from app.api.controls import operator_action
from app.rollout.decide.model import State
from tests.fakes import WORKSPACE_ID, FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}
STEPS = {"traffic_steps": "10,50,100", "bake": "10m"}
GATES = {"gate_metric_lag": dt.timedelta(0), "gate_max_extensions": 1}


def _act(world: FakeWorld, deployment: str, action: str, body: bytes = b"", **headers: str) -> tuple[int, Any]:
    status, text = operator_action("credit", deployment, action, body, headers, world.deps)
    return status, json.loads(text)


@pytest.fixture
def baking() -> FakeWorld:
    """v1 live; v2 at its first step (10%), its bake under way."""
    world = FakeWorld(**GATES)
    world.register("credit", 1, CREDIT)
    world.settle()
    world.register("credit", 2, {**CREDIT, **STEPS})
    for _ in range(4):
        world.wait_for_aml()
        world.tick()
        if world.rollout("credit-v2").progress.bake_started_at:
            break
    assert world.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}
    return world


def test_bad_requests_are_400s_and_an_unknown_rollout_is_a_404(baking: FakeWorld) -> None:
    assert _act(baking, "credit-v2", "launch")[0] == 400
    assert _act(baking, "credit-v2", "pause", b"not json")[0] == 400
    assert _act(baking, "credit-v2", "pause", b'{"reason": 3}')[0] == 400
    status, body = _act(baking, "credit-v9", "pause")
    assert status == 404 and "error" in body


def test_an_action_that_does_not_apply_is_a_409_with_the_rollout_as_it_is(baking: FakeWorld) -> None:
    status, body = _act(baking, "credit-v1", "pause")  # live: nothing to pause
    assert status == 409 and body["rollout"]["state"] == "live"
    assert _act(baking, "credit-v2", "resume")[1]["effect"] == "none"  # not paused: nothing changes
    assert _act(baking, "credit-v2", "retry")[1]["effect"] == "none"  # already running


def test_pause_holds_the_bake_and_resume_starts_it_again(baking: FakeWorld) -> None:
    status, body = _act(
        baking, "credit-v2", "pause", b'{"reason": "investigating"}', **{"X-MS-CLIENT-PRINCIPAL-NAME": "ops@contoso"}
    )
    assert status == 202 and body["rollout"]["progress"]["paused"]
    assert _act(baking, "credit-v2", "pause")[1]["effect"] == "none"  # idempotent
    baking.clock.advance(minutes=30)
    baking.tick()
    paused = baking.rollout("credit-v2")
    assert paused.state is State.BAKING and paused.progress.gate is None  # no bake advanced while paused
    assert baking.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}

    assert _act(baking, "credit-v2", "resume")[0] == 202
    baking.settle()
    resumed = baking.rollout("credit-v2")
    assert resumed.state is State.LIVE
    assert [(h["action"], h["caller"]) for h in resumed.progress.history] == [
        ("pause", "function key"),  # without App Service authentication a -NAME header is the caller's word
        ("pause", "function key"),
        ("resume", "function key"),
    ]
    assert resumed.progress.history[0]["reason"] == "investigating"
    assert {"AmlEvents.Rollout.Paused", "AmlEvents.Rollout.Resumed"} <= set(baking.notified_about("credit-v2"))


def test_promote_skips_the_remaining_bakes_with_one_traffic_write(baking: FakeWorld) -> None:
    writes = len(baking.aml.writes)
    status, body = _act(baking, "credit-v2", "promote", b'{"reason": "looks good"}')

    assert status == 202 and body["effect"] == "request_promote"
    assert baking.aml.traffic("credit") == {"credit-v2": 100}
    assert len(baking.aml.writes) == writes + 1
    baking.settle()
    assert baking.rollout("credit-v2").state is State.LIVE
    assert "AmlEvents.Rollout.OperatorAction" in baking.notified_about("credit-v2")


def test_rollback_puts_back_the_split_the_rollout_found(baking: FakeWorld) -> None:
    status, _ = _act(baking, "credit-v2", "rollback", b'{"reason": "customer complaints"}')

    assert status == 202
    assert baking.rollout("credit-v2").state is State.ROLLED_BACK
    assert baking.aml.traffic("credit") == {"credit-v1": 100}
    assert _act(baking, "credit-v2", "rollback")[1]["effect"] == "none"


def test_rollback_after_a_rollout_ended_live_returns_to_the_replaced_deployment(baking: FakeWorld) -> None:
    baking.settle()
    assert baking.rollout("credit-v2").state is State.LIVE

    assert _act(baking, "credit-v2", "rollback")[0] == 202
    baking.settle()
    assert baking.rollout("credit-v2").state is State.ROLLED_BACK
    assert baking.aml.traffic("credit") == {"credit-v1": 100}


def test_abort_stops_where_it_is_and_retry_starts_again(baking: FakeWorld) -> None:
    status, body = _act(baking, "credit-v2", "abort", b'{"reason": "stop"}')
    assert status == 202 and body["rollout"]["state"] == "aborted"
    writes = len(baking.aml.writes)
    baking.clock.advance(minutes=30)
    baking.tick()
    assert len(baking.aml.writes) == writes  # no further writes
    assert baking.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}  # as it was
    assert _act(baking, "credit-v2", "pause")[0] == 409

    assert _act(baking, "credit-v2", "retry")[0] == 202
    baking.settle()
    assert baking.rollout("credit-v2").state is State.LIVE
    assert "AmlEvents.Rollout.Aborted" in baking.notified_about("credit-v2")


def test_retry_of_a_failed_rollout_deploys_it_again(world: FakeWorld) -> None:
    world.aml.fail_deployment("credit-v1")
    world.register("credit", 1, CREDIT)
    world.settle()
    assert world.rollout("credit-v1").state is State.FAILED

    status, body = _act(world, "credit-v1", "retry", b'{"reason": "fixed the image"}')
    assert status == 202 and body["effect"] == "restart"
    world.settle()
    assert world.rollout("credit-v1").state is State.LIVE
    assert world.aml.traffic("credit") == {"credit-v1": 100}


def test_an_action_is_recorded_even_when_its_endpoint_is_busy_and_carried_out_later(baking: FakeWorld) -> None:
    other = baking.ledger.acquire_lease(WORKSPACE_ID, "credit", "other", baking.clock(), 60)
    assert other is not None
    status, body = _act(baking, "credit-v2", "promote")

    assert status == 202 and body["rollout"]["progress"]["requested"] == "promote"
    assert baking.aml.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}
    baking.clock.advance(61)
    baking.tick()
    assert baking.aml.traffic("credit") == {"credit-v2": 100}


def test_rollback_of_an_ended_rollout_is_refused_once_a_newer_rollout_changed_the_endpoint() -> None:
    world = FakeWorld(keep_deployments=3)  # v1, the split v2 replaced, is still there
    for version, tags in ((1, {}), (2, {}), (3, {"traffic": "20"})):
        world.register("credit", version, {**CREDIT, **tags})
        world.settle()
    assert world.aml.traffic("credit") == {"credit-v2": 80, "credit-v3": 20}

    status, _ = _act(world, "credit-v2", "rollback")
    assert status == 409
    world.settle()
    assert world.aml.traffic("credit") == {"credit-v2": 80, "credit-v3": 20}  # v3's canary is not wiped out
    assert _act(world, "credit-v3", "rollback")[0] == 202  # the newest one can be


def test_an_action_that_needs_azure_ml_answers_503_when_it_cannot_be_read(world: FakeWorld) -> None:
    for version in (1, 2):
        world.register("credit", version, CREDIT)
        world.settle()
    world.aml.fail_next("observe", 503)

    status, body = _act(world, "credit-v2", "rollback")
    assert status == 503 and "error" in body
    assert world.rollout("credit-v2").progress.requested == ""
