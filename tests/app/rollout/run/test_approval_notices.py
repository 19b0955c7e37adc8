"""AmlEvents.Rollout.AwaitingApproval: the evidence so far, the staging evidence beside it, the exact calls."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from app.rollout.decide.model import Progress, Rollout, State
from app.rollout.decide.registry_model import PromotionSource
from app.rollout.run.approval_notices import AWAITING_APPROVAL, awaiting_approval_notification
from tests.fakes import WORKSPACE_ID, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
SMOKE = {"passed": True, "skipped": False, "status": 200, "reason": "200 in 0.2 s"}
STAGING_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-staging")


def _rollout(**plan: object) -> Rollout:
    return Rollout(
        plan=replace(make_plan(2), **plan),  # type: ignore[arg-type]
        state=State.DEPLOYING,
        created_at=NOW,
        updated_at=NOW,
        event_ids=("evt-1",),
        progress=Progress(smoke=SMOKE),
    )


def test_it_carries_the_evidence_so_far_and_the_exact_approve_and_reject_calls() -> None:
    notification = awaiting_approval_notification(
        _rollout(), "func-prod.azurewebsites.net", NOW, NOW + dt.timedelta(days=7)
    )

    assert notification.type == AWAITING_APPROVAL
    facts = notification.facts
    assert facts["evidence"]["smoke"] == SMOKE and facts["expiresAt"] == (NOW + dt.timedelta(days=7)).isoformat()
    for action in ("approve", "reject"):
        assert facts[action].startswith("curl -X POST")
        assert f"https://func-prod.azurewebsites.net/api/rollouts/credit/credit-v2/{action}" in facts[action]
    assert "staging" not in facts


def test_a_promoted_model_shows_the_staging_evidence_beside_productions() -> None:
    source = PromotionSource(
        registry="reg-prod",
        source_workspace=STAGING_ID,
        staging_rollout="credit/credit-v2",
        status_link="https://func-staging/api/rollouts?endpoint=credit",
        gates={"gate1": "pass; p99Ms=80"},
        smoke="passed",
    )

    notification = awaiting_approval_notification(_rollout(source=source), "", NOW, NOW + dt.timedelta(hours=1))

    staging = notification.facts["staging"]
    assert staging["stagingEvidence"]["gates"] == {"gate1": "pass; p99Ms=80"}
    assert staging["sourceWorkspace"] == STAGING_ID and notification.facts["evidence"]["smoke"] == SMOKE
    assert notification.links["stagingRollout"] == "https://func-staging/api/rollouts?endpoint=credit"


def test_each_request_is_its_own_notification_and_says_what_it_supersedes() -> None:
    first = awaiting_approval_notification(_rollout(), "", NOW, NOW)
    again = awaiting_approval_notification(_rollout(), "", NOW + dt.timedelta(hours=1), NOW, superseded="credit-v1")

    assert first.id != again.id and again.facts["supersedes"] == "credit-v1"
