"""The staging app's promotion on fakes: a proven rollout is shared into the registry with its evidence and announced;
nothing else is; failures are retried or reported; a lost follow-up is sent again by the tick."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from app.rollout.decide.model import State
from app.rollout.ledger.promotions import PromotionStatus, promotion_key
from app.rollout.run.promotion import promotions_of
from tests.fakes import WORKSPACE_ID, FakeWorld
from tests.fakes.registry import FakeRegistry

pytestmark = pytest.mark.fast

REGISTRY = "reg-promo"
CREDIT = {"deploy": "true", "endpoint": "credit"}
SAMPLE = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}})
STEPS = {"traffic_steps": "10,100", "bake": "10m", "smoke_request": SAMPLE}
GATES = {"gate_metric_lag": dt.timedelta(0), "gate_min_requests": 100, "gate_max_extensions": 1}
PROMOTED, FAILED = "AmlEvents.Model.Promoted", "AmlEvents.Model.PromotionFailed"


def _world(**settings: object) -> tuple[FakeWorld, FakeRegistry]:
    world = FakeWorld(**{**GATES, "promote_to_registry": REGISTRY, **settings})
    registry = world.add_registry(REGISTRY)
    world.register("credit", 1, CREDIT)
    world.settle()
    return world, registry


def _roll_out(world: FakeWorld, version: int, tags: dict[str, str]) -> None:
    """Register ``credit`` ``version`` and drive its rollout to its end, follow-ups delivered as they fall due."""
    world.register("credit", version, {**CREDIT, **tags})
    world.settle()
    world.deliver_followups()


def _record(world: FakeWorld, version: int) -> PromotionStatus | None:
    found = promotions_of(world.deps).get(promotion_key(WORKSPACE_ID, "credit", f"credit-v{version}"))
    return found.status if found else None


def test_a_proven_canary_tagged_promote_is_shared_with_its_evidence_and_announced() -> None:
    world, registry = _world()

    _roll_out(world, 2, {**STEPS, "promote": "true"})

    assert world.rollout("credit-v2").state is State.LIVE
    [version] = [v for v in registry.versions.values() if v.version == "2"]
    recorded = registry.get("credit", "2").evidence
    assert recorded is not None and recorded.rollout_id == "credit/credit-v2"
    assert recorded.source_workspace == WORKSPACE_ID
    assert list(recorded.gates) == ["gate1", "gate2"]  # one verdict per bake window, both passed
    assert all(verdict.startswith("pass") for verdict in recorded.gates.values())
    assert recorded.smoke.startswith("passed")
    assert version.tags["endpoint"] == "credit" and version.tags["promote"] == "true"  # the model's tags kept
    promoted = [n for n in world.sink.received if n.type == PROMOTED]
    assert len(promoted) == 1
    assert promoted[0].subject == f"registries/{REGISTRY}/models/credit/versions/2"
    assert promoted[0].workspace.arm_id.lower() == WORKSPACE_ID.lower()  # the CloudEvent's source
    assert promoted[0].facts["assetId"] == f"azureml://registries/{REGISTRY}/models/credit/versions/2"
    assert [g["verdict"] for g in promoted[0].facts["evidence"]["gates"]] == ["pass", "pass"]
    assert _record(world, 2) is PromotionStatus.PROMOTED


def test_promote_tags_choose_what_the_registry_version_keeps() -> None:
    world, registry = _world()

    _roll_out(world, 2, {**STEPS, "promote": "true", "promote_tags": "deploy,Endpoint"})

    tags = registry.get("credit", "2").tags
    assert {k for k in tags if not k.startswith("promotion.")} == {"deploy", "endpoint"}


def test_promote_all_promotes_without_the_tag() -> None:
    world, registry = _world(promote_all=True)

    _roll_out(world, 2, STEPS)

    assert ("credit", "2") in registry.versions


@pytest.mark.parametrize(
    ("settings", "tags"),
    [
        ({}, STEPS),  # not asked for
        ({"promote_to_registry": ""}, {**STEPS, "promote": "true"}),  # nowhere to promote to
        ({"gate_inconclusive": "promote"}, {**STEPS, "promote": "true"}),  # a step passed without a passed gate
    ],
    ids=["no-tag", "no-registry", "inconclusive-gate-promoted-by-policy"],
)
def test_nothing_is_promoted_unless_asked_for_and_every_gate_passed(
    settings: dict[str, object], tags: dict[str, str]
) -> None:
    world, registry = _world(**settings)
    if settings.get("gate_inconclusive"):
        world.metrics.rpm = 20  # too few requests on the 10% step: the gate stays inconclusive

    _roll_out(world, 2, tags)
    for _ in range(30):  # the inconclusive steps extend their bakes, then the policy promotes them
        world.tick()
        world.clock.advance(60)
        world.wait_for_aml()
    world.deliver_followups()

    assert world.rollout("credit-v2").state in (State.LIVE, State.CANARY)
    assert registry.versions.keys() == set() and PROMOTED not in world.notified


def test_a_rolled_back_canary_is_not_promoted() -> None:
    world, registry = _world()
    world.metrics.set_health("credit-v2", error_rate=20.0)

    _roll_out(world, 2, {**STEPS, "promote": "true"})

    assert world.rollout("credit-v2").state is State.ROLLED_BACK
    assert not registry.versions and _record(world, 2) is None


def test_an_operator_promote_that_skipped_gates_is_not_promoted() -> None:
    from app.api.controls import operator_action

    world, registry = _world()
    world.register("credit", 2, {**CREDIT, **STEPS, "promote": "true"})
    for _ in range(10):
        world.tick()
        world.clock.advance(60)
        world.wait_for_aml()
        if world.rollout("credit-v2").state is State.BAKING:
            break
    code, _ = operator_action("credit", "credit-v2", "promote", b"", {}, world.deps)
    assert code == 202
    world.settle()
    world.deliver_followups()

    assert world.rollout("credit-v2").state is State.LIVE
    assert not registry.versions


def test_a_share_that_fails_half_way_is_retried_and_leaves_one_version() -> None:
    world, registry = _world()
    registry.failing = ["retryable"]

    _roll_out(world, 2, {**STEPS, "promote": "true"})
    assert not registry.versions and _record(world, 2) is PromotionStatus.OWED  # backing off

    world.clock.advance(120)
    world.deliver_followups()  # the follow-up sent with the back-off

    assert [call for call in registry.calls if call[0] == "share"] == [("share", "credit", "2")] * 2
    assert list(registry.versions) == [("credit", "2")] and _record(world, 2) is PromotionStatus.PROMOTED
    assert world.notified.count(PROMOTED) == 1


def test_a_permanent_failure_is_reported_once_and_not_retried() -> None:
    world, registry = _world()
    registry.failing = ["permanent"]

    _roll_out(world, 2, {**STEPS, "promote": "true"})
    world.clock.advance(3600)
    world.tick()
    world.deliver_followups()

    assert _record(world, 2) is PromotionStatus.FAILED
    assert world.notified.count(FAILED) == 1 and PROMOTED not in world.notified
    assert len([call for call in registry.calls if call[0] == "share"]) == 1


def test_too_many_failed_attempts_end_the_promotion() -> None:
    world, registry = _world(rollout_max_attempts=2)
    registry.failing = ["retryable"] * 5

    _roll_out(world, 2, {**STEPS, "promote": "true"})
    world.clock.advance(120)
    world.deliver_followups()

    assert _record(world, 2) is PromotionStatus.FAILED and world.notified.count(FAILED) == 1


def test_a_lost_follow_up_is_sent_again_by_the_tick_when_its_turn_has_passed() -> None:
    world, registry = _world()
    world.register("credit", 2, {**CREDIT, **STEPS, "promote": "true"})
    world.settle()
    assert world.queue.take_due()  # the promotion's follow-up, lost

    world.tick()
    assert not world.queue.take_due()  # not before its claim window is over: it may still be on its way
    world.clock.advance(16 * 60)
    world.tick()
    world.deliver_followups()

    assert ("credit", "2") in registry.versions


def test_with_follow_ups_off_the_tick_promotes() -> None:
    world, registry = _world()
    world.deps = type(world.deps)(**{**world.deps.__dict__, "followups": None})

    world.register("credit", 2, {**CREDIT, **STEPS, "promote": "true"})
    world.settle()
    world.tick()

    assert ("credit", "2") in registry.versions


def test_in_hold_mode_a_promotion_waits_without_counting_attempts() -> None:
    world, registry = _world()
    world.register("credit", 2, {**CREDIT, **STEPS, "promote": "true"})
    world.settle()
    world.deps = type(world.deps)(**{**world.deps.__dict__, "settings": _with(world, deploy_mode="hold")})

    world.deliver_followups()

    assert not registry.versions
    record = promotions_of(world.deps).get(promotion_key(WORKSPACE_ID, "credit", "credit-v2"))
    assert record is not None and record.status is PromotionStatus.OWED and record.attempts == 0


def _with(world: FakeWorld, **changes: object) -> object:
    from dataclasses import replace

    return replace(world.deps.settings, **changes)  # type: ignore[arg-type]
