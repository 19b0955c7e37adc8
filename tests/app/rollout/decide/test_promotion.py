"""Promotion's pure decisions: the tags, which finished rollouts are promoted, which registry versions production
takes and how it plans them, and what the status shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import Progress, Reject, Rollout, RolloutPlan, Skip, State
from app.rollout.decide.promotion import (
    NO_EVIDENCE,
    failed_gates,
    plan_from_registry,
    promotion_evidence,
    promotion_refusal,
    promotion_status,
    registry_version_refusal,
    requires_approval,
    with_gate_trail,
)
from app.rollout.decide.promotion_tags import parse_promotion_tags
from app.rollout.decide.registry_model import PromotionSource, RecordedEvidence, RegistryModelVersion
from tests.fakes import WORKSPACE_ID, make_plan, make_settings

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
STAGING_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-staging")
PROD = WorkspaceRef.from_arm_id(WORKSPACE_ID.replace("mlw-devkit", "mlw-prod"))


def _gate(outcome: str, start: str, end: str = "12:10") -> dict[str, Any]:
    return {
        "outcome": outcome,
        "reasons": [],
        "evidence": {
            "window": {"start": f"2026-12-07T{start}:00+00:00", "end": f"2026-12-07T{end}:00+00:00"},
            "requests": {"new": 600, "stable": 5400},
            "errorSharePct": 0.1,
            "p99Ms": {"new": 80.0, "stable": 75.0},
            "latencyRatio": 1.07,
        },
    }


def _rollout(state: State = State.LIVE, *gates: dict[str, Any], history: tuple[dict[str, str], ...] = ()) -> Rollout:
    plan = replace(make_plan(2), promote=True)
    rollout = Rollout(plan=plan, state=state, created_at=NOW, updated_at=NOW, progress=Progress(history=history))
    for gate in gates:  # each gate as the engine records it: the last one on the row, the trail beside it
        rollout = with_gate_trail(replace(rollout, progress=replace(rollout.progress, gate=gate)))
    return rollout


SETTINGS = make_settings(promote_to_registry="reg-promo")


# ---------------------------------------------------------------------------------------------- the tags


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, (False, None, False)),
        ({"promote": "TRUE"}, (True, None, False)),
        ({"promote": "false", "promote_tags": "deploy, endpoint,deploy"}, (False, ("deploy", "endpoint"), False)),
        ({"promote_tags": "None"}, (False, (), False)),
        ({"approval": "Required"}, (False, None, True)),
    ],
)
def test_the_promotion_tags(tags: dict[str, str], expected: tuple[Any, ...]) -> None:
    problems: list[str] = []
    parsed = parse_promotion_tags(tags, problems)
    assert (parsed.promote, parsed.carry, parsed.approval) == expected and problems == []


@pytest.mark.parametrize(
    ("tag", "value"), [("promote", "yes please"), ("promote_tags", " , "), ("approval", "none"), ("approval", "false")]
)
def test_a_bad_promotion_tag_is_a_problem_naming_the_tag(tag: str, value: str) -> None:
    problems: list[str] = []
    parse_promotion_tags({tag: value}, problems)
    assert len(problems) == 1 and f"'{tag}'" in problems[0]


@pytest.mark.parametrize(
    ("setting", "tag", "required"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_a_tag_asks_for_approval_but_never_waives_the_setting(setting: bool, tag: bool, required: bool) -> None:
    plan = replace(make_plan(), approval_requested=tag)
    assert requires_approval(plan, make_settings(require_approval=setting)) is required


# ---------------------------------------------------------------------------------------------- staging side


def test_a_live_rollout_whose_every_gate_passed_is_promoted() -> None:
    rollout = _rollout(State.LIVE, _gate("pass", "12:00"), _gate("pass", "12:20", "12:30"))
    assert promotion_refusal(rollout, SETTINGS) is None
    assert promotion_refusal(replace(rollout, state=State.CANARY), SETTINGS) is None


def test_an_inconclusive_gate_that_a_later_bake_of_the_same_step_passed_counts_as_passed() -> None:
    rollout = _rollout(State.LIVE, _gate("inconclusive", "12:00", "12:10"), _gate("pass", "12:00", "12:20"))
    assert failed_gates(rollout) == [] and promotion_refusal(rollout, SETTINGS) is None


@pytest.mark.parametrize(
    ("rollout", "settings"),
    [
        (_rollout(State.LIVE), make_settings()),  # no registry
        (replace(_rollout(State.LIVE), plan=make_plan(2)), SETTINGS),  # not tagged, PROMOTE_ALL off
        (_rollout(State.ROLLED_BACK, _gate("fail", "12:00")), SETTINGS),
        (_rollout(State.ABORTED), SETTINGS),
        (_rollout(State.DARK), SETTINGS),
        (_rollout(State.LIVE, history=({"action": "promote"},)), SETTINGS),  # an operator skipped the gates
        (_rollout(State.LIVE, _gate("inconclusive", "12:00")), SETTINGS),  # GATE_INCONCLUSIVE=promote went on
        (_rollout(State.LIVE), make_settings(promote_to_registry="reg-promo", deploy_mode="plan")),
    ],
    ids=["no-registry", "not-asked", "rolled-back", "aborted", "dark", "operator-promote", "inconclusive", "plan"],
)
def test_what_is_not_promoted(rollout: Rollout, settings: Any) -> None:
    assert promotion_refusal(rollout, settings) is not None


def test_promote_all_stands_in_for_the_tag() -> None:
    rollout = replace(_rollout(State.LIVE), plan=make_plan(2))
    assert promotion_refusal(rollout, replace(SETTINGS, promote_all=True)) is None


def test_a_version_already_from_the_target_registry_is_not_promoted_into_it_again() -> None:
    rollout = _rollout(State.LIVE)
    from_registry = replace(rollout, plan=replace(rollout.plan, source=PromotionSource(registry="REG-promo")))
    assert promotion_refusal(from_registry, SETTINGS) is not None


def test_the_evidence_carries_every_gate_the_smoke_test_and_the_staging_rollout() -> None:
    rollout = _rollout(State.LIVE, _gate("pass", "12:00"), _gate("pass", "12:20", "12:30"))
    rollout = replace(rollout, progress=replace(rollout.progress, smoke={"passed": True, "reason": "200 in 0.1 s"}))

    evidence = promotion_evidence(rollout, NOW, "func-staging.azurewebsites.net")

    assert (evidence.source_workspace, evidence.rollout_id, evidence.time) == (WORKSPACE_ID, "credit/credit-v2", NOW)
    assert [(g.name, g.verdict) for g in evidence.gates] == [("gate1", "pass"), ("gate2", "pass")]
    assert evidence.gates[0].figures["p99Ms"] == 80.0 and evidence.gates[0].figures["requests"] == 600
    assert evidence.gates[0].figures["window"] == "2026-12-07T12:00:00Z/2026-12-07T12:10:00Z"
    assert evidence.smoke is not None and evidence.smoke.passed
    assert evidence.status_link.startswith("https://func-staging.azurewebsites.net/api/rollouts?endpoint=credit")


def test_the_trail_keeps_each_gate_once() -> None:
    rollout = _rollout(State.BAKING, _gate("pass", "12:00"))
    assert with_gate_trail(rollout) == rollout  # saved again with the same gate: nothing appended
    assert len(rollout.progress.gates) == 1


# ---------------------------------------------------------------------------------------------- production side


def _version(tags: dict[str, str], *, source: str = STAGING_ID, evidence: bool = True) -> RegistryModelVersion:
    recorded = RecordedEvidence(
        rollout_id="credit/credit-v2",
        source_workspace=source,
        source_model=f"{source}/models/credit/versions/2",
        time=NOW,
        smoke="passed",
        gates={"gate1": "pass"},
        digest="abc123",
        status_link="https://func-staging/api/rollouts?endpoint=credit",
    )
    return RegistryModelVersion(
        "reg-prod", "credit", "2", "mlflow_model", tags, {}, None, None, NOW, recorded if evidence else None
    )


PRODUCTION = make_settings(
    allowed_workspaces=frozenset({PROD.key}),
    promotion_sources=frozenset({WorkspaceRef.from_arm_id(STAGING_ID).key}),
    promotion_registries=frozenset({"reg-prod"}),
)


def test_production_takes_a_version_promoted_from_a_listed_workspace_into_a_listed_registry() -> None:
    assert registry_version_refusal(_version({}), PRODUCTION) is None


def test_a_version_without_evidence_is_not_taken_whatever_its_tags() -> None:
    """Shared by hand without the evidence tags, or a staging app's copy whose evidence is still being written."""
    assert registry_version_refusal(_version({"deploy": "true"}, evidence=False), PRODUCTION) == NO_EVIDENCE


@pytest.mark.parametrize(
    ("version", "settings"),
    [
        (_version({}), replace(PRODUCTION, promotion_registries=frozenset({"reg-other"}))),
        (_version({}, source=WorkspaceRef.from_arm_id(WORKSPACE_ID).arm_id), PRODUCTION),
        (_version({}), replace(PRODUCTION, promotion_sources=frozenset())),
        (_version({}, source="not a workspace"), PRODUCTION),
    ],
    ids=["registry-not-listed", "source-not-listed", "no-sources-fail-closed", "unreadable-source"],
)
def test_production_refuses(version: RegistryModelVersion, settings: Any) -> None:
    assert registry_version_refusal(version, settings) is not None


def test_the_plan_references_the_registry_version_and_remembers_where_it_was_proven() -> None:
    decision = plan_from_registry(PROD, _version({"endpoint": "credit", "traffic": "20"}), PRODUCTION)

    assert isinstance(decision, RolloutPlan)
    assert decision.workspace_id == PROD.arm_id and decision.traffic == 20  # its tags, production's workspace
    assert decision.model_ref == "azureml://registries/reg-prod/models/credit/versions/2"
    assert decision.source == PromotionSource(
        registry="reg-prod",
        source_workspace=STAGING_ID,
        staging_rollout="credit/credit-v2",
        status_link="https://func-staging/api/rollouts?endpoint=credit",
        digest="abc123",
        promoted_at=NOW.isoformat(),
        gates={"gate1": "pass"},
        smoke="passed",
    )
    assert RolloutPlan.from_json(decision.to_json()) == decision


def test_the_plan_applies_productions_own_settings() -> None:
    strict = replace(PRODUCTION, bake_default=dt.timedelta(minutes=30), gate_max_error_rate=0.5)
    decision = plan_from_registry(PROD, _version({"endpoint": "credit", "max_error_rate": "0.8"}), strict)
    assert isinstance(decision, Reject)  # staging's tag may not loosen production's threshold
    assert decision.plan.source is not None and decision.plan.source.registry == "reg-prod"

    decision = plan_from_registry(PROD, _version({"endpoint": "credit"}), strict)
    assert isinstance(decision, RolloutPlan) and decision.bake_seconds == 1800


def test_the_evidence_stands_in_for_the_opt_in_but_an_explicit_deploy_false_keeps_it_out() -> None:
    assert isinstance(plan_from_registry(PROD, _version({}), PRODUCTION), RolloutPlan)
    assert isinstance(plan_from_registry(PROD, _version({"deploy": "false"}), PRODUCTION), Skip)


def test_the_status_shows_the_source_workspace_and_the_staging_rollout_with_links() -> None:
    decision = plan_from_registry(PROD, _version({"endpoint": "credit"}), PRODUCTION)
    assert isinstance(decision, RolloutPlan)

    shown = promotion_status(decision)

    assert shown is not None
    assert (shown["sourceWorkspace"], shown["stagingRollout"]) == (STAGING_ID, "credit/credit-v2")
    links = shown["links"]
    assert links["stagingRollout"] == "https://func-staging/api/rollouts?endpoint=credit"
    assert links["sourceModel"].endswith(f"?wsid={STAGING_ID}") and "model/credit:2" in links["sourceModel"]
    assert "endpoints/realtime/credit" in links["stagingEndpoint"]
    assert promotion_status(make_plan()) is None


def test_the_evidence_tags_are_not_planned_as_tags_of_the_contract() -> None:
    strict = replace(PRODUCTION, strict_tags=True)
    version = _version({"deploy": "true", "promotion.rollout": "credit/credit-v2", "promotion.gate.gate1": "pass"})

    assert isinstance(plan_from_registry(PROD, version, strict), RolloutPlan)


def test_the_promotion_tags_are_tags_of_the_contract_even_when_strict() -> None:
    strict = replace(PRODUCTION, strict_tags=True)
    tags = {"deploy": "true", "promote": "true", "promote_tags": "deploy", "approval": "required"}

    assert isinstance(plan_from_registry(PROD, _version(tags), strict), RolloutPlan)
