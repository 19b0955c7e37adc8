"""The in-memory table answers queries as Azure Tables does: key order, pages of at most 1,000, typed filters."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes import FakeTableStore

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def test_pages_hold_at_most_a_thousand_rows_in_key_order_and_the_token_resumes() -> None:
    store = FakeTableStore()
    for n in reversed(range(2500)):
        store.upsert(f"p{n % 2}", f"{n:05d}", {"n": n})
    sizes, keys, token = [], [], None
    while True:
        rows, token = store.page("PartitionKey ge @lo", continuation=token, lo="p")
        sizes.append(len(rows))
        keys += [(row.partition, row.key) for row in rows]
        if token is None:
            break
    assert sizes == [1000, 1000, 500]
    assert keys == sorted(keys) and len(set(keys)) == 2500
    rows, token = store.page("PartitionKey eq @pk", limit=3, pk="p1")
    assert [row.key for row in rows] == ["00001", "00003", "00005"] and token == {
        "PartitionKey": "p1",
        "RowKey": "00007",
    }


def test_a_comparison_with_a_missing_property_or_a_constant_of_another_type_matches_nothing() -> None:
    store = FakeTableStore()
    store.upsert("p", "a", {"Active": True, "At": NOW, "n": 1})
    store.upsert("p", "b", {"Active": "true", "At": NOW.isoformat(), "n": 2.5})
    store.upsert("p", "c", {})
    assert [r.key for r in store.query("Active eq true")] == ["a"]
    assert [r.key for r in store.query("At lt @t", t=NOW + dt.timedelta(seconds=1))] == ["a"]
    assert [r.key for r in store.query("n gt 1")] == ["b"]
    assert [r.key for r in store.query("n ne 1")] == ["b"]  # c has no n: no comparison holds


def test_and_binds_tighter_than_or_and_quoted_literals_are_strings() -> None:
    store = FakeTableStore()
    for key, data in {"a": {"x": "it's"}, "b": {"x": "b", "y": 1}, "c": {"x": "c", "y": 2}}.items():
        store.upsert("p", key, data)
    assert [r.key for r in store.query("x eq 'it''s' or x eq 'c' and y eq 2")] == ["a", "c"]
    with pytest.raises(AssertionError):
        list(store.query("startswith(x, 'a')"))


def test_select_reads_only_the_named_properties() -> None:
    store = FakeTableStore()
    store.upsert("p", "k", {"Logs": "long", "State": "live"})
    row = store.get("p", "k", select=["State", "Absent"])
    assert row is not None and dict(row.data) == {"State": "live"}
    [queried] = store.query("PartitionKey eq @pk", select=["Logs"], pk="p")
    assert dict(queried.data) == {"Logs": "long"}
