"""Production on fakes: a staging app's AmlEvents.Model.Promoted becomes a rollout of the registry's version in this
app's workspace, under its own settings; what is not listed is refused; lost events are found by the resync."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from app.handlers import HANDLERS
from app.intake.dispatch import process
from app.intake.events import MODEL_PROMOTED, Envelope
from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import RetryableError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import State
from app.rollout.decide.registry_model import GateEvidence, PromotionEvidence, SmokeEvidence
from app.rollout.run.registry_resync import resync_registries
from tests.fakes import WORKSPACE, WORKSPACE_ID, FakeWorld
from tests.fakes.registry import FakeRegistry

pytestmark = pytest.mark.fast

REGISTRY = "reg-prod"
STAGING_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-staging")
ASSET = f"azureml://registries/{REGISTRY}/models/credit/versions/{{}}"
CREDIT = {"deploy": "true", "endpoint": "credit"}


def _evidence(version: int) -> PromotionEvidence:
    return PromotionEvidence(
        source_workspace=STAGING_ID,
        rollout_id=f"credit/credit-v{version}",
        time=dt.datetime(2026, 11, 22, 11, 0, tzinfo=dt.UTC),
        gates=(GateEvidence("gate1", "pass", {"p99Ms": 80.0}),),
        smoke=SmokeEvidence(True),
        status_link="https://func-staging/api/rollouts?endpoint=credit",
    )


@pytest.fixture
def world() -> FakeWorld:
    world = FakeWorld(
        promotion_sources=frozenset({WorkspaceRef.from_arm_id(STAGING_ID).key}),
        promotion_registries=frozenset({REGISTRY}),
        promotion_workspace=WORKSPACE.key,
        resync_schedule="0 0 * * * *",
    )
    world.add_registry(REGISTRY, FakeRegistry(REGISTRY, world.clock))
    return world


def _promote(world: FakeWorld, version: int, tags: dict[str, str] | None = None) -> None:
    """The staging app's share, as the registry then holds it."""
    world.registry(REGISTRY).seed("credit", version, tags or CREDIT, evidence=_evidence(version))


def _deliver(
    world: FakeWorld, version: int, *, registry: str = REGISTRY, source: str = STAGING_ID, event_id: str = ""
) -> Outcome:
    """AmlEvents.Model.Promoted as the staging app publishes it (a CloudEvent), through the dispatcher."""
    data: dict[str, Any] = {
        "summary": "promoted",
        "facts": {"registry": registry, "model": "credit", "version": str(version), "evidence": {"rollout": "x"}},
    }
    envelope = Envelope(
        id=event_id or f"evt-{uuid.uuid4().hex[:12]}",
        event_type=MODEL_PROMOTED,
        subject=f"registries/{registry}/models/credit/versions/{version}",
        time=world.clock(),
        topic=source,
        schema="CloudEvents",
        data=json.loads(json.dumps(data)),
    )
    return process(envelope, world.deps, HANDLERS)


def test_a_promoted_version_rolls_out_here_from_the_registry(world: FakeWorld) -> None:
    _promote(world, 2)

    outcome = _deliver(world, 2)
    world.settle()

    rollout = world.rollout("credit-v2")
    assert rollout.state is State.LIVE and outcome.kind is OutcomeKind.HANDLED
    assert rollout.plan.workspace_id == WORKSPACE_ID
    assert rollout.plan.source is not None and rollout.plan.source.staging_rollout == "credit/credit-v2"
    assert world.aml.endpoints["credit"].deployments["credit-v2"].model == ASSET.format(2)  # not a copy
    assert world.aml.traffic("credit") == {"credit-v2": 100}
    assert not world.aml.models  # nothing was registered in this workspace


def test_the_status_shows_where_it_was_proven(world: FakeWorld) -> None:
    from app.api.status import rollout_status

    _promote(world, 2)
    _deliver(world, 2)

    code, body = rollout_status({}, world.deps)

    [shown] = json.loads(body)["rollouts"]
    assert code == 200 and shown["promotion"]["sourceWorkspace"] == STAGING_ID
    assert shown["promotion"]["stagingRollout"] == "credit/credit-v2"
    assert shown["promotion"]["links"]["stagingRollout"] == "https://func-staging/api/rollouts?endpoint=credit"


def test_productions_own_settings_and_gates_apply(world: FakeWorld) -> None:
    from dataclasses import replace

    world.deps = replace(world.deps, settings=replace(world.deps.settings, max_instance_count=1))
    _promote(world, 2, {**CREDIT, "instance_count": "3"})

    outcome = _deliver(world, 2)

    assert outcome.kind is OutcomeKind.REJECTED and "instance_count" in outcome.text
    assert world.rollout("credit-v2").state is State.REJECTED and not world.aml.endpoints


def test_a_registry_that_is_not_listed_is_refused_without_a_read(world: FakeWorld) -> None:
    other = world.add_registry("reg-other", FakeRegistry("reg-other", world.clock))

    outcome = _deliver(world, 2, registry="reg-other")

    assert outcome.kind is OutcomeKind.IGNORED and "PROMOTION_REGISTRIES" in outcome.text
    assert other.calls == [] and world.rollouts() == []


@pytest.mark.parametrize("sources", [frozenset(), frozenset({WORKSPACE.key})], ids=["none-fail-closed", "another"])
def test_a_source_that_is_not_listed_is_refused(world: FakeWorld, sources: frozenset[str]) -> None:
    from dataclasses import replace

    world.deps = replace(world.deps, settings=replace(world.deps.settings, promotion_sources=sources))
    _promote(world, 2)

    outcome = _deliver(world, 2)

    assert outcome.kind is OutcomeKind.IGNORED and "PROMOTION_SOURCES" in outcome.text
    assert world.registry(REGISTRY).calls == [] and world.rollouts() == []


def test_the_registry_decides_not_the_event(world: FakeWorld) -> None:
    other = WORKSPACE_ID.replace("mlw-devkit", "mlw-unknown")
    world.registry(REGISTRY).seed(
        "credit", 2, CREDIT, evidence=PromotionEvidence(other, "credit/credit-v2", dt.datetime.now(dt.UTC))
    )

    outcome = _deliver(world, 2)  # the event comes from a listed source; the registry says otherwise

    assert outcome.kind is OutcomeKind.IGNORED and "PROMOTION_SOURCES" in outcome.text and world.rollouts() == []


def test_a_version_that_lags_the_share_is_read_again_on_redelivery(world: FakeWorld) -> None:
    _promote(world, 2)
    world.registry(REGISTRY).lagging_reads = 1

    with pytest.raises(RetryableError):
        _deliver(world, 2, event_id="evt-lag")
    outcome = _deliver(world, 2, event_id="evt-lag")  # Event Grid's redelivery

    assert outcome.kind is OutcomeKind.HANDLED and world.rollout("credit-v2").plan.source is not None


def test_a_version_never_readable_is_given_up_after_the_read_window(world: FakeWorld) -> None:
    world.registry(REGISTRY).lagging_reads = 99
    _promote(world, 2)
    envelope_time = world.clock()
    world.clock.advance(6 * 60)

    outcome = _deliver_at(world, 2, envelope_time)

    assert outcome.kind is OutcomeKind.REJECTED and world.rollouts() == []


def _deliver_at(world: FakeWorld, version: int, sent: dt.datetime) -> Outcome:
    envelope = Envelope(
        id="evt-old",
        event_type=MODEL_PROMOTED,
        subject=f"registries/{REGISTRY}/models/credit/versions/{version}",
        time=sent,
        topic=STAGING_ID,
        schema="CloudEvents",
        data={},
    )
    return process(envelope, world.deps, HANDLERS)


def test_duplicate_delivery_rolls_out_once(world: FakeWorld) -> None:
    _promote(world, 2)

    first = _deliver(world, 2, event_id="evt-1")
    again = _deliver(world, 2, event_id="evt-1")
    other = _deliver(world, 2, event_id="evt-2")
    world.settle()

    assert (first.kind, again.kind, other.kind) == (OutcomeKind.HANDLED, OutcomeKind.DUPLICATE, OutcomeKind.DUPLICATE)
    assert [r.plan.deployment for r in world.rollouts()] == ["credit-v2"]
    assert [c.op for c in world.aml.calls].count("create_deployment") == 1


def test_the_resync_finds_a_promotion_whose_event_was_lost(world: FakeWorld) -> None:
    _promote(world, 1)
    _promote(world, 2)  # two versions of one model promoted, both events lost: only the newest rolls out

    lines = resync_registries(world.deps, _seen(world))
    world.settle()

    assert [r.plan.deployment for r in world.rollouts()] == ["credit-v2"]
    assert world.rollout("credit-v2").event_ids == (f"resync:{REGISTRY}/credit:2",)
    assert world.aml.traffic("credit") == {"credit-v2": 100} and len(lines) == 1
    world.registry(REGISTRY).calls.clear()
    assert resync_registries(world.deps, _seen(world)) == []  # nothing new since the cursor
    [(_, _, since)] = world.registry(REGISTRY).calls
    assert since  # the second poll started from the cursor the first one saved


def _seen(world: FakeWorld) -> set[tuple[str, str, str]]:
    """The ledger's (workspace, model, version) triples, as the resync reads them."""
    from app.rollout.ledger.ledger import ledger_of

    return {
        (WorkspaceRef.from_arm_id(ws).key, name.lower(), version)
        for ws, name, version in ledger_of(world.deps).history.model_versions()
    }


def test_the_resync_skips_what_is_in_the_ledger_and_what_is_not_for_this_app(world: FakeWorld) -> None:
    _promote(world, 2)
    _deliver(world, 2)
    hand = PromotionEvidence(STAGING_ID, "by hand", dt.datetime(2026, 11, 22, tzinfo=dt.UTC))
    world.registry(REGISTRY).seed("fraud", 1, {}, evidence=hand)  # promoted by hand, its evidence written: taken
    world.registry(REGISTRY).seed("churn", 1, {"deploy": "true"})  # shared by hand, no evidence: not taken

    lines = resync_registries(world.deps, _seen(world))

    assert [line.split(":")[0] for line in lines] == [f"{REGISTRY}/fraud"]


def test_a_production_rollback_leaves_the_registry_version_untouched(world: FakeWorld) -> None:
    from app.api.controls import operator_action

    world.register("credit", 1, CREDIT)
    world.settle()
    _promote(world, 2, {**CREDIT, "traffic": "20"})
    _deliver(world, 2)
    world.settle()
    before = dict(world.registry(REGISTRY).versions)
    tags = dict(before[("credit", "2")].tags)

    code, _ = operator_action("credit", "credit-v2", "rollback", b"", {}, world.deps)
    world.settle()

    assert code == 202 and world.rollout("credit-v2").state is State.ROLLED_BACK
    assert world.aml.traffic("credit") == {"credit-v1": 100}
    assert world.registry(REGISTRY).versions == before and before[("credit", "2")].tags == tags
    assert [c[0] for c in world.registry(REGISTRY).calls] == ["get"]  # read once, never written


def test_a_version_read_before_its_evidence_is_read_again_on_redelivery(world: FakeWorld) -> None:
    world.registry(REGISTRY).seed("credit", 2, CREDIT)  # the copy landed; the staging app has not tagged it yet

    with pytest.raises(RetryableError):
        _deliver(world, 2, event_id="evt-early")
    _promote(world, 2)  # the evidence is written
    outcome = _deliver(world, 2, event_id="evt-early")

    assert outcome.kind is OutcomeKind.HANDLED and world.rollout("credit-v2").plan.source is not None


def test_the_resync_lists_a_recent_version_without_evidence_again(world: FakeWorld) -> None:
    world.registry(REGISTRY).seed("credit", 2, CREDIT)  # copied, not tagged yet
    assert resync_registries(world.deps, _seen(world)) == []

    _promote(world, 2)  # the evidence lands on the same version
    world.clock.advance(60)
    lines = resync_registries(world.deps, _seen(world))

    assert [line.split(":")[0] for line in lines] == [f"{REGISTRY}/credit"]
