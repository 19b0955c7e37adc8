"""Which models a resync run looks at: a window of RESYNC_MAX_MODELS that moves on from run to run (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.rollout.run.resync_cursor import models_in_turn

pytestmark = pytest.mark.fast


def test_a_workspace_within_the_bound_is_looked_at_whole_every_run() -> None:
    turn = models_in_turn(["b", "a", "C"], "b", 3)
    assert turn.names == ("a", "b", "C") and turn.next_after == ""


def test_the_window_moves_on_and_wraps_around() -> None:
    names = ["m0", "m1", "m2", "m3", "m4"]
    first = models_in_turn(names, "", 2)
    second = models_in_turn(names, first.next_after, 2)
    third = models_in_turn(names, second.next_after, 2)
    assert [first.names, second.names, third.names] == [("m0", "m1"), ("m2", "m3"), ("m4", "m0")]


def test_a_cursor_whose_model_was_deleted_still_moves_on() -> None:
    assert models_in_turn(["a", "c", "e"], "b", 2).names == ("c", "e")
    assert models_in_turn(["a", "c", "e"], "z", 2).names == ("a", "c")


@given(
    names=st.lists(st.text(alphabet="abcdefXYZ_.-0123", min_size=1, max_size=6), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=12),
    start=st.text(alphabet="abcXYZ", max_size=3),
)
def test_every_model_is_reached_within_ceil_models_over_the_bound_runs(
    names: list[str], limit: int, start: str
) -> None:
    distinct = set(names)
    reached: set[str] = set()
    after = start
    for _ in range(math.ceil(len(distinct) / limit)):
        turn = models_in_turn(names, after, limit)
        assert len(turn.names) == min(limit, len(distinct))  # bounded reads, as before
        reached.update(turn.names)
        after = turn.next_after
    assert reached == distinct
