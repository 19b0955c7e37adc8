"""Recording and saving rollout rows with ETags: duplicates, concurrent writers, rows read without their logs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from app.platform.errors import RetryableError
from app.platform.tables import Conflict
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.model import Cleanup, Progress, Rollout, State
from app.rollout.ledger.indexes import ACTIVE_INDEX, RECENT_INDEX, recent_partition
from app.rollout.ledger.ledger import RolloutLedger, StaleRollout, ledger_of
from app.rollout.ledger.rows import LEASE_KEY, MAX_EVENT_IDS, encode_rollout, partition_key
from tests.fakes import WORKSPACE_ID, FakeTableStore, make_deps, make_plan, make_settings

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
PK = partition_key(WORKSPACE_ID, "credit")


def _stored(store: FakeTableStore, deployment: str = "credit-v1") -> Rollout:
    return RolloutLedger(store).deployment_rollouts(WORKSPACE_ID, "credit", [deployment])[0]


def _index_keys(store: FakeTableStore, partition: str) -> list[str]:
    return [key for (p, key) in store.rows if p == partition]


# --- record -------------------------------------------------------------------------------------------------


def test_a_new_rollout_is_indexed_before_its_row_is_written(ledger: RolloutLedger, store: FakeTableStore) -> None:
    rollout, created = ledger.record(make_plan(1), State.PENDING, "e1", NOW, reason="accepted")
    assert created
    assert (rollout.state, rollout.event_ids, rollout.reason, rollout.created_at) == (
        State.PENDING,
        ("e1",),
        "accepted",
        NOW,
    )
    assert rollout.etag == store.rows[(PK, "credit-v1")].etag
    assert [(op, partition) for op, partition, _ in store.writes] == [
        ("upsert", ACTIVE_INDEX),
        ("upsert", RECENT_INDEX),
        ("upsert", recent_partition("credit")),
        ("insert", PK),
    ]


def test_a_finished_rollout_is_recorded_without_an_active_index_entry(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.REJECTED, "e1", NOW)
    assert _index_keys(store, ACTIVE_INDEX) == []
    assert len(_index_keys(store, RECENT_INDEX)) == 1


def test_a_duplicate_event_only_appends_its_id_and_a_redelivery_writes_nothing(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    first, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    again, created = ledger.record(make_plan(1), State.LIVE, "e2", NOW + MINUTE, reason="ignored")
    assert not created
    assert again.event_ids == ("e1", "e2")
    assert replace(again, event_ids=()) == replace(first, event_ids=())  # state, times, reason as first recorded
    assert again.etag != first.etag
    writes = len(store.writes)
    same, created = ledger.record(make_plan(1), State.PENDING, "e2", NOW + 2 * MINUTE)
    assert (same.etag, created, len(store.writes)) == (again.etag, False, writes)


def test_only_the_newest_event_ids_are_kept(ledger: RolloutLedger) -> None:
    for n in range(MAX_EVENT_IDS + 5):
        rollout, _ = ledger.record(make_plan(1), State.PENDING, f"e{n}", NOW)
    assert len(rollout.event_ids) == MAX_EVENT_IDS
    assert rollout.event_ids[-1] == f"e{MAX_EVENT_IDS + 4}"


def test_a_delivery_that_loses_the_race_to_record_drops_its_index_entries(
    ledger: RolloutLedger, store: FakeTableStore, pauses: list[int]
) -> None:
    other = RolloutLedger(store)
    store.before_writing(PK, "credit-v1", lambda: other.record(make_plan(1), State.PENDING, "e1", NOW - MINUTE))
    rollout, created = ledger.record(make_plan(1), State.PENDING, "e2", NOW)
    assert not created
    assert (rollout.event_ids, rollout.created_at) == (("e1", "e2"), NOW - MINUTE)
    # Only the winner's entries are left, pointing at the row it created.
    assert len(_index_keys(store, RECENT_INDEX)) == len(_index_keys(store, recent_partition("credit"))) == 1
    assert [r.created_at for r in ledger.recent.page()[0]] == [NOW - MINUTE]
    assert pauses == []  # a lost insert is decided again at once


def test_a_row_that_keeps_changing_is_a_retryable_error(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(1), State.PENDING, "e0", NOW)
    other = RolloutLedger(store)
    changes = iter(range(100))

    def another_event() -> None:
        other.record(make_plan(1), State.PENDING, f"other-{next(changes)}", NOW)
        store.before_writing(PK, "credit-v1", another_event)  # and again, before every write of ours

    store.before_writing(PK, "credit-v1", another_event)
    with pytest.raises(RetryableError):
        ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    assert "e1" not in _stored(store).event_ids


# --- save ---------------------------------------------------------------------------------------------------


def test_a_save_writes_the_progress_and_the_time_and_returns_the_new_etag(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    saved = ledger.save(replace(rollout, state=State.DEPLOYING, reason="sent PUT"), NOW + MINUTE)
    assert (saved.state, saved.reason, saved.updated_at, saved.created_at) == (
        State.DEPLOYING,
        "sent PUT",
        NOW + MINUTE,
        NOW,
    )
    assert saved.etag == store.rows[(PK, "credit-v1")].etag != rollout.etag
    assert _stored(store) == replace(saved, logs="")


def test_a_save_keeps_an_event_id_appended_meanwhile(
    ledger: RolloutLedger, store: FakeTableStore, pauses: list[int]
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    RolloutLedger(store).record(make_plan(1), State.PENDING, "e2", NOW)  # another instance's duplicate
    saved = ledger.save(replace(rollout, state=State.DEPLOYING, reason="sent PUT"), NOW)
    assert (saved.state, saved.event_ids) == (State.DEPLOYING, ("e1", "e2"))
    assert _stored(store).event_ids == ("e1", "e2")
    assert pauses == [0]


def test_a_save_over_a_rollout_another_instance_moved_on_is_stale_and_writes_nothing(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.DEPLOYING, "e1", NOW)
    theirs = RolloutLedger(store)
    [fresh] = theirs.endpoint_rollouts(WORKSPACE_ID, "credit")
    theirs.save(replace(fresh, state=State.SUPERSEDED, reason="superseded by credit-v2"), NOW)
    writes = len(store.writes)
    with pytest.raises(StaleRollout) as caught:
        ledger.save(replace(rollout, reason="sent PUT"), NOW + MINUTE)
    assert isinstance(caught.value, Conflict)
    assert len(store.writes) == writes
    assert (_stored(store).state, _stored(store).reason) == (State.SUPERSEDED, "superseded by credit-v2")


def test_a_save_of_a_row_this_ledger_never_read_refuses_any_concurrent_change(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = RolloutLedger(store).record(make_plan(1), State.PENDING, "e1", NOW)
    RolloutLedger(store).record(make_plan(1), State.PENDING, "e2", NOW)  # only an event id, but unknown to us
    with pytest.raises(StaleRollout):
        ledger.save(replace(rollout, state=State.DEPLOYING), NOW)


def test_a_save_of_a_deleted_row_is_a_conflict(ledger: RolloutLedger, store: FakeTableStore) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    del store.rows[(PK, "credit-v1")]
    with pytest.raises(Conflict):
        ledger.save(replace(rollout, state=State.DEPLOYING), NOW)
    assert (PK, "credit-v1") not in store.rows


def test_a_row_read_without_its_logs_gets_them_back_before_it_is_written(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.save(replace(rollout, state=State.FAILED, logs="OOMKilled at step 3"), NOW)
    reader = RolloutLedger(store)
    [summary] = reader.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1", "credit-v9"])
    assert summary.logs == ""  # read without them; credit-v9 has no row
    saved = reader.save(replace(summary, reason="retired"), NOW + MINUTE)
    assert (saved.logs, store.rows[(PK, "credit-v1")].data["Logs"]) == ("OOMKilled at step 3",) * 2


def test_a_summary_save_merges_a_duplicate_event_and_keeps_the_logs(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.save(replace(rollout, state=State.CANARY, logs="warm-up log"), NOW)
    [summary] = ledger.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1"])
    RolloutLedger(store).record(make_plan(1), State.PENDING, "e2", NOW)
    saved = ledger.save(replace(summary, state=State.SUPERSEDED), NOW)
    assert (saved.state, saved.event_ids, saved.logs) == (State.SUPERSEDED, ("e1", "e2"), "warm-up log")


def test_a_row_turning_active_again_is_indexed_before_it_is_written(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1), State.LIVE, "e1", NOW)
    assert _index_keys(store, ACTIVE_INDEX) == []
    del store.writes[:]
    owing = ledger.save(replace(rollout, cleanup=Cleanup()), NOW)
    assert [(op, partition) for op, partition, _ in store.writes] == [("upsert", ACTIVE_INDEX), ("replace", PK)]
    del store.writes[:]
    saved = ledger.save(replace(owing, reason="cleanup: deleting credit-v0"), NOW)  # active already
    assert saved.active and [op for op, _, _ in store.writes] == ["replace"]


def test_a_finished_rollout_saved_from_its_summary_keeps_its_progress(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    rollout, _ = ledger.record(make_plan(1, traffic=10), State.BAKING, "c1", NOW)
    evidence = Progress(step=0, gate={"verdict": "promote", "window": "PT5M"})
    ledger.save(replace(rollout, state=State.CANARY, progress=evidence), NOW)
    [summary] = ledger.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1"])
    saved = ledger.save(replace(summary, state=State.SUPERSEDED, reason="retired by credit-v2"), NOW)
    assert saved.progress == evidence


# --- reading what a step decides from -----------------------------------------------------------------------


def test_the_endpoints_rollouts_are_its_active_rows_oldest_first(ledger: RolloutLedger, store: FakeTableStore) -> None:
    ledger.record(make_plan(2), State.PENDING, "e2", NOW + MINUTE)
    ledger.record(make_plan(1), State.DEPLOYING, "e1", NOW)
    ledger.record(make_plan(0), State.LIVE, "e0", NOW - MINUTE)  # finished, nothing owed
    ledger.record(make_plan(5, endpoint="fraud", model="fraud"), State.PENDING, "f5", NOW)
    lease = ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert lease is not None
    intent = intent_rules.new_intent((), lease.token, "credit-v1", {"credit-v1": 100}, {}, NOW)
    ledger.leases.renew(lease, NOW, 60, intent)  # a traffic write in doubt: the lease row is active too
    assert store.rows[(PK, LEASE_KEY)].data["Active"] is True
    rollouts = ledger.endpoint_rollouts(WORKSPACE_ID, "credit")
    assert [r.plan.deployment for r in rollouts] == ["credit-v1", "credit-v2"]
    assert all(r.logs == "" and r.etag for r in rollouts)


def test_an_unreadable_active_row_is_set_aside_and_the_others_still_read(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    broken = encode_rollout(Rollout(plan=make_plan(2), state=State.PENDING, created_at=NOW, updated_at=NOW))
    store.insert(PK, "credit-v2", {**broken, "State": "paused"})
    assert [r.plan.deployment for r in ledger.endpoint_rollouts(WORKSPACE_ID, "credit")] == ["credit-v1"]
    aside = store.rows[(PK, "credit-v2")].data
    assert aside["Active"] is False and aside["State"] == "paused" and aside["DecodeError"]
    assert len(ledger.endpoint_rollouts(WORKSPACE_ID, "credit")) == 1  # not read again
    assert ledger.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v2"]) == []


def test_the_ledger_of_the_deps_is_the_rollout_table() -> None:
    tables: dict[str, FakeTableStore] = {}
    deps = make_deps(
        settings=make_settings(rollout_table="ledgertest"), table=lambda name: tables.setdefault(name, FakeTableStore())
    )
    ledger = ledger_of(deps)
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    assert list(tables) == ["ledgertest"]
    assert (PK, "credit-v1") in tables["ledgertest"].rows
