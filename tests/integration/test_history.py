"""Cost that does not grow with history, against Azurite: the active index, paged status, retention, flat ticks."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from app.azure.tables import TableStore
from app.platform.idempotency import Idempotency, RecordKey
from app.platform.settings_reader import settings_from_env
from app.platform.tables import Row
from app.rollout.decide.model import Rollout, State
from app.rollout.ledger.indexes import ACTIVE_INDEX, ACTIVE_INDEX_GRACE, RECENT_INDEX
from app.rollout.ledger.ledger import RolloutLedger, entities_of
from app.rollout.ledger.retention import purge_history
from app.rollout.ledger.rows import partition_key
from app.wiring import production_deps
from devkit import runner
from devkit.harness import OfflineApp, model_registered
from devkit.history import load_finished
from devkit.stack import WORKSPACE_ID, DevStack
from tests.fakes import make_plan

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
CREDIT = {"deploy": "true", "endpoint": "credit"}


class CrashingStore(TableStore):
    """The real store; ``before_insert`` / ``before_delete`` run once, just before that write reaches Azurite."""

    before_insert: Any = None
    before_delete: Any = None

    def insert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        hook, self.before_insert = self.before_insert, None
        if hook is not None:
            hook(partition, key)
        return super().insert(partition, key, data)

    def delete(self, row: Row) -> None:
        hook, self.before_delete = self.before_delete, None
        if hook is not None:
            hook(row)
        super().delete(row)


def _store(stack: DevStack, kind: type[TableStore] = TableStore) -> Any:
    settings = settings_from_env(stack.env)
    return kind.from_settings(settings, "rollouts", lambda: pytest.fail("no credential needed"))


def _entries(ledger: RolloutLedger, now: dt.datetime) -> list[tuple[str, str]]:
    return [(e.workspace_id, e.endpoint) for e in ledger.active.endpoints(now)]


# --- the index of active endpoints ------------------------------------------------------------------------


def test_the_index_entry_is_written_before_the_row_and_a_crash_between_only_over_reports(stack: DevStack) -> None:
    store = _store(stack, CrashingStore)
    ledger = RolloutLedger(store)
    seen_at_insert: list[list[tuple[str, str]]] = []

    def crash(partition: str, key: str) -> None:
        seen_at_insert.append(_entries(RolloutLedger(_store(stack)), NOW))
        raise KeyboardInterrupt("the instance died between the index entry and the rollout row")

    store.before_insert = crash
    with pytest.raises(KeyboardInterrupt):
        ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    assert seen_at_insert == [[(WORKSPACE_ID, "credit")]]  # the reconciler could already find it
    assert ledger.endpoint_rollouts(WORKSPACE_ID, "credit") == []
    assert ledger.recent.page()[0] == []  # the orphaned index entry is never listed
    [entry] = ledger.active.endpoints(NOW)
    assert not ledger.active.settle(entry, NOW + ACTIVE_INDEX_GRACE / 2)  # a recorder may still be between its writes
    assert ledger.active.settle(entry, NOW + ACTIVE_INDEX_GRACE)  # nothing came: the over-report is removed
    assert _entries(ledger, NOW) == []
    # The redelivery records it for real, and it is listed once.
    _, created = ledger.record(make_plan(1), State.PENDING, "e1", NOW + DAY)
    assert created
    assert _entries(ledger, NOW + DAY) == [(WORKSPACE_ID, "credit")]
    assert [r.plan.deployment for r in ledger.recent.page()[0]] == ["credit-v1"]


def test_a_removal_never_drops_an_entry_a_new_rollout_rewrote_meanwhile(stack: DevStack) -> None:
    store = _store(stack, CrashingStore)
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.LIVE, "e1", NOW - DAY)
    store.upsert(ACTIVE_INDEX, partition_key(WORKSPACE_ID, "credit"), {
        "Workspace": WORKSPACE_ID, "Endpoint": "credit", "Since": NOW - DAY,
    })  # fmt: skip
    [stale] = ledger.active.endpoints(NOW)

    def new_rollout_between_the_check_and_the_delete(row: Row) -> None:
        # The reconciler found no active rollout; now a delivery records one before the removal lands.
        other = RolloutLedger(_store(stack))
        other.record(make_plan(2), State.PENDING, "e2", NOW)

    store.before_delete = new_rollout_between_the_check_and_the_delete
    assert not ledger.active.settle(stale, NOW)  # the ETag changed: the entry stays
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]
    assert [r.plan.deployment for r in ledger.endpoint_rollouts(WORKSPACE_ID, "credit")] == ["credit-v2"]


def test_the_reconciler_reads_the_index_not_the_table_and_drops_idle_endpoints(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.run_until_settled()
    ledger = RolloutLedger(production_deps().table("rollouts"))
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]  # within the grace period
    TableStore.operations.clear()
    app.tick()
    assert "scan" not in TableStore.operations, TableStore.operations  # no table scan on a tick
    [entry] = ledger.active.endpoints(NOW)
    assert ledger.active.settle(entry, entry.since + ACTIVE_INDEX_GRACE)
    TableStore.operations.clear()
    app.tick()
    # An idle tick: one read of the index partition, and one of the notification outbox's (its retries).
    assert dict(TableStore.operations) == {"query": 2}


def test_an_upgraded_ledger_builds_the_index_once_from_its_active_rows(stack: DevStack) -> None:
    store = _store(stack)
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.record(make_plan(7, endpoint="fraud", model="fraud"), State.LIVE, "e2", NOW)
    store.client.delete_entity(ACTIVE_INDEX, partition_key(WORKSPACE_ID, "credit"))  # as written before the index
    TableStore.operations.clear()
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]
    assert TableStore.operations["scan"] == 1
    TableStore.operations.clear()
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]
    assert "scan" not in TableStore.operations


# --- a step reads only what it needs ------------------------------------------------------------------------


def _tick_cost(app: OfflineApp, history: int) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(Table transactions, rows read) of one tick advancing a rollout, and of an idle tick, after ``history``
    finished rollouts of other versions on the same endpoint."""
    app.stack.reset()
    ledger = RolloutLedger(production_deps().table("rollouts"))
    # As ``ledger.record`` writes them (rows and index entries), in batches: the history is the setting, not the test.
    load_finished(
        ledger.store,
        (
            Rollout(
                plan=make_plan(1000 + n),
                state=State.SUPERSEDED,
                created_at=NOW - 30 * DAY + n * dt.timedelta(seconds=1),
                updated_at=NOW - 30 * DAY + n * dt.timedelta(seconds=1),
                event_ids=(f"old-{n}",),
            )
            for n in range(history)
        ),
    )
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.run_until_settled()
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    app.stack.aml.wait_idle()
    TableStore.operations.clear()
    TableStore.rows_read.clear()
    app.tick()
    busy = dict(TableStore.operations), dict(TableStore.rows_read)
    app.run_until_settled()
    for entry in ledger.active.endpoints(NOW):
        ledger.active.settle(entry, entry.since + ACTIVE_INDEX_GRACE)
    TableStore.operations.clear()
    app.tick()
    return busy[0], busy[1], dict(TableStore.operations)


def test_the_reconcilers_table_cost_does_not_grow_with_history(app: OfflineApp) -> None:
    without = _tick_cost(app, 0)
    with_history = _tick_cost(app, 300)
    assert app.rollout("credit-v2")["state"] == "live"
    assert without == with_history
    assert sum(without[1].values()) < 10  # rows read by the busy tick: the active ones and the deployments shown


# --- the paged status API -----------------------------------------------------------------------------------


def _all_pages(params: Mapping[str, str]) -> tuple[list[str], list[int]]:
    names, sizes = [], []
    query = dict(params)
    while True:
        status, body = runner.get_status(query)
        assert status == 200, body
        assert body["count"] == len(body["rollouts"])
        names += [r["deployment"] for r in body["rollouts"]]
        sizes.append(body["count"])
        if body["continuation"] is None:
            return names, sizes
        query["continuation"] = body["continuation"]


def _seed_for_paging(ledger: RolloutLedger) -> None:
    base = NOW - 10 * DAY
    for n in range(1, 8):
        ledger.record(make_plan(n), State.LIVE if n % 2 else State.FAILED, f"c{n}", base + n * dt.timedelta(hours=1))
    for n in range(1, 5):  # fraud-v1 and credit-v1 share a creation time: the tie is broken by key
        created = base + (n * dt.timedelta(hours=2) - dt.timedelta(minutes=30) if n > 1 else dt.timedelta(hours=1))
        ledger.record(make_plan(n, "fraud", "fraud"), State.LIVE, f"f{n}", created)


def test_following_the_continuations_lists_every_rollout_once_newest_first(app: OfflineApp) -> None:
    ledger = RolloutLedger(production_deps().table("rollouts"))
    _seed_for_paging(ledger)
    expected = [
        "fraud-v4", "credit-v7", "credit-v6", "fraud-v3", "credit-v5", "credit-v4", "fraud-v2", "credit-v3",
        "credit-v2", "fraud-v1", "credit-v1",
    ]  # fmt: skip
    names, sizes = _all_pages({"limit": "3"})
    assert sorted(names) == sorted(expected) and len(names) == 11  # each once
    assert names[:9] == expected[:9]
    assert set(names[9:]) == {"fraud-v1", "credit-v1"}  # created in the same microsecond
    assert sizes == [3, 3, 3, 2]
    assert _all_pages({})[0] == names  # default limit 50: one page
    assert _all_pages({"endpoint": "FRAUD", "limit": "2"}) == (["fraud-v4", "fraud-v3", "fraud-v2", "fraud-v1"], [2, 2])
    assert _all_pages({"model": "credit", "state": "failed", "limit": "2"})[0] == [
        "credit-v6",
        "credit-v4",
        "credit-v2",
    ]
    assert _all_pages({"endpoint": "credit", "state": "rejected"})[0] == []


def test_a_rollout_recorded_between_pages_is_never_listed_twice(app: OfflineApp) -> None:
    ledger = RolloutLedger(production_deps().table("rollouts"))
    _seed_for_paging(ledger)
    status, first = runner.get_status({"limit": "4"})
    assert status == 200
    ledger.record(make_plan(8), State.PENDING, "c8", NOW)  # newer than every page already read
    rest, _ = _all_pages({"limit": "4", "continuation": first["continuation"]})
    names = [r["deployment"] for r in first["rollouts"]] + rest
    assert len(names) == len(set(names)) == 11
    assert "credit-v8" not in names
    assert _all_pages({"limit": "4"})[0][0] == "credit-v8"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": "0"}, ["limit", "'0'", "500"]),
        ({"limit": "501"}, ["limit", "'501'", "500"]),
        ({"limit": "ten"}, ["limit", "'ten'", "500"]),
        ({"continuation": "not-a-token"}, ["continuation"]),
        ({"continuation": "eyJ2IjoxfQ"}, ["continuation"]),
        ({"state": "bogus"}, ["state", "'bogus'"]),
        ({"page": "2"}, ["page", "endpoint, model, state, limit, continuation"]),
    ],
)
def test_bad_paging_parameters_are_400s_that_name_the_parameter(
    app: OfflineApp, params: dict[str, str], names: list[str]
) -> None:
    # The parameter, its value, and what it may be (the bound, or the parameters there are).
    status, body = runner.get_status(params)
    assert status == 400
    assert all(name in body["error"] for name in names), body


def test_a_continuation_only_works_with_the_filters_it_was_issued_for(app: OfflineApp) -> None:
    _seed_for_paging(RolloutLedger(production_deps().table("rollouts")))
    _, body = runner.get_status({"endpoint": "credit", "limit": "2"})
    status, answer = runner.get_status({"endpoint": "fraud", "limit": "2", "continuation": body["continuation"]})
    assert status == 400
    assert "continuation" in answer["error"] and "endpoint" in answer["error"]


# --- retention ----------------------------------------------------------------------------------------------


def test_retention_deletes_old_finished_rollouts_but_the_newest_per_endpoint_and_the_active(app: OfflineApp) -> None:
    store = production_deps().table("rollouts")
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 200 * DAY)
    ledger.record(make_plan(2), State.SUPERSEDED, "c2", NOW - 150 * DAY)
    ledger.record(make_plan(3), State.FAILED, "c3", NOW - 120 * DAY)  # credit's newest finished one: kept
    ledger.record(make_plan(4), State.PENDING, "c4", NOW - 100 * DAY)  # still active: kept
    touched, _ = ledger.record(make_plan(0), State.LIVE, "c0", NOW - 250 * DAY)
    ledger.save(touched, NOW - DAY)  # created long ago, updated yesterday: kept
    ledger.record(make_plan(1, "fraud", "fraud"), State.LIVE, "f1", NOW - 200 * DAY)
    ledger.record(make_plan(2, "fraud", "fraud"), State.LIVE, "f2", NOW - 5 * DAY)
    ledger.record(make_plan(1, "legacy", "legacy"), State.REJECTED, "l1", NOW - 300 * DAY)  # its only one: kept
    records = Idempotency(production_deps().table("idempotency"), in_progress_for=dt.timedelta(minutes=2))
    old_key, new_key = RecordKey("registration~ws", "run-old"), RecordKey("registration~ws", "run-new")
    done = records.claim(old_key, {"run": "old"}, NOW - 100 * DAY)
    records.complete(done.record, {"model": "credit:1"}, NOW - 100 * DAY)  # type: ignore[union-attr]
    records.claim(new_key, {"run": "new"}, NOW - DAY)

    run = purge_history(production_deps())

    kept = sorted(r["deployment"] for r in app.rollouts())
    assert kept == ["credit-v0", "credit-v3", "credit-v4", "fraud-v2", "legacy-v1"]
    assert {store.get(partition_key(WORKSPACE_ID, "credit"), f"credit-v{n}") is None for n in (1, 2)} == {True}
    index = list(store.query("PartitionKey eq @pk", pk=RECENT_INDEX))
    assert len(index) == 5  # the deleted rollouts' index entries went with them
    assert (records.get(old_key), records.get(new_key) is not None) == (None, True)
    assert (run.rollouts.deleted, run.rollouts.kept_newest) == (3, 2)
    assert run.idempotency_deleted == 1
    assert purge_history(production_deps()).rollouts.deleted == 0


def test_retention_work_per_run_is_bounded_and_resumes_on_the_next_run(app: OfflineApp) -> None:
    ledger = RolloutLedger(production_deps().table("rollouts"))
    for n in range(1, 8):
        ledger.record(make_plan(n), State.SUPERSEDED, f"c{n}", NOW - (100 + n) * DAY)
    cutoff = NOW - 90 * DAY
    first = ledger.history.purge(cutoff, budget=3)  # from the cutoff back: credit-v1 (the newest, kept), v2, v3
    assert (first.examined, first.deleted, first.kept_newest) == (3, 2, 1)
    assert len(app.rollouts()) == 5
    second = ledger.history.purge(cutoff, budget=10)
    assert (second.examined, second.deleted, second.kept_newest) == (5, 4, 1)
    assert [r["deployment"] for r in app.rollouts()] == ["credit-v1"]


def test_the_timer_function_runs_retention(app: OfflineApp) -> None:
    ledger = RolloutLedger(production_deps().table("rollouts"))
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 200 * DAY)
    ledger.record(make_plan(2), State.LIVE, "c2", NOW - 100 * DAY)
    runner.fire("purge_history")
    assert [r["deployment"] for r in app.rollouts()] == ["credit-v2"]


def test_rows_written_before_the_index_are_indexed_by_the_retention_runs(app: OfflineApp) -> None:
    store = production_deps().table("rollouts")
    ledger = RolloutLedger(store)
    for n in range(1, 6):  # rows as a ledger without the index wrote them: no index entries
        created = NOW - n * DAY
        rollout = Rollout(plan=make_plan(n), state=State.LIVE, created_at=created, updated_at=created)
        [(partition, key, data), *_] = entities_of(rollout)
        store.insert(partition, key, data)
    ledger.record(make_plan(9), State.LIVE, "c9", NOW)  # one written with its entries
    assert [r["deployment"] for r in app.rollouts()] == ["credit-v9"]
    assert ledger.history.backfill_index(NOW, budget=4) == 4
    assert ledger.history.backfill_index(NOW, budget=4) == 2  # resumed where the first run stopped
    assert ledger.history.backfill_index(NOW, budget=4) == 0  # done: one read from now on
    assert [r["deployment"] for r in app.rollouts()] == ["credit-v9", *(f"credit-v{n}" for n in range(1, 6))]


def test_ops_are_counted_per_kind(stack: DevStack) -> None:
    TableStore.operations.clear()
    store = _store(stack)
    store.upsert("p", "k", {"n": 1})
    list(store.query("PartitionKey eq @pk", pk="p"))
    list(store.query("n eq 1"))
    assert Counter(TableStore.operations) == Counter({"upsert": 1, "query": 1, "scan": 1})


# --- the indexes with cleanup as separate work (p2) and fenced traffic writes (p1) ------------------------------


def test_a_cleanup_on_a_finished_rollout_keeps_its_logs(app: OfflineApp) -> None:
    """The engine saves finished rows (the cleanup carrier); none of its saves may drop the container logs."""
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.run_until_settled()
    app.stack.aml.fail_deployments("credit-v2")
    app.stack.aml.seed_model("credit", 2, tags=CREDIT)
    app.deliver(model_registered("credit", 2))
    app.run_until_settled()
    app.stack.aml.wait_idle()
    assert "credit-v2" not in app.stack.aml.snapshot()["endpoints"]["credit"]["deployments"]  # cleaned up
    row = production_deps().table("rollouts").get(partition_key(WORKSPACE_ID, "credit"), "credit-v2")
    assert row is not None
    assert "DELETE deployment credit-v2" in row.data["Actions"]  # saved again by the cleanup, after the failure
    logs = row.data["Logs"]
    assert logs and logs == app.rollout("credit-v2")["logs"]
    app.tick()  # the next pass finds nothing more to delete and clears what was owed: one more save
    row = production_deps().table("rollouts").get(partition_key(WORKSPACE_ID, "credit"), "credit-v2")
    assert row is not None
    assert (row.data["Active"], row.data["Logs"]) == (False, logs)


def test_a_row_read_without_its_logs_keeps_them_and_is_indexed_when_it_owes_cleanup_again(stack: DevStack) -> None:
    from dataclasses import replace

    from app.rollout.decide.model import Cleanup

    store = _store(stack)
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW - DAY)
    ledger.save(replace(rollout, state=State.FAILED, reason="ended Failed", logs="OOMKilled at step 3"), NOW - DAY)
    [entry] = ledger.active.endpoints(NOW)
    assert ledger.active.settle(entry, NOW)  # finished, nothing owed: the endpoint left the index
    reader = RolloutLedger(store)  # a later pass: the row is one of the deployments AML shows
    [summary] = reader.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1"])
    assert summary.logs == ""  # read without them
    reader.save(replace(summary, cleanup=Cleanup(), reason="ended Failed; cleanup owed"), NOW)
    row = store.get(partition_key(WORKSPACE_ID, "credit"), "credit-v1")
    assert row is not None and row.data["Logs"] == "OOMKilled at step 3"
    assert row.data["Active"] is True
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]  # indexed before the row turned active
    [again] = ledger.active.endpoints(NOW)
    assert not ledger.active.settle(again, NOW + ACTIVE_INDEX_GRACE)  # cleanup owed keeps it listed


def test_a_save_of_a_row_read_without_logs_still_merges_a_duplicate_event(stack: DevStack) -> None:
    from dataclasses import replace

    store = _store(stack)
    ledger = RolloutLedger(store)
    rollout, _ = ledger.record(make_plan(1), State.PENDING, "e1", NOW)
    ledger.save(replace(rollout, state=State.CANARY, reason="canary at 10%", logs="warm-up log"), NOW)
    [summary] = ledger.deployment_rollouts(WORKSPACE_ID, "credit", ["credit-v1"])
    RolloutLedger(store).record(make_plan(1), State.PENDING, "e2", NOW)  # a late duplicate appends its id meanwhile
    saved = ledger.save(replace(summary, state=State.SUPERSEDED, reason="retired by credit-v2"), NOW)
    assert (saved.state, saved.event_ids, saved.logs) == (State.SUPERSEDED, ("e1", "e2"), "warm-up log")


def test_a_traffic_write_in_doubt_keeps_its_endpoint_in_the_index_with_no_rollout_active(stack: DevStack) -> None:
    from app.rollout.decide import intents as intent_rules

    store = _store(stack)
    ledger = RolloutLedger(store)
    ledger.record(make_plan(1), State.LIVE, "e1", NOW - DAY)  # finished: nothing active, no entry
    assert _entries(ledger, NOW) == []
    lease = ledger.leases.acquire(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert lease is not None
    intent = intent_rules.new_intent(lease.record.intents, lease.token, "", {"credit-v1": 100}, {}, NOW)
    lease = ledger.leases.renew(lease, NOW, 60, intent)  # recorded, then sent: no answer yet
    assert _entries(ledger, NOW) == [(WORKSPACE_ID, "credit")]  # listed before the lease row turned active
    [entry] = ledger.active.endpoints(NOW)
    later = NOW + ACTIVE_INDEX_GRACE
    assert not ledger.active.settle(entry, later)  # the reconciler must keep observing: the write is in doubt
    settled = ledger.leases.settle_intent(lease, intent.seq, intent_rules.ACCEPTED, NOW)
    assert settled is not None
    ledger.leases.release(settled, NOW)
    [entry] = ledger.active.endpoints(later)
    assert ledger.active.settle(entry, later)  # answered: nothing in doubt, nothing active, the entry goes


def test_retention_deletes_the_outboxs_sent_notification_rows_once_old(app: OfflineApp) -> None:
    from app.notify.notifier import Notification
    from app.notify.outbox import OUTBOX_PARTITION, OutboxNotifier
    from app.platform.workspace import WorkspaceRef

    table = production_deps().table("idempotency")

    class Delivered:
        name = "test"

        def publish(self, notification: Notification) -> None:
            pass

    def sent_at(when: dt.datetime, subject: str) -> None:
        sink = Delivered()
        notification = Notification(
            type="AmlEvents.Run.Completed",
            subject=subject,
            summary="live",
            workspace=WorkspaceRef.from_arm_id(WORKSPACE_ID),
            source_event_id=f"evt-{subject}",
        )
        OutboxNotifier([sink], lambda: table, clock=lambda: when).send(notification)

    sent_at(NOW - 100 * DAY, "old")
    sent_at(NOW - DAY, "new")
    sent = [r for r in table.query("PartitionKey ge @lo and PartitionKey lt @hi", lo="notified~", hi="notified~~")]
    assert len(sent) == 2 and not table.partition(OUTBOX_PARTITION)

    run = purge_history(production_deps())

    left = [r for r in table.query("PartitionKey ge @lo and PartitionKey lt @hi", lo="notified~", hi="notified~~")]
    assert [r.key for r in left] == [r.key for r in sent if r.data["SentAt"] > NOW - 90 * DAY]
    assert run.idempotency_deleted == 1
