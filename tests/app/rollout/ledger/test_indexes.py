"""The ledger's indexes: the active endpoints (never under-reported) and every rollout newest first, paged."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from app.rollout.decide.model import Cleanup, State
from app.rollout.ledger.indexes import (
    ACTIVE_INDEX,
    ACTIVE_INDEX_GRACE,
    INDEX_BUILT,
    RECENT_INDEX,
    ActiveEndpoint,
    recent_key,
    recent_partition,
)
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.rows import partition_key
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, FakeTableStore, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
PK = partition_key(WORKSPACE_ID, "credit")


@pytest.fixture
def ledger(store: FakeTableStore) -> RolloutLedger:
    """A ledger read once already: a new ledger's first read builds the active index (from no rows)."""
    ledger = RolloutLedger(store)
    assert ledger.active.endpoints(NOW - 30 * 24 * HOUR) == []
    return ledger


def _listed(ledger: RolloutLedger, now: dt.datetime = NOW) -> list[tuple[str, str]]:
    return [(e.workspace_id, e.endpoint) for e in ledger.active.endpoints(now)]


# --- the active endpoints -----------------------------------------------------------------------------------


def test_an_endpoint_with_a_rollout_in_progress_is_listed_once(ledger: RolloutLedger) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.record(make_plan(2), State.PENDING, "e2", NOW)
    ledger.record(make_plan(1, endpoint="fraud", model="fraud"), State.LIVE, "f1", NOW)
    ledger.record(make_plan(1, endpoint="loans", model="loans"), State.PENDING, "l1", NOW)
    entries = ledger.active.endpoints(NOW)
    assert all(isinstance(entry, ActiveEndpoint) and entry.since == NOW for entry in entries)
    assert [(e.workspace_id, e.endpoint) for e in entries] == [(WORKSPACE_ID, "credit"), (WORKSPACE_ID, "loans")]


def test_reading_the_active_endpoints_reads_one_partition(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    del store.queries[:]
    for n in range(50):
        ledger.record(make_plan(100 + n), State.LIVE, f"old-{n}", NOW - n * HOUR)
    assert _listed(ledger) == [(WORKSPACE_ID, "credit")]
    assert store.queries == ["PartitionKey eq @pk"]


def test_one_endpoint_s_entry_is_found_with_a_point_read(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    del store.queries[:]
    found = ledger.active.find(WORKSPACE_ID, "credit")
    assert isinstance(found, ActiveEndpoint) and (found.workspace_id, found.endpoint) == (WORKSPACE_ID, "credit")
    assert ledger.active.find(WORKSPACE_ID, "fraud") is None  # not active
    assert ledger.active.find(OTHER_WORKSPACE_ID, "credit") is None  # the same name in another workspace
    assert store.queries == []  # point reads only


def test_a_crash_between_the_index_entry_and_the_row_only_over_reports(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    def crash() -> None:
        assert _listed(RolloutLedger(store)) == [(WORKSPACE_ID, "credit")]  # findable before the row exists
        raise KeyboardInterrupt("the instance died between the index entry and the rollout row")

    store.before_writing(PK, "credit-v1", crash)
    with pytest.raises(KeyboardInterrupt):
        ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    [entry] = ledger.active.endpoints(NOW)
    assert not ledger.active.settle(entry, NOW + ACTIVE_INDEX_GRACE / 2)  # a recorder may still be writing
    assert ledger.active.settle(entry, NOW + ACTIVE_INDEX_GRACE)  # nothing came: the over-report goes
    assert _listed(ledger) == []


def test_an_endpoint_stays_listed_while_anything_on_it_is_active(ledger: RolloutLedger) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    later = NOW + ACTIVE_INDEX_GRACE
    [entry] = ledger.active.endpoints(later)
    assert not ledger.active.settle(entry, later)  # pending
    finished = ledger.save(replace(rollout, state=State.FAILED, cleanup=Cleanup()), NOW)
    [entry] = ledger.active.endpoints(later)
    assert not ledger.active.settle(entry, later)  # finished, but cleanup is owed
    ledger.save(replace(finished, cleanup=None), NOW)
    [entry] = ledger.active.endpoints(later)
    assert ledger.active.settle(entry, later)
    assert _listed(ledger, later) == []


def test_an_entry_rewritten_meanwhile_by_a_new_rollout_stays(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW - 2 * ACTIVE_INDEX_GRACE)
    rollout = ledger.endpoint_rollouts(WORKSPACE_ID, "credit")[0]
    ledger.save(replace(rollout, state=State.LIVE), NOW - ACTIVE_INDEX_GRACE)
    [stale] = ledger.active.endpoints(NOW)
    store.before_writing(
        ACTIVE_INDEX, PK, lambda: RolloutLedger(store).record(make_plan(2), State.PENDING, "e2", NOW)
    )  # the reconciler found nothing active; a delivery records a rollout before the removal lands
    assert not ledger.active.settle(stale, NOW)  # the ETag changed: the entry stays
    assert _listed(ledger) == [(WORKSPACE_ID, "credit")]
    assert [r.plan.deployment for r in ledger.endpoint_rollouts(WORKSPACE_ID, "credit")] == ["credit-v2"]


def test_a_ledger_written_before_the_index_builds_it_once_from_its_active_rows(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.record(make_plan(7, endpoint="fraud", model="fraud"), State.LIVE, "f7", NOW)
    ledger.record(make_plan(2, endpoint="loans", model="loans"), State.PENDING, "l2", NOW)
    other = partition_key(OTHER_WORKSPACE_ID, "credit")
    store.insert(other, "x", {"Workspace": OTHER_WORKSPACE_ID, "Endpoint": "credit", "Active": True})
    for key in [k for (p, k) in store.rows if p == ACTIVE_INDEX]:
        del store.rows[(ACTIVE_INDEX, key)]  # as a ledger written before the index existed
    del store.queries[:]
    expected = [(WORKSPACE_ID, "credit"), (WORKSPACE_ID, "loans"), (OTHER_WORKSPACE_ID, "credit")]
    assert _listed(ledger) == expected
    assert "Active eq true" in store.queries  # the one scan
    assert (ACTIVE_INDEX, INDEX_BUILT) in store.rows
    del store.queries[:]
    assert _listed(ledger) == expected
    assert store.queries == ["PartitionKey eq @pk"]


# --- every rollout, newest first ----------------------------------------------------------------------------


def _seed(ledger: RolloutLedger) -> list[str]:
    """Eleven rollouts on two endpoints; their deployments newest first (two share a creation time)."""
    base = NOW - 10 * 24 * HOUR
    for n in range(1, 8):
        ledger.record(make_plan(n), State.LIVE if n % 2 else State.FAILED, f"c{n}", base + n * HOUR)
    for n in range(1, 5):  # fraud-v1 and credit-v1 are created in the same microsecond
        created = base + (n * 2 * HOUR - HOUR / 2 if n > 1 else HOUR)
        ledger.record(make_plan(n, "fraud", "fraud"), State.LIVE, f"f{n}", created)
    return [
        "fraud-v4", "credit-v7", "credit-v6", "fraud-v3", "credit-v5", "credit-v4", "fraud-v2", "credit-v3",
        "credit-v2", "fraud-v1", "credit-v1",
    ]  # fmt: skip


def _all_pages(ledger: RolloutLedger, **filters: str | int) -> tuple[list[str], list[int]]:
    names: list[str] = []
    sizes: list[int] = []
    resume = None
    while True:
        rollouts, resume = ledger.recent.page(resume=resume, **filters)  # type: ignore[arg-type]
        names += [r.plan.deployment for r in rollouts]
        sizes.append(len(rollouts))
        if resume is None:
            return names, sizes


def test_following_the_continuations_lists_every_rollout_once_newest_first(ledger: RolloutLedger) -> None:
    expected = _seed(ledger)
    names, sizes = _all_pages(ledger, limit=3)
    assert names[:9] == expected[:9]
    assert sorted(names[9:]) == sorted(expected[9:])  # the tie is broken by the rows' keys
    assert len(names) == 11 and sizes[:3] == [3, 3, 3]
    assert _all_pages(ledger)[0] == names  # the default limit: one page
    assert _all_pages(ledger, endpoint="FRAUD", limit=2) == (["fraud-v4", "fraud-v3", "fraud-v2", "fraud-v1"], [2, 2])
    assert _all_pages(ledger, model="Credit", state="failed", limit=2)[0] == ["credit-v6", "credit-v4", "credit-v2"]
    assert _all_pages(ledger, endpoint="credit", state="rejected")[0] == []


def test_a_rollout_recorded_between_pages_is_not_listed_twice(ledger: RolloutLedger) -> None:
    _seed(ledger)
    first, resume = ledger.recent.page(limit=4)
    ledger.record(make_plan(8), State.PENDING, "c8", NOW)  # newer than every page read already
    rest: list[str] = []
    while resume is not None:
        page, resume = ledger.recent.page(limit=4, resume=resume)
        rest += [r.plan.deployment for r in page]
    names = [r.plan.deployment for r in first] + rest
    assert len(names) == len(set(names)) == 11 and "credit-v8" not in names
    assert ledger.recent.page(limit=1)[0][0].plan.deployment == "credit-v8"


def test_index_entries_without_their_row_are_skipped(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - HOUR)
    orphan = recent_key(NOW, PK, "credit-v2")  # a recorder that died before its row
    entry = {"Partition": PK, "Row": "credit-v2", "Endpoint": "credit", "Model": "credit", "CreatedAt": NOW}
    store.upsert(RECENT_INDEX, orphan, entry)
    late = recent_key(NOW - 2 * HOUR, PK, "credit-v1")  # older than the row it names: a lost race's entry
    store.upsert(RECENT_INDEX, late, {**entry, "Row": "credit-v1", "CreatedAt": NOW - 2 * HOUR})
    assert [r.plan.deployment for r in ledger.recent.page()[0]] == ["credit-v1"]


def test_an_unreadable_row_is_left_out_of_the_pages(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - HOUR)
    ledger.record(make_plan(2), State.LIVE, "c2", NOW)
    row = store.rows[(PK, "credit-v2")]
    store.replace(row, {**row.data, "Plan": "{not json"})
    assert [r.plan.deployment for r in ledger.recent.page()[0]] == ["credit-v1"]


def test_a_page_reads_the_index_and_one_row_per_rollout_whatever_the_history(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    for n in range(300):
        ledger.record(make_plan(n), State.SUPERSEDED, f"c{n}", NOW - n * HOUR)
    del store.queries[:]
    page, resume = ledger.recent.page(limit=5)
    assert [r.plan.deployment for r in page] == [f"credit-v{n}" for n in range(5)]
    assert resume is not None and store.queries == ["PartitionKey eq @pk"]


def test_find_names_a_rollout_in_every_workspace_and_a_save_of_it_merges_duplicates(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.PENDING, "c1", NOW)
    ledger.record(make_plan(2), State.PENDING, "c2", NOW)
    ledger.record(replace(make_plan(1), workspace_id=OTHER_WORKSPACE_ID), State.LIVE, "o1", NOW)
    found = RolloutLedger(store).recent.find("Credit", "CREDIT-V1")
    assert sorted(r.plan.workspace_id for r in found) == sorted([WORKSPACE_ID, OTHER_WORKSPACE_ID])
    assert RolloutLedger(store).recent.find("credit", "credit-v9") == []
    operator = RolloutLedger(store)
    [ours] = [r for r in operator.recent.find("credit", "credit-v1") if r.plan.workspace_id == WORKSPACE_ID]
    ledger.record(make_plan(1), State.PENDING, "c1-again", NOW)  # a duplicate delivery meanwhile
    saved = operator.save(replace(ours, reason="paused by an operator"), NOW)
    assert (saved.reason, saved.event_ids) == ("paused by an operator", ("c1", "c1-again"))


def test_the_index_partitions_are_per_endpoint_name_in_lower_case() -> None:
    assert recent_partition() == RECENT_INDEX
    assert recent_partition("Credit") == recent_partition("credit") != RECENT_INDEX
    assert recent_key(NOW, PK, "credit-v1") < recent_key(NOW - HOUR, PK, "credit-v1")  # newest first
