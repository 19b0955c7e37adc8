"""The ledger's history: retention keeps each endpoint's newest finished rollout, bounded passes resume, and rows
written before the newest-first index get their entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from app.rollout.decide.model import Cleanup, Rollout, State
from app.rollout.ledger.history import Purged
from app.rollout.ledger.indexes import ACTIVE_INDEX, HISTORY_INDEXED, RECENT_INDEX, recent_key, recent_partition
from app.rollout.ledger.ledger import RolloutLedger, entities_of
from app.rollout.ledger.rows import partition_key
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID, FakeTableStore, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CUTOFF = NOW - 90 * DAY
PK = partition_key(WORKSPACE_ID, "credit")


def _rollouts(store: FakeTableStore) -> list[str]:
    return sorted(key for (partition, key) in store.rows if not partition.startswith("~") and key != "~lease")


def _entries(store: FakeTableStore, partition: str = RECENT_INDEX) -> int:
    return sum(1 for (p, _) in store.rows if p == partition)


def test_retention_deletes_old_finished_rollouts_but_the_newest_per_endpoint_and_the_active(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    # (endpoint, version, state, days since it was recorded); the model is named as the endpoint
    recorded = [
        ("credit", 1, State.LIVE, 200),
        ("credit", 2, State.SUPERSEDED, 150),
        ("credit", 3, State.FAILED, 120),  # credit's newest finished one: kept
        ("credit", 4, State.PENDING, 100),  # in progress: kept
        ("fraud", 1, State.LIVE, 200),
        ("fraud", 2, State.LIVE, 5),  # recent: kept
        ("legacy", 1, State.REJECTED, 300),  # its endpoint's only one: kept
    ]
    for endpoint, version, state, days in recorded:
        ledger.record(make_plan(version, endpoint, endpoint), state, f"{endpoint}-{version}", NOW - days * DAY)
    touched, _ = ledger.record(make_plan(0), State.LIVE, "c0", NOW - 250 * DAY)
    ledger.save(touched, NOW - DAY)  # created long ago, updated yesterday: kept
    owing, _ = ledger.record(make_plan(9), State.FAILED, "c9", NOW - 300 * DAY)
    ledger.save(replace(owing, cleanup=Cleanup()), NOW - 300 * DAY)  # cleanup owed: kept

    purged = ledger.history.purge(CUTOFF, budget=100)

    assert isinstance(purged, Purged)
    assert (purged.deleted, purged.kept_newest, purged.dangling) == (3, 2, 0)
    assert _rollouts(store) == ["credit-v0", "credit-v3", "credit-v4", "credit-v9", "fraud-v2", "legacy-v1"]
    assert _entries(store) == 6  # the deleted rollouts' index entries went with them
    assert _entries(store, recent_partition("credit")) == 4
    assert ledger.history.purge(CUTOFF, budget=100).deleted == 0


def test_retention_is_bounded_per_run_and_resumes_on_the_next(ledger: RolloutLedger, store: FakeTableStore) -> None:
    for n in range(1, 8):
        ledger.record(make_plan(n), State.SUPERSEDED, f"c{n}", NOW - (100 + n) * DAY)
    first = ledger.history.purge(CUTOFF, budget=3)  # from the cutoff back: credit-v1 (the newest, kept), v2, v3
    assert (first.examined, first.deleted, first.kept_newest) == (3, 2, 1)
    assert len(_rollouts(store)) == 5
    second = ledger.history.purge(CUTOFF, budget=10)
    assert (second.examined, second.deleted, second.kept_newest) == (5, 4, 1)
    assert _rollouts(store) == ["credit-v1"]


def test_retention_walks_only_the_entries_older_than_the_cutoff(ledger: RolloutLedger, store: FakeTableStore) -> None:
    for n in range(20):
        ledger.record(make_plan(n), State.SUPERSEDED, f"c{n}", NOW - n * DAY)
    ledger.record(make_plan(99), State.SUPERSEDED, "old", NOW - 100 * DAY)
    purged = ledger.history.purge(CUTOFF, budget=100)
    assert purged.examined == 1 and purged.kept_newest == 0 and purged.deleted == 1


def test_retention_removes_index_entries_left_without_their_row(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 100 * DAY)
    entry = {"Partition": PK, "Row": "credit-v2", "Endpoint": "credit", "Model": "credit", "CreatedAt": NOW - 95 * DAY}
    key = recent_key(NOW - 95 * DAY, PK, "credit-v2")  # a recorder that died before its row
    store.upsert(RECENT_INDEX, key, entry)
    store.upsert(recent_partition("credit"), key, entry)
    purged = ledger.history.purge(CUTOFF, budget=100)
    assert (purged.dangling, purged.deleted, purged.kept_newest) == (1, 0, 1)
    assert (RECENT_INDEX, key) not in store.rows and (recent_partition("credit"), key) not in store.rows


def test_a_rollout_changed_while_retention_ran_stays(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 200 * DAY)
    ledger.record(make_plan(2), State.LIVE, "c2", NOW - 150 * DAY)
    other = RolloutLedger(store)
    store.before_writing(PK, "credit-v1", lambda: other.record(make_plan(1), State.LIVE, "late", NOW))
    purged = ledger.history.purge(CUTOFF, budget=100)
    assert purged.deleted == 0
    assert _rollouts(store) == ["credit-v1", "credit-v2"] and _entries(store) == 2


def test_a_baking_rollout_is_not_its_endpoints_newest_finished_one(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 200 * DAY)  # still serves most of the traffic
    ledger.record(make_plan(2), State.BAKING, "c2", NOW - DAY)  # a canary of the next version, baking
    ledger.history.purge(CUTOFF, budget=100)
    assert _rollouts(store) == ["credit-v1", "credit-v2"]


def test_rows_written_before_the_index_get_their_entries_in_bounded_runs(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    for n in range(1, 6):  # rows as a ledger without the index wrote them
        created = NOW - n * DAY
        rollout = Rollout(plan=make_plan(n), state=State.LIVE, created_at=created, updated_at=created)
        [(partition, key, data), *_] = entities_of(rollout)
        store.insert(partition, key, data)
    ledger.record(make_plan(9), State.LIVE, "c9", NOW)  # written with its entries
    ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)  # the lease row has no plan
    assert [r.plan.deployment for r in ledger.recent.page()[0]] == ["credit-v9"]
    assert ledger.history.backfill_index(NOW, budget=4) == 4
    assert ledger.history.backfill_index(NOW, budget=4) == 3  # resumed where the first run stopped
    assert ledger.history.backfill_index(NOW, budget=4) == 0  # done: one read from now on
    assert store.rows[(ACTIVE_INDEX, HISTORY_INDEXED)].data["Done"] is True
    expected = ["credit-v9", *(f"credit-v{n}" for n in range(1, 6))]
    assert [r.plan.deployment for r in ledger.recent.page()[0]] == expected
    assert _entries(store) == 6  # credit-v9 indexed again under the same key, not twice


def test_a_row_with_an_unreadable_plan_is_passed_by(ledger: RolloutLedger, store: FakeTableStore) -> None:
    store.insert(PK, "credit-v1", {"Plan": "{not json", "CreatedAt": NOW})
    assert ledger.history.backfill_index(NOW, budget=10) == 1
    assert _entries(store) == 0


def test_the_model_versions_seen_are_every_rollouts(ledger: RolloutLedger) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW)
    ledger.record(make_plan(2), State.PENDING, "c2", NOW)
    ledger.record(make_plan(7, "fraud", "fraud"), State.REJECTED, "f7", NOW)
    ledger.record(replace(make_plan(1), workspace_id=OTHER_WORKSPACE_ID), State.LIVE, "o1", NOW)
    ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert ledger.history.model_versions() == {
        (WORKSPACE_ID, "credit", "1"),
        (WORKSPACE_ID, "credit", "2"),
        (WORKSPACE_ID, "fraud", "7"),
        (OTHER_WORKSPACE_ID, "credit", "1"),
    }
