"""Follow-up settings and messages: delays per kind, the queue name, and what a message may carry."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from app.platform.errors import EventValidationError, SettingsError
from app.platform.settings import DEFAULT_DELAYS
from app.platform.settings_reader import settings_from_env
from app.rollout.decide.followup import FollowUp, visibility
from tests.fakes import WORKSPACE_ID

pytestmark = pytest.mark.fast


def test_the_defaults_follow_what_aml_typically_takes() -> None:
    settings = settings_from_env({})
    assert settings.rollout_queue == "rollout-followups"
    assert {kind: settings.followup_delay(kind) for kind in DEFAULT_DELAYS} == dict(DEFAULT_DELAYS)


def test_delays_override_kind_by_kind_and_off_turns_follow_ups_off() -> None:
    settings = settings_from_env({"FOLLOWUP_DELAYS": "deployment=600, traffic=10"})
    assert settings.followup_delay("deployment") == 600 and settings.followup_delay("traffic") == 10
    assert settings.followup_delay("endpoint") == 90
    assert settings_from_env({"FOLLOWUP_DELAYS": "off"}).followup_delay("traffic") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FOLLOWUP_DELAYS": "deploy=300"}, "FOLLOWUP_DELAYS: 'deploy' is not one of"),
        ({"FOLLOWUP_DELAYS": "traffic=soon"}, "FOLLOWUP_DELAYS: 'traffic=soon' is not kind=seconds"),
        ({"FOLLOWUP_DELAYS": "deployment=700000"}, "out of range (0..604800 s, 7 days)"),
        ({"ROLLOUT_QUEUE": "Rollout_Queue"}, "ROLLOUT_QUEUE='Rollout_Queue' is not a valid queue name"),
        ({"ROLLOUT_QUEUE": "a--b"}, "ROLLOUT_QUEUE='a--b' is not a valid queue name"),
    ],
)
def test_a_bad_setting_is_named_with_its_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_env(env)
    assert message in str(raised.value)


def test_visibility_is_whole_seconds_never_early_and_at_most_seven_days() -> None:
    assert visibility(1.2) == 2 and visibility(0) == 0 and visibility(10**9) == 7 * 24 * 3600


def test_a_message_round_trips_and_names_the_field_it_lacks() -> None:
    sent = FollowUp(WORKSPACE_ID, "credit", "traffic", 2)
    assert FollowUp.parse(sent.to_json().encode()) == sent
    with pytest.raises(EventValidationError) as bad_endpoint:
        FollowUp.parse(json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "1x"}))
    assert bad_endpoint.value.field == "endpoint"
    with pytest.raises(EventValidationError) as no_workspace:
        FollowUp.parse(json.dumps({"endpoint": "credit"}))
    assert no_workspace.value.field == "workspaceId"


def test_a_bake_s_follow_up_says_when_the_bake_ends_and_no_other_does() -> None:
    at = "2026-11-26T10:00:00+00:00"
    assert FollowUp(WORKSPACE_ID, "credit", f"bake end {at}").bake_end == dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)
    assert FollowUp(WORKSPACE_ID, "credit", "bake end soon").bake_end is None  # unreadable: handled as before
    assert FollowUp(WORKSPACE_ID, "credit", "traffic").bake_end is None
    assert FollowUp(WORKSPACE_ID, "credit", f"tick end {at}").bake_end is None


def test_a_message_says_when_it_falls_due_and_how_late_it_is_handled() -> None:
    due = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    sent = FollowUp(WORKSPACE_ID, "credit", "traffic", due_at=due)
    assert FollowUp.parse(sent.to_json()) == sent
    assert sent.late_by(due + dt.timedelta(seconds=75)) == 75
    assert sent.late_by(due - dt.timedelta(seconds=5)) == 0  # a queue never hands it early; a skewed clock might
    assert FollowUp(WORKSPACE_ID, "credit", "traffic").late_by(due) is None  # an older sender's message
    unreadable = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "credit", "reason": "traffic", "dueAt": "soon"})
    assert FollowUp.parse(unreadable).due_at is None  # handled as before
