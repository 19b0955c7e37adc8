"""What an observed traffic split is against the app's recorded intents: ours, landed, late (restore) or drift."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide import intents
from app.rollout.decide.intents import Intent, judge

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def _intent(seq: int, traffic: dict[str, int], status: str, minutes_ago: float = 1) -> Intent:
    at = (NOW - dt.timedelta(minutes=minutes_ago)).isoformat()
    return Intent(seq, seq, f"d{seq}", traffic, {}, at, status)


V1 = {"credit-v1": 100}
V2 = {"credit-v2": 100}
V3 = {"credit-v3": 100}


@pytest.mark.parametrize(
    ("history", "observed", "kind"),
    [
        # no split of the app yet: nothing to compare with
        ([], V1, "none"),
        # the app's current split (names compared case-insensitively, zero shares ignored)
        ([_intent(1, V1, "accepted")], {"Credit-V1": 100, "credit-v2": 0}, "ours"),
        # a write that got no answer shows up, newer than the current split: it landed in order
        ([_intent(1, V1, "accepted"), _intent(2, V2, "sent")], V2, "landed"),
        # ... and while it has not landed, the current split is still the older accepted one
        ([_intent(1, V1, "accepted"), _intent(2, V2, "sent")], V1, "ours"),
        # an unanswered write older than the current split shows up: it landed late, restore
        ([_intent(1, V1, "accepted"), _intent(2, V2, "sent"), _intent(3, V3, "accepted")], V2, "late"),
        # an older split the app set and AML accepted: a person rolled back by hand, never reverted
        ([_intent(1, V1, "accepted"), _intent(2, V3, "accepted")], V1, "drift"),
        # a refused write never applied; seeing its split is someone else's doing
        ([_intent(1, V1, "accepted"), _intent(2, V2, "refused"), _intent(3, V3, "accepted")], V2, "drift"),
        # an unanswered write older than the watch no longer counts as the app's own
        ([_intent(1, V2, "sent", minutes_ago=60), _intent(2, V3, "accepted")], V2, "drift"),
        # a split nobody recorded
        ([_intent(1, V1, "accepted")], {"credit-v1": 50, "hand-made": 50}, "drift"),
    ],
)
def test_an_observed_split_is_judged_against_the_apps_intents(
    history: list[Intent], observed: dict[str, int], kind: str
) -> None:
    assert judge(observed, {}, history, NOW).kind == kind


def test_a_late_write_names_the_split_to_restore_and_the_one_that_landed() -> None:
    history = [_intent(1, V1, "accepted"), _intent(2, V2, "sent"), _intent(3, V3, "accepted")]
    verdict = judge(V2, {}, history, NOW)
    assert verdict.current is not None and verdict.matched is not None
    assert (verdict.current.traffic, verdict.matched.seq) == (V3, 2)


def test_mirror_traffic_is_part_of_the_split() -> None:
    history = [Intent(1, 1, "d", V1, {"credit-v2": 10}, NOW.isoformat(), "accepted")]
    assert judge(V1, {"credit-v2": 10}, history, NOW).kind == "ours"
    assert judge(V1, {}, history, NOW).kind == "drift"


def test_an_endpoint_is_watched_while_a_write_is_in_doubt() -> None:
    assert intents.watching([_intent(1, V1, "sent")], NOW)
    assert not intents.watching([_intent(1, V1, "sent", minutes_ago=16)], NOW)
    assert not intents.watching([_intent(1, V1, "accepted")], NOW)


def test_intents_round_trip_and_keep_the_newest() -> None:
    many = [_intent(n, V1, "accepted") for n in range(1, 30)]
    decoded = intents.decode_intents(intents.encode_intents(many))
    assert [i.seq for i in decoded] == list(range(10, 30))
    assert intents.new_intent(decoded, 7, "d", V2, {}, NOW).seq == 30
