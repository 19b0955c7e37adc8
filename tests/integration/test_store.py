"""The table store and ledger against Azurite with the real azure-data-tables SDK: ETags, concurrency, recovery."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from app.azure.tables import TableStore
from app.platform.settings_reader import settings_from_env
from app.platform.tables import Conflict
from app.rollout.decide.model import State
from app.rollout.ledger.ledger import RolloutLedger
from devkit.stack import WORKSPACE_ID, DevStack
from tests.fakes import make_plan

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


@pytest.fixture
def store(stack: DevStack) -> TableStore:
    settings = settings_from_env(stack.env)
    return TableStore.from_settings(settings, "storetest", lambda: pytest.fail("no credential needed"))


def test_insert_twice_is_a_conflict(store: TableStore) -> None:
    store.insert("p", "k", {"n": 1})
    with pytest.raises(Conflict):
        store.insert("p", "k", {"n": 2})


def test_replace_with_a_stale_etag_is_a_conflict(store: TableStore) -> None:
    first = store.insert("p", "k", {"n": 1})
    store.replace(first, {"n": 2})
    with pytest.raises(Conflict):
        store.replace(first, {"n": 3})
    row = store.get("p", "k")
    assert row is not None
    assert row.data["n"] == 2


def test_concurrent_read_modify_writes_lose_no_update(store: TableStore) -> None:
    store.insert("p", "counter", {"n": 0})

    def increment() -> None:
        for _ in range(5):
            store.update("p", "counter", lambda row: {"n": int(row.data["n"]) + 1} if row else {"n": 1})

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = store.get("p", "counter")
    assert row is not None
    assert row.data["n"] == 20


def test_delete_removes_the_row_it_read_and_refuses_a_changed_one(store: TableStore) -> None:
    read = store.insert("p", "old", {"n": 1})
    store.delete(read)
    assert store.get("p", "old") is None
    stale = store.insert("p", "kept", {"n": 1})
    store.replace(stale, {"n": 2})  # another instance changed it after we read it
    with pytest.raises(Conflict):
        store.delete(stale)
    row = store.get("p", "kept")
    assert row is not None and row.data["n"] == 2
    store.delete(row)
    store.delete(row)  # already gone: nothing to do
    assert store.get("p", "kept") is None


def test_a_deleted_table_is_created_again(store: TableStore) -> None:
    store.insert("p", "k", {"n": 1})
    store.client.delete_table()
    assert list(store.query("PartitionKey eq 'p'")) == []
    store.insert("p", "k", {"n": 2})
    row = store.get("p", "k")
    assert row is not None
    assert row.data["n"] == 2


def test_a_duplicate_event_changes_only_the_event_ids(store: TableStore) -> None:
    ledger = RolloutLedger(store)
    first, created = ledger.record(make_plan(), State.PENDING, "e1", NOW)
    again, created_again = ledger.record(make_plan(), State.PENDING, "e2", NOW + dt.timedelta(minutes=5))
    assert (created, created_again) == (True, False)
    assert again.event_ids == ("e1", "e2")
    assert (again.state, again.created_at, again.updated_at, again.plan) == (
        first.state,
        first.created_at,
        first.updated_at,
        first.plan,
    )
    same, _ = ledger.record(make_plan(), State.PENDING, "e2", NOW)
    assert same.etag == again.etag  # a redelivery of the same event writes nothing


def test_saving_progress_keeps_an_event_id_appended_meanwhile(store: TableStore) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(), State.PENDING, "e1", NOW)
    ledger.record(make_plan(), State.PENDING, "e2", NOW)  # another instance, between our read and our write
    from dataclasses import replace

    saved = ledger.save(replace(rollout, state=State.DEPLOYING, reason="sent PUT"), NOW)
    assert saved.state is State.DEPLOYING
    assert saved.event_ids == ("e1", "e2")


def test_only_one_instance_holds_an_endpoint_lease(store: TableStore) -> None:
    ledger = RolloutLedger(store)
    lease = ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert lease is not None
    assert ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-b", NOW, 60) is None
    assert ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-b", NOW + dt.timedelta(seconds=61), 60)
    ledger.leases.release(lease, NOW)  # a stale release is logged, not applied
    assert ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-c", NOW + dt.timedelta(seconds=62), 60) is None


def test_a_save_over_a_state_another_instance_changed_is_refused(store: TableStore) -> None:
    from dataclasses import replace

    from app.rollout.ledger.ledger import StaleRollout

    ours = RolloutLedger(store)
    rollout, _ = ours.record(make_plan(), State.DEPLOYING, "e1", NOW)
    theirs = RolloutLedger(store)
    [fresh] = theirs.endpoint_rollouts(WORKSPACE_ID, "credit")
    theirs.save(replace(fresh, state=State.SUPERSEDED, reason="superseded: version 3"), NOW)
    with pytest.raises(StaleRollout):
        ours.save(replace(rollout, reason="sent PUT endpoint credit traffic credit-v1=100%"), NOW)
    # endpoint_rollouts reads the active rows only (the ledger's index partitions): the finished row by its key.
    [kept] = theirs.deployment_rollouts(WORKSPACE_ID, "credit", [rollout.plan.deployment])
    assert (kept.state, kept.reason) == (State.SUPERSEDED, "superseded: version 3")


def test_each_lease_acquisition_gets_a_new_token_and_a_taken_lease_fences_writes(store: TableStore) -> None:
    from app.rollout.ledger.leases import LeaseLost

    ledger = RolloutLedger(store)
    first = ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert first is not None
    renewed = ledger.leases.renew(first, NOW + dt.timedelta(seconds=30), 60)
    later = NOW + dt.timedelta(seconds=91)
    second = ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-b", later, 60)
    assert second is not None and second.token == first.token + 1
    with pytest.raises(LeaseLost):
        ledger.leases.renew(renewed, NOW + dt.timedelta(seconds=60), 60)  # A's write is not sent
    with pytest.raises(LeaseLost):
        ledger.leases.renew(second, later + dt.timedelta(seconds=61), 60)  # expired, even if nobody took it
