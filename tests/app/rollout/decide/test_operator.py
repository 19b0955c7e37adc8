"""Operator actions: every action in every state, the table docs/rollout.md shows, and what each changes."""

from __future__ import annotations

import itertools

import pytest

from app.rollout.decide.operator import ACTIONS, ALL_STATES, Applied, Control, Effect, Refused, apply_action
from app.rollout.decide.table import ACTIVE

pytestmark = pytest.mark.fast

#: (action, state) -> what happens to an unpaused rollout with nothing requested whose replaced deployment
#: exists: the effect and the new state, or "409".
EXPECTED: dict[str, dict[str, tuple[Effect, str] | str]] = {
    "promote": {
        **dict.fromkeys(("pending", "deploying", "baking"), (Effect.REQUEST_PROMOTE, "same")),
        **dict.fromkeys(("live", "canary", "dark"), (Effect.NONE, "same")),
    },
    "rollback": {
        **dict.fromkeys(("pending", "deploying", "baking"), (Effect.REQUEST_ROLLBACK, "same")),
        **dict.fromkeys(("live", "canary", "dark", "aborted"), (Effect.REQUEST_ROLLBACK, "same")),
        "rolled_back": (Effect.NONE, "same"),
    },
    "abort": {
        **dict.fromkeys(("pending", "deploying", "baking", "awaiting_approval"), (Effect.STOP, "aborted")),
        "aborted": (Effect.NONE, "same"),
    },
    "retry": {
        **dict.fromkeys(("failed", "rolled_back", "aborted", "expired"), (Effect.RESTART, "pending")),
        **dict.fromkeys(("pending", "deploying", "baking"), (Effect.NONE, "same")),
    },
    "pause": dict.fromkeys(("pending", "deploying", "baking"), (Effect.PAUSE, "same")),
    "resume": dict.fromkeys(("pending", "deploying", "baking"), (Effect.NONE, "same")),
}


def test_the_state_list_covers_todays_states_and_the_new_ones() -> None:
    assert set(ALL_STATES) == {
        "planned",
        "pending",
        "deploying",
        "live",
        "canary",
        "dark",
        "failed",
        "superseded",
        "rejected",
        "baking",
        "rolled_back",
        "aborted",
        "awaiting_approval",
        "expired",
    }


@pytest.mark.parametrize(("action", "state"), list(itertools.product(ACTIONS, ALL_STATES)))
def test_every_action_in_every_state(action: str, state: str) -> None:
    result = apply_action(action, Control(state))
    expected = EXPECTED[action].get(state, "409")
    if expected == "409":
        assert isinstance(result, Refused) and result.status == 409
        assert state in result.reason
        return
    assert isinstance(result, Applied), result
    effect, new_state = expected
    assert result.effect is effect
    assert result.control.state == (state if new_state == "same" else new_state)


@pytest.mark.parametrize(("action", "state", "paused"), list(itertools.product(ACTIONS, ALL_STATES, (False, True))))
def test_the_same_action_twice_changes_nothing_the_second_time(action: str, state: str, paused: bool) -> None:
    if paused and state not in ACTIVE:
        return  # only a running rollout can be paused
    first = apply_action(action, Control(state, paused=paused))
    if isinstance(first, Refused):
        assert isinstance(apply_action(action, Control(state, paused=paused)), Refused)
        return
    second = apply_action(action, first.control)
    assert isinstance(second, Applied), (action, state, second)
    assert second.effect is Effect.NONE and second.control == first.control


def test_pause_and_resume() -> None:
    paused = apply_action("pause", Control("baking"))
    assert isinstance(paused, Applied) and paused.control.paused and paused.effect is Effect.PAUSE
    resumed = apply_action("resume", paused.control)
    assert isinstance(resumed, Applied) and not resumed.control.paused and resumed.effect is Effect.RESUME


def test_promote_or_rollback_unpause_and_rollback_overrides_promote() -> None:
    promoted = apply_action("promote", Control("baking", paused=True))
    assert isinstance(promoted, Applied) and promoted.control == Control("baking", False, "promote")
    rolled = apply_action("rollback", promoted.control)
    assert isinstance(rolled, Applied) and rolled.control.requested == "rollback"
    refused = apply_action("promote", rolled.control)  # still baking, but a rollback is requested
    assert isinstance(refused, Refused) and refused.status == 409
    assert isinstance(apply_action("pause", rolled.control), Refused)


def test_abort_clears_a_pending_request() -> None:
    aborted = apply_action("abort", Control("baking", paused=True, requested="promote"))
    assert isinstance(aborted, Applied) and aborted.control == Control("aborted")


def test_rollback_after_the_end_needs_the_replaced_deployment() -> None:
    refused = apply_action("rollback", Control("live", rollback_blocked="the deployments it replaced are gone"))
    assert isinstance(refused, Refused) and refused.status == 409
    assert isinstance(apply_action("rollback", Control("live")), Applied)  # refused only when something blocks it
    assert isinstance(apply_action("rollback", Control("baking", rollback_blocked="gone")), Applied)


def test_retry_restarts_from_the_plan() -> None:
    retried = apply_action("retry", Control("rolled_back", requested="rollback"))
    assert isinstance(retried, Applied) and retried.control == Control("pending")


def test_unknown_action_or_state_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        apply_action("restart", Control("baking"))
    with pytest.raises(ValueError, match="unknown state"):
        apply_action("pause", Control("held"))
