"""A follow-up message's outcome, as a type: what is dropped without a lease or an Azure ML call, and why."""

from __future__ import annotations

import pytest

from app.intake.outcome import Outcome, OutcomeKind
from app.rollout.decide.followup import FollowUp
from app.rollout.run.reconcile import follow_up
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, ForbiddenFactory, make_deps, make_settings

MESSAGE = FollowUp(WORKSPACE_ID, "credit", "deployment").to_json()


@pytest.mark.parametrize(
    "body",
    ["not json", '{"workspaceId": 1}', FollowUp(WORKSPACE_ID, "-bad-", "deployment").to_json()],
    ids=["not-json", "workspace-not-a-string", "bad-endpoint"],
)
def test_an_unreadable_message_is_dropped_untouched(body: str) -> None:
    aml, table = ForbiddenFactory("aml"), ForbiddenFactory("table")
    outcome = follow_up(body, 1, make_deps(aml=aml, table=table))
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.DROPPED
    assert (aml.calls, table.calls) == ([], [])


@pytest.mark.parametrize(
    ("settings", "body"),
    [
        (make_settings(deploy_mode="plan"), MESSAGE),
        (make_settings(), FollowUp(OTHER_WORKSPACE_ID, "credit", "deployment").to_json()),
    ],
    ids=["plan-mode", "workspace-not-allowed"],
)
def test_a_message_the_settings_refuse_is_dropped_without_reading_anything(settings: object, body: str) -> None:
    aml, table = ForbiddenFactory("aml"), ForbiddenFactory("table")
    outcome = follow_up(body, 1, make_deps(settings=settings, aml=aml, table=table))  # type: ignore[arg-type]
    assert outcome.kind is OutcomeKind.DROPPED
    assert (aml.calls, table.calls) == ([], [])
