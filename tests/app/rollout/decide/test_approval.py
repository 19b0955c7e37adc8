"""Approval's decisions (pure): approve and reject apply only to a rollout awaiting approval, once, and never both."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.approval import AWAITING_APPROVAL, Decided, NotDecidable, approval_expires_at, decide_approval

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_rollout_awaiting_approval_takes_either_decision(action: str) -> None:
    decided = decide_approval(action, AWAITING_APPROVAL, "", ())
    assert decided == Decided(True, action, decided.note if isinstance(decided, Decided) else "")


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_the_same_decision_again_changes_nothing(action: str) -> None:
    requested = decide_approval(action, AWAITING_APPROVAL, action, ())  # recorded, not carried out yet
    carried_out = decide_approval(action, "baking" if action == "approve" else "rejected", "", ({"action": action},))

    assert isinstance(requested, Decided) and not requested.changed
    assert isinstance(carried_out, Decided) and not carried_out.changed


@pytest.mark.parametrize(("first", "then"), [("approve", "reject"), ("reject", "approve")])
def test_a_decision_is_not_taken_back(first: str, then: str) -> None:
    assert isinstance(decide_approval(then, AWAITING_APPROVAL, first, ()), NotDecidable)
    assert isinstance(decide_approval(then, "live", "", ({"action": first},)), NotDecidable)


def test_a_retry_starts_a_new_decision() -> None:
    history = ({"action": "approve"}, {"action": "retry"})
    assert decide_approval("reject", AWAITING_APPROVAL, "", history) == Decided(True, "reject", "rejected")


@pytest.mark.parametrize("state", ["pending", "deploying", "baking", "live", "failed", "rolled_back", "planned"])
def test_only_a_rollout_awaiting_approval_can_be_decided(state: str) -> None:
    for action in ("approve", "reject"):
        refused = decide_approval(action, state, "", ())
        assert isinstance(refused, NotDecidable) and state in refused.reason


def test_a_decision_waits_for_a_request_under_way() -> None:
    assert isinstance(decide_approval("approve", AWAITING_APPROVAL, "rollback", ()), NotDecidable)


def test_a_request_expires_its_timeout_after_it_was_asked() -> None:
    asked = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    assert approval_expires_at(asked, dt.timedelta(hours=168)) == asked + dt.timedelta(days=7)
