"""A follow-up message's outcome, as a type: what is dropped without a lease or an Azure ML call, and why."""

from __future__ import annotations

import pytest

from app.intake.outcome import Outcome, OutcomeKind
from app.rollout.decide.followup import FollowUp
from app.rollout.run.followup import follow_up
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, FakeTableStore, ForbiddenFactory, make_deps, make_settings

pytestmark = pytest.mark.fast

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


def test_a_message_for_an_endpoint_with_nothing_in_flight_is_dropped_without_an_azure_ml_call() -> None:
    store, aml = FakeTableStore(), ForbiddenFactory("aml")
    outcome = follow_up(MESSAGE, 1, make_deps(aml=aml, table=lambda name: store))
    assert outcome.kind is OutcomeKind.DROPPED
    assert aml.calls == [] and not [key for key in store.rows if key[1] == "~lease"]  # no lease taken
