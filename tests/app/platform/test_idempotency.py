"""The idempotency utility over an in-memory table with real ETag rules: every transition and every race."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from app.platform.errors import EventValidationError, PermanentError
from app.platform.idempotency import (
    AlreadyDone,
    Claimed,
    Idempotency,
    InProgressElsewhere,
    PayloadMismatch,
    RecordKey,
    Status,
    payload_hash,
    record_key,
)
from app.platform.workspace import WorkspaceRef
from tests.fakes import WORKSPACE, FakeTableStore

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(seconds=120)
KEY = RecordKey("registration~ws", "run-1")
PAYLOAD = {"model": "credit", "path": "azureml://jobs/run-1/outputs/artifacts/paths/model"}
OTHER = {"model": "fraud", "path": "azureml://jobs/run-1/outputs/artifacts/paths/model"}


@pytest.fixture
def store() -> FakeTableStore:
    return FakeTableStore()


def _records(store: FakeTableStore) -> Idempotency:
    ids = itertools.count(1)
    return Idempotency(store, in_progress_for=TTL, new_claim_id=lambda: f"claim-{next(ids)}")


def _claimed(records: Idempotency, payload: dict[str, str] = PAYLOAD, now: dt.datetime = NOW) -> Claimed:
    outcome = records.claim(KEY, payload, now)
    assert isinstance(outcome, Claimed), outcome
    return outcome


def test_the_first_claim_holds_the_key_until_its_expiry_with_the_callers_fields(store: FakeTableStore) -> None:
    outcome = _records(store).claim(KEY, PAYLOAD, NOW, RunId="run-1")
    assert isinstance(outcome, Claimed)
    record = outcome.record
    assert (record.status, record.claimed_at, record.expires_at) == (Status.IN_PROGRESS, NOW, NOW + TTL)
    assert record.payload_hash == payload_hash(PAYLOAD) and record.claim_id == "claim-1"
    assert record.fields == {"RunId": "run-1"} and record.result == {}
    assert store.writes == [("insert", KEY.partition, KEY.row)]


def test_a_duplicate_after_completion_gets_the_first_result_and_writes_nothing(store: FakeTableStore) -> None:
    records = _records(store)
    done = records.complete(_claimed(records).record, {"model_version": "3"}, NOW)
    assert done.status is Status.COMPLETED and done.result == {"model_version": "3"}
    writes = list(store.writes)
    again = records.claim(KEY, dict(reversed(PAYLOAD.items())), NOW + dt.timedelta(days=30))
    assert isinstance(again, AlreadyDone) and again.result == {"model_version": "3"}
    assert store.writes == writes


def test_a_concurrent_claim_loses_while_the_holder_is_alive(store: FakeTableStore) -> None:
    records = _records(store)
    first = _claimed(records)
    second = records.claim(KEY, PAYLOAD, NOW + TTL - dt.timedelta(seconds=1))
    assert isinstance(second, InProgressElsewhere) and second.record.claim_id == first.record.claim_id
    assert len(store.writes) == 1


def test_an_expired_claim_is_taken_over_and_the_dead_holder_cannot_release_it(store: FakeTableStore) -> None:
    records = _records(store)
    dead = _claimed(records)
    later = NOW + TTL
    taker = _claimed(records, now=later)
    assert taker.record.claim_id == "claim-2" and taker.record.expires_at == later + TTL
    assert records.release(dead.record) is False
    current = records.get(KEY)
    assert current is not None and current.status is Status.IN_PROGRESS and current.claim_id == "claim-2"


def test_the_first_result_wins_when_a_taken_over_holder_completes_late(store: FakeTableStore) -> None:
    records = _records(store)
    slow = _claimed(records)
    taker = _claimed(records, now=NOW + TTL)
    records.complete(taker.record, {"model_version": "4"}, NOW + TTL)
    late = records.complete(slow.record, {"model_version": "5"}, NOW + TTL)
    assert late.result == {"model_version": "4"}


def test_release_lets_the_next_delivery_claim_at_once(store: FakeTableStore) -> None:
    records = _records(store)
    assert records.release(_claimed(records).record) is True
    assert records.get(KEY).status is Status.RELEASED  # type: ignore[union-attr]
    assert _claimed(records, now=NOW + dt.timedelta(seconds=1)).record.claim_id == "claim-2"


def test_a_released_key_may_be_claimed_for_another_payload(store: FakeTableStore) -> None:
    records = _records(store)
    records.release(_claimed(records).record)
    assert _claimed(records, OTHER).record.payload_hash == payload_hash(OTHER)


@pytest.mark.parametrize("completed", [False, True], ids=["in-progress", "completed"])
def test_the_same_key_with_another_payload_is_an_error_naming_the_key(store: FakeTableStore, completed: bool) -> None:
    records = _records(store)
    claimed = _claimed(records)
    if completed:
        records.complete(claimed.record, {"model_version": "1"}, NOW)
    with pytest.raises(PayloadMismatch) as mismatch:
        records.claim(KEY, OTHER, NOW + dt.timedelta(seconds=1))
    assert isinstance(mismatch.value, PermanentError)
    assert mismatch.value.key == KEY and str(KEY) in str(mismatch.value)  # the message names the key
    assert mismatch.value.record.status is (Status.COMPLETED if completed else Status.IN_PROGRESS)


def test_an_expired_claim_for_another_payload_is_taken_over(store: FakeTableStore) -> None:
    records = _records(store)
    _claimed(records)
    assert isinstance(records.claim(KEY, OTHER, NOW + TTL), Claimed)


def test_an_etag_conflict_on_claim_is_retried_and_decided_on_the_fresh_row(
    store: FakeTableStore, slept: list[float]
) -> None:
    records = _records(store)
    rival = Idempotency(store, in_progress_for=TTL, new_claim_id=lambda: "rival")

    def rival_claims_first(table: FakeTableStore, partition: str, key: str) -> None:
        assert isinstance(rival.claim(KEY, PAYLOAD, NOW), Claimed)

    store.before_write = rival_claims_first
    outcome = records.claim(KEY, PAYLOAD, NOW)
    assert isinstance(outcome, InProgressElsewhere) and outcome.record.claim_id == "rival"


def test_an_etag_conflict_on_complete_keeps_the_concurrent_change(store: FakeTableStore, slept: list[float]) -> None:
    records = _records(store)
    claimed = _claimed(records)

    def notified_meanwhile(table: FakeTableStore, partition: str, key: str) -> None:
        records.annotate(KEY, Notified=True)

    store.before_write = notified_meanwhile
    done = records.complete(claimed.record, {"model_version": "2"}, NOW)
    assert done.status is Status.COMPLETED and done.fields == {"Notified": True}
    assert [op for op, _, _ in store.writes] == ["insert", "replace", "replace"]


def test_release_after_completion_changes_nothing(store: FakeTableStore) -> None:
    records = _records(store)
    claimed = _claimed(records)
    records.complete(claimed.record, {"model_version": "2"}, NOW)
    assert records.release(claimed.record) is False
    assert records.get(KEY).status is Status.COMPLETED  # type: ignore[union-attr]


def test_complete_recreates_a_record_deleted_under_it(store: FakeTableStore) -> None:
    records = _records(store)
    claimed = _claimed(records)
    store.rows.clear()
    done = records.complete(claimed.record, {"job": "j"}, NOW)
    assert (done.status, done.payload_hash, done.result) == (Status.COMPLETED, payload_hash(PAYLOAD), {"job": "j"})


def test_annotate_writes_only_a_change_and_never_creates(store: FakeTableStore) -> None:
    records = _records(store)
    assert records.annotate(KEY, Notified=True) is None
    _claimed(records)
    assert records.annotate(KEY, Notified=True) is not None
    writes = len(store.writes)
    annotated = records.annotate(KEY, Notified=True)
    assert annotated is not None and annotated.fields == {"Notified": True}
    assert len(store.writes) == writes


def test_the_records_own_properties_are_reserved(store: FakeTableStore) -> None:
    with pytest.raises(ValueError, match="Status: reserved"):
        _records(store).claim(KEY, PAYLOAD, NOW, Status="mine")


def test_a_row_without_a_status_is_reported_not_guessed(store: FakeTableStore) -> None:
    store.insert(KEY.partition, KEY.row, {"State": "registered"})
    with pytest.raises(PermanentError, match=r"has no valid Status .*delete the row"):
        _records(store).claim(KEY, PAYLOAD, NOW)


def test_the_payload_hash_ignores_key_order_but_not_values() -> None:
    assert payload_hash({"a": 1, "b": [1, 2]}) == payload_hash({"b": [1, 2], "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": "1"})


def test_record_keys_are_per_kind_and_workspace_and_checked() -> None:
    other = WorkspaceRef.from_arm_id(WORKSPACE.arm_id.replace("mlw-devkit", "mlw-other"))
    key = record_key("registration", WORKSPACE, "run-1", field="data.runId", what="an Azure ML run id")
    assert key.partition.startswith("registration~mlw-devkit~") and key.row == "run-1"
    assert record_key("registration", other, "run-1", field="f", what="w").partition != key.partition
    assert record_key("retraining", WORKSPACE, "run-1", field="f", what="w").partition != key.partition
    with pytest.raises(EventValidationError) as bad:
        record_key("registration", WORKSPACE, "runs/1", field="data.runId", what="an Azure ML run id")
    assert bad.value.field == "data.runId" and "an Azure ML run id" in str(bad.value)
