"""The rollout ledger on an in-memory table: rows, duplicates, ETag fencing, leases, indexes, paging and retention."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from app.platform.tables import Row
from app.rollout.decide.intents import ACCEPTED, Intent, new_intent
from app.rollout.decide.model import Cleanup, State
from app.rollout.ledger.indexes import ACTIVE_INDEX, RECENT_INDEX
from app.rollout.ledger.leases import LeaseLost
from app.rollout.ledger.ledger import Lease, RolloutLedger, StaleRollout
from app.rollout.ledger.rows import LEASE_KEY, partition_key
from tests.fakes import WORKSPACE_ID, FakeClock, FakeTableStore, make_plan

pytestmark = pytest.mark.fast

PK = partition_key(WORKSPACE_ID, "credit")


@pytest.fixture
def store() -> FakeTableStore:
    return FakeTableStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_new_rollout_is_recorded_with_its_index_entries_first(store: FakeTableStore, clock: FakeClock) -> None:
    rollout, created = RolloutLedger(store).record(make_plan(1), State.PENDING, "evt-1", clock())

    assert created and rollout.state is State.PENDING and rollout.event_ids == ("evt-1",)
    partitions = [partition for _, partition, _ in store.writes]
    assert partitions.index(PK) > max(partitions.index(ACTIVE_INDEX), partitions.index(RECENT_INDEX))
    assert [e.endpoint for e in RolloutLedger(store).active.endpoints(clock())] == ["credit"]


def test_a_duplicate_event_only_adds_its_id_and_the_same_id_changes_nothing(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    again, created = ledger.record(make_plan(1), State.PENDING, "evt-2", clock())
    writes = len(store.writes)
    same, created_again = ledger.record(make_plan(1), State.PENDING, "evt-2", clock())

    assert not created and not created_again
    assert again.event_ids == ("evt-1", "evt-2") and same == again
    assert len(store.writes) == writes


def test_a_save_over_a_row_another_instance_moved_on_is_refused_and_writes_nothing(
    store: FakeTableStore, clock: FakeClock
) -> None:
    mine, _ = RolloutLedger(store).record(make_plan(1), State.PENDING, "evt-1", clock())
    theirs = RolloutLedger(store)
    [fresh] = theirs.endpoint_rollouts(WORKSPACE_ID, "credit")
    theirs.save(dataclasses.replace(fresh, state=State.DEPLOYING, reason="theirs"), clock())
    ledger = RolloutLedger(store)
    ledger.endpoint_rollouts(WORKSPACE_ID, "credit")  # not this read: ``mine`` is from before their save

    with pytest.raises(StaleRollout):
        RolloutLedger(store).save(dataclasses.replace(mine, reason="mine"), clock())
    [kept] = ledger.endpoint_rollouts(WORKSPACE_ID, "credit")
    assert (kept.state, kept.reason) == (State.DEPLOYING, "theirs")


def test_a_save_keeps_an_event_id_a_duplicate_delivery_appended_meanwhile(
    store: FakeTableStore, clock: FakeClock, pauses: list[int]
) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    RolloutLedger(store).record(make_plan(1), State.PENDING, "evt-2", clock())  # lands between read and save

    saved = ledger.save(dataclasses.replace(rollout, state=State.DEPLOYING), clock())
    assert saved.state is State.DEPLOYING and saved.event_ids == ("evt-1", "evt-2")
    assert len(pauses) == 1  # one short jittered pause before the merged write


def test_one_instance_holds_an_endpoint_lease_until_it_expires_and_each_taking_gets_a_new_token(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    first = ledger.acquire_lease(WORKSPACE_ID, "credit", "a", clock(), 60)
    assert first is not None
    assert ledger.acquire_lease(WORKSPACE_ID, "credit", "b", clock.advance(59), 60) is None

    second = ledger.acquire_lease(WORKSPACE_ID, "credit", "b", clock.advance(2), 60)
    assert second is not None and second.token == first.token + 1
    with pytest.raises(LeaseLost):  # the first holder's write is fenced off
        ledger.renew_lease(first, clock(), 60)


def test_a_lease_past_its_time_cannot_be_renewed(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    lease = ledger.acquire_lease(WORKSPACE_ID, "credit", "a", clock(), 60)
    assert lease is not None
    with pytest.raises(LeaseLost):
        ledger.renew_lease(lease, clock.advance(61), 60)


def _traffic_write_in_doubt(ledger: RolloutLedger, clock: FakeClock) -> tuple[Lease, Intent]:
    """Instance "a" holds the lease and has recorded a traffic write it is about to send (the fence)."""
    lease = ledger.acquire_lease(WORKSPACE_ID, "credit", "a", clock(), 60)
    assert lease is not None
    intent = new_intent(lease.record.intents, lease.token, "credit-v1", {"credit-v1": 100}, {}, clock())
    return ledger.renew_lease(lease, clock(), 60, intent), intent


def test_a_traffic_write_in_doubt_keeps_its_endpoint_active_until_its_answer_is_recorded(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    lease, intent = _traffic_write_in_doubt(ledger, clock)
    assert store.rows[(PK, LEASE_KEY)].data["Active"] is True
    assert [e.endpoint for e in ledger.active.endpoints(clock())] == ["credit"]

    settled = ledger.settle_intent(lease, intent.seq, ACCEPTED, clock())
    assert settled is not None
    ledger.release_lease(settled, clock())
    assert store.rows[(PK, LEASE_KEY)].data["Active"] is False


def test_an_answer_recorded_after_the_lease_was_lost_still_lands_on_the_endpoint_row(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    lease, intent = _traffic_write_in_doubt(ledger, clock)
    assert ledger.acquire_lease(WORKSPACE_ID, "credit", "b", clock.advance(61), 60) is not None

    assert ledger.settle_intent(lease, intent.seq, ACCEPTED, clock()) is None
    [recorded] = ledger.leases.read(WORKSPACE_ID, "credit").intents
    assert recorded.status == ACCEPTED


def test_an_idle_endpoint_leaves_the_active_index_only_after_the_grace(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    ledger.save(dataclasses.replace(rollout, state=State.LIVE), clock())
    [entry] = ledger.active.endpoints(clock())
    assert not ledger.active.settle(entry, clock.advance(minutes=5))

    assert ledger.active.settle(entry, clock.advance(minutes=6))
    assert ledger.active.endpoints(clock()) == []


def test_an_entry_rewritten_by_a_new_rollout_is_not_removed(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    ledger.save(dataclasses.replace(rollout, state=State.LIVE), clock())
    [stale] = ledger.active.endpoints(clock.advance(minutes=11))
    ledger.record(make_plan(2), State.PENDING, "evt-2", clock())  # rewrites the entry

    assert not ledger.active.settle(stale, clock())
    assert [e.endpoint for e in ledger.active.endpoints(clock())] == ["credit"]


def test_cleanup_owed_again_puts_the_endpoint_back_in_the_active_index(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    live = ledger.save(dataclasses.replace(rollout, state=State.LIVE), clock())
    [entry] = ledger.active.endpoints(clock.advance(minutes=11))
    assert ledger.active.settle(entry, clock())

    ledger.save(dataclasses.replace(live, cleanup=Cleanup()), clock())
    assert [e.endpoint for e in ledger.active.endpoints(clock())] == ["credit"]


def test_pages_of_recent_rollouts_list_each_once_newest_first(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    for version in range(1, 8):
        ledger.record(make_plan(version, endpoint=f"ep{version % 3}"), State.PENDING, f"evt-{version}", clock())
        clock.advance(1)
    seen, token = [], None
    while True:
        page, token = ledger.recent.page(limit=3, resume=token)
        assert len(page) <= 3
        seen += [r.plan.model_version for r in page]
        if token is None:
            break

    assert seen == ["7", "6", "5", "4", "3", "2", "1"]
    one, _ = ledger.recent.page(endpoint="ep1")
    assert [r.plan.model_version for r in one] == ["7", "4", "1"]


def test_an_operator_finds_a_rollout_by_endpoint_and_deployment(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    ledger.record(make_plan(1, endpoint="other"), State.PENDING, "evt-2", clock())

    [found] = ledger.recent.find("credit", "credit-v1")
    assert found.plan.endpoint == "credit"
    assert ledger.recent.find("credit", "credit-v9") == []


def test_an_index_entry_whose_row_never_came_is_skipped(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    del store.rows[(PK, "credit-v1")]  # the recorder crashed between its index entries and the row

    assert ledger.recent.page() == ([], None)
    assert ledger.recent.find("credit", "credit-v1") == []


def test_retention_deletes_old_finished_rollouts_but_keeps_the_newest_per_endpoint_and_the_active(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    for version in (1, 2, 3):
        rollout, _ = ledger.record(make_plan(version), State.PENDING, f"evt-{version}", clock())
        ledger.save(dataclasses.replace(rollout, state=State.SUPERSEDED if version < 3 else State.LIVE), clock())
        clock.advance(60)
    ledger.record(make_plan(4), State.PENDING, "evt-4", clock())

    purged = ledger.history.purge(clock.advance(dt.timedelta(days=100).total_seconds()), budget=100)
    assert (purged.deleted, purged.kept_newest) == (2, 1)
    assert sorted(r.plan.model_version for r in ledger.recent.page()[0]) == ["3", "4"]


def test_a_row_read_without_its_logs_keeps_them_when_it_is_saved(store: FakeTableStore, clock: FakeClock) -> None:
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    ledger.save(dataclasses.replace(rollout, state=State.FAILED, logs="ERROR | container crashed"), clock())
    reader = RolloutLedger(store)  # a pass reads and saves through one ledger
    [summary] = reader.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1"])
    assert summary.logs == ""

    reader.save(dataclasses.replace(summary, cleanup=Cleanup()), clock())
    [found] = RolloutLedger(store).recent.find("credit", "credit-v1")
    assert found.logs == "ERROR | container crashed" and found.cleanup == Cleanup()


def test_an_unreadable_row_is_reported_and_set_inactive_not_read_every_tick(
    store: FakeTableStore, clock: FakeClock
) -> None:
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.PENDING, "evt-1", clock())
    row = store.rows[(PK, "credit-v1")]
    store.rows[(PK, "credit-v1")] = Row(PK, "credit-v1", {**row.data, "Plan": "{not json"}, row.etag)

    assert ledger.endpoint_rollouts(WORKSPACE_ID, "credit") == []
    assert store.rows[(PK, "credit-v1")].data["Active"] is False
    assert ledger.endpoint_rollouts(WORKSPACE_ID, "credit") == []
