"""Promotion end to end with the real SDKs against the emulator: a staging app shares a proven version into a
registry and announces it; a production app in another subscription and region rolls the registry's version out
under its own settings. Refusals, a share failing half-way, a lost event, a production rollback."""

from __future__ import annotations

import pytest

from app.intake.outcome import OutcomeKind
from devkit.harness import OfflineApp, model_registered
from devkit.promotion import PRODUCTION_ID, REGISTRY, Promotion, set_up
from devkit.stack import WORKSPACE_ID, DevStack

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit", "promote": "true"}
ASSET = f"azureml://registries/{REGISTRY}/models/credit/versions/{{}}"


@pytest.fixture
def promotion(stack: DevStack) -> Promotion:
    return set_up(stack)


@pytest.fixture
def app(stack: DevStack) -> OfflineApp:
    return OfflineApp(stack)


def _prove_in_staging(promotion: Promotion, app: OfflineApp, version: int, tags: dict[str, str] = CREDIT) -> None:
    """Register ``credit`` ``version`` in staging, roll it out there and carry out its promotion."""
    with promotion.staging():
        promotion.stack.aml.seed_model("credit", version, tags=tags, job_name=f"train-{version}")
        app.deliver(model_registered("credit", version))
        app.run_until_settled()
        app.drain_followups()


def test_a_model_proven_in_staging_rolls_out_in_production_from_the_registry(
    promotion: Promotion, app: OfflineApp
) -> None:
    _prove_in_staging(promotion, app, 1)

    stored = promotion.registry.model("credit", 1)
    assert stored is not None and stored.source == f"{WORKSPACE_ID}/models/credit/versions/1"
    assert stored.tags["promotion.rollout"] == "credit/credit-v1" and stored.tags["promotion.smoke"] == "not run"
    assert stored.tags["endpoint"] == "credit" and stored.job_name == "train-1"  # tags and lineage kept
    [event] = promotion.forward()
    assert event["subject"] == f"registries/{REGISTRY}/models/credit/versions/1"
    assert event["source"].lower() == WORKSPACE_ID.lower()

    with promotion.production():
        [delivery] = app.deliver(event)
        app.run_until_settled()
        rollout = app.rollout("credit-v1")

    assert delivery.acknowledged and rollout["state"] == "live" and rollout["workspace"] == PRODUCTION_ID
    assert rollout["promotion"]["sourceWorkspace"].lower() == WORKSPACE_ID.lower()
    assert rollout["promotion"]["stagingRollout"] == "credit/credit-v1"
    deployment = promotion.production_workspace.deployment_state("credit", "credit-v1")
    assert deployment is not None and deployment["properties"]["model"] == ASSET.format(1)
    assert promotion.production_workspace.model_state("credit", 1) is None  # deployed from the registry, not copied
    assert promotion.production_traffic("credit") == {"credit-v1": 100}


def test_a_promotion_for_a_registry_that_is_not_listed_is_refused(promotion: Promotion, app: OfflineApp) -> None:
    _prove_in_staging(promotion, app, 1)
    [event] = promotion.forward()
    promotion.stack.aml.clear_requests()

    with promotion.production(PROMOTION_REGISTRIES="reg-other"):
        [delivery] = app.deliver(event)
        rollouts = app.rollouts()

    assert delivery.acknowledged and delivery.kind is OutcomeKind.IGNORED and "PROMOTION_REGISTRIES" in delivery.outcome
    assert rollouts == []
    assert promotion.stack.aml.requests(path_contains="/registries/") == []  # not even read


def test_a_share_that_fails_half_way_is_retried_without_a_duplicate(promotion: Promotion, app: OfflineApp) -> None:
    promotion.registry.fail_next_imports(1, how="copy")

    _prove_in_staging(promotion, app, 1)
    assert promotion.registry.model("credit", 1) is None and promotion.promoted() == []

    with promotion.staging(FOLLOWUP_DELAYS="off"):  # the tick carries the retry out itself, when it is due
        _tick_after_the_back_off(app)

    assert [(m.name, m.version) for m in promotion.registry.models()] == [("credit", "1")]
    imports = [r.status for r in promotion.stack.aml.requests(method="POST", path_contains="/import")]
    assert imports == [202, 202] and len(promotion.promoted()) == 1


def _tick_after_the_back_off(app: OfflineApp) -> None:
    """The promotion's retry is due a minute later (its follow-up invisible until then): tick two minutes on."""
    import datetime as dt

    from app.platform import clock

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    with clock.following(lambda: later):
        app.tick()


def test_a_lost_promotion_event_is_found_by_the_resync(promotion: Promotion, app: OfflineApp) -> None:
    _prove_in_staging(promotion, app, 1)
    promotion.forward()  # delivered nowhere: the event is lost

    with promotion.production():
        app.resync()
        app.run_until_settled()
        rollout = app.rollout("credit-v1")

    assert rollout["state"] == "live" and rollout["eventIds"] == [f"resync:{REGISTRY}/credit:1"]


def test_a_production_rollback_leaves_the_registry_version_untouched(promotion: Promotion, app: OfflineApp) -> None:
    with promotion.production():
        promotion.production_workspace.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
        app.deliver(model_registered("credit", 1, workspace_id=PRODUCTION_ID))
        app.run_until_settled()
    _prove_in_staging(promotion, app, 2, {**CREDIT, "traffic": "20"})
    before = promotion.registry.model("credit", 2)
    [event] = promotion.forward()

    with promotion.production():
        app.deliver(event)
        app.run_until_settled()
        assert promotion.production_traffic("credit") == {"credit-v1": 80, "credit-v2": 20}
        code, _ = app.control("credit-v2", "rollback", "production alarm")
        app.run_until_settled()
        rollout = app.rollout("credit-v2")
        traffic = promotion.production_traffic("credit")

    assert code == 202 and rollout["state"] == "rolled_back" and traffic == {"credit-v1": 100}
    after = promotion.registry.model("credit", 2)
    assert after is not None and before is not None
    assert (after.tags, after.modified_at, after.stage) == (before.tags, before.modified_at, before.stage)
