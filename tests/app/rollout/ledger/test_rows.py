"""The rollout row's layout: every field survives the round trip, and a row that cannot be read says which."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest

from app.platform.tables import Row
from app.rollout.decide.model import Cleanup, Progress, Rollout, State
from app.rollout.ledger.indexes import RECENT_INDEX, recent_partition
from app.rollout.ledger.ledger import entities_of
from app.rollout.ledger.rows import (
    SCHEMA_VERSION,
    SUMMARY,
    RolloutsAsRead,
    UndecodableRow,
    decode_rollout,
    encode_rollout,
    partition_key,
    state_of,
)
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def _full() -> Rollout:
    return Rollout(
        plan=make_plan(3, traffic=20),
        state=State.BAKING,
        created_at=NOW - dt.timedelta(hours=1),
        updated_at=NOW,
        event_ids=("e1", "e2"),
        attempts=2,
        next_attempt_at=NOW + dt.timedelta(minutes=5),
        last_error="429 Too Many Requests",
        reason="baking step 1",
        logs="container started",
        actions=("PUT deployment credit-v3",),
        turn_taken_at=NOW - dt.timedelta(minutes=50),
        retries=("retry 1",),
        error_source="aml",
        denied_since=NOW - dt.timedelta(minutes=10),
        cleanup=Cleanup(attempts=1, next_attempt_at=NOW, last_error="409"),
        progress=Progress(step=0, bake_started_at=NOW, before_traffic={"credit-v2": 100}, gate={"verdict": "pass"}),
    )


def _row(rollout: Rollout, **changes: Any) -> Row:
    return Row("p", "k", {**encode_rollout(rollout), **changes}, "etag-1")


def test_every_field_survives_the_round_trip() -> None:
    rollout = _full()
    decoded = decode_rollout(_row(rollout))
    assert decoded == rollout
    assert decoded.etag == "etag-1"


def test_a_summary_reads_written_properties_but_not_the_logs() -> None:
    written = set(encode_rollout(_full()))
    assert set(SUMMARY) < written
    assert "Logs" not in SUMMARY


def test_long_texts_are_cut_to_what_a_table_property_holds() -> None:
    rollout = replace(_full(), logs="x" * 70_000, reason="r" * 70_000, actions=tuple(f"a{n}" for n in range(150)))
    data = encode_rollout(rollout)
    assert len(data["Logs"]) < 32_768 and len(data["Reason"]) < 32_768  # 64 KiB of UTF-16
    assert json.loads(data["Actions"])[-1] == "a149" and len(json.loads(data["Actions"])) == 100


def test_a_row_written_before_the_optional_properties_existed_is_read_with_defaults() -> None:
    plan = make_plan(1)
    row = Row("p", "k", {"Plan": plan.to_json(), "State": "live", "CreatedAt": NOW})
    rollout = decode_rollout(row)
    assert (rollout.plan, rollout.state, rollout.updated_at) == (plan, State.LIVE, NOW)
    assert (rollout.event_ids, rollout.cleanup, rollout.progress) == ((), None, Progress())


def test_a_row_from_a_newer_schema_is_read_as_far_as_known() -> None:
    row = _row(_full(), SchemaVersion=SCHEMA_VERSION + 1, SomethingNew="ignored")
    assert decode_rollout(row).state is State.BAKING


@pytest.mark.parametrize(
    ("changes", "property_named"),
    [
        ({"Plan": "{not json"}, "Plan"),
        ({"Plan": json.dumps({"endpoint": "credit"})}, "Plan"),
        ({"State": "paused"}, "State"),
        ({"CreatedAt": "yesterday"}, "CreatedAt"),
        ({"EventIds": '{"not": "a list"}'}, None),
        ({"NextAttemptAt": "soon"}, None),
        ({"Progress": '{"step": "first"}'}, None),
    ],
)
def test_a_row_that_cannot_be_read_is_undecodable_and_names_its_keys_and_property(
    changes: dict[str, Any], property_named: str | None
) -> None:
    row = _row(_full(), **changes)
    with pytest.raises(UndecodableRow) as caught:
        decode_rollout(row)
    assert caught.value.row == row
    if property_named:
        assert property_named in caught.value.problem
    assert isinstance(caught.value, ValueError)


def test_state_of_a_row_is_none_when_unknown() -> None:
    assert state_of(Row("p", "k", {"State": "live"})) is State.LIVE
    assert state_of(Row("p", "k", {"State": "paused"})) is None
    assert state_of(Row("p", "k", {})) is None


def test_partition_keys_are_per_workspace_and_endpoint_and_ignore_the_ids_case() -> None:
    key = partition_key(WORKSPACE_ID, "credit")
    assert key.endswith("~credit") and key.startswith("mlw-devkit~")
    assert partition_key(WORKSPACE_ID.upper(), "credit").lower() == key.lower()
    assert partition_key(OTHER_WORKSPACE_ID, "credit") != key
    assert partition_key(WORKSPACE_ID, "fraud") != key
    assert key < "~"  # every endpoint's partition sorts before the index partitions


def test_the_rows_as_read_remember_the_rollout_and_whether_it_came_without_logs() -> None:
    reads = RolloutsAsRead()
    whole = reads.decode(_row(_full()))
    summary = reads.decode(Row("p", "k2", encode_rollout(_full()), "etag-2"), summary=True)
    assert reads.base("etag-1") == whole and not reads.is_summary("etag-1")
    assert reads.base("etag-2") == summary and reads.is_summary("etag-2")
    assert reads.base("etag-unknown") is None


def test_the_rows_as_read_stay_bounded() -> None:
    reads = RolloutsAsRead()
    data = encode_rollout(_full())
    for n in range(1001):
        reads.decode(Row("p", "k", data, f"etag-{n}"), summary=True)
    assert reads.base("etag-0") is None and not reads.is_summary("etag-0")  # forgotten: a save then merges nothing
    assert reads.base("etag-1000") is not None


def test_entities_of_a_finished_rollout_are_its_row_and_its_two_index_entries() -> None:
    rollout = replace(_full(), state=State.LIVE, cleanup=None)
    [row, *entries] = entities_of(rollout)
    assert row == (partition_key(WORKSPACE_ID, "credit"), "credit-v3", encode_rollout(rollout))
    assert [partition for partition, _, _ in entries] == [RECENT_INDEX, recent_partition("credit")]
    assert {entry["Row"] for _, _, entry in entries} == {"credit-v3"}
    with pytest.raises(AssertionError):
        entities_of(replace(rollout, state=State.PENDING))  # an active one needs the active index too
