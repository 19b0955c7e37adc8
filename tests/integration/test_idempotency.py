"""The idempotency utility against Azurite with the real azure-data-tables SDK: claims, races and ETag conflicts."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from app.azure.tables import TableStore
from app.platform.idempotency import (
    AlreadyDone,
    Claimed,
    Idempotency,
    InProgressElsewhere,
    PayloadMismatch,
    RecordKey,
    Status,
)
from app.platform.settings_reader import settings_from_env
from app.platform.tables import Row
from devkit.stack import DevStack

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
TTL = dt.timedelta(seconds=120)
PAYLOAD = {"model": "credit", "run": "train_1"}


class InterferingStore(TableStore):
    """The real store; ``interfere`` runs once, just before the next write reaches Azurite."""

    interfere: Any = None

    def _once(self) -> None:
        hook, self.interfere = self.interfere, None
        if hook is not None:
            hook()

    def insert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        self._once()
        return super().insert(partition, key, data)

    def replace(self, row: Row, data: Mapping[str, Any]) -> Row:
        self._once()
        return super().replace(row, data)


def _connect(stack: DevStack, kind: type[TableStore] = TableStore) -> Any:
    settings = settings_from_env(stack.env)
    return kind.from_settings(settings, "idempotencytest", lambda: pytest.fail("no credential needed"))


@pytest.fixture
def store(stack: DevStack) -> InterferingStore:
    store: InterferingStore = _connect(stack, InterferingStore)
    return store


def _key(name: str) -> RecordKey:
    return RecordKey("registration~test", name)


def _records(store: TableStore) -> Idempotency:
    return Idempotency(store, in_progress_for=TTL)


def test_first_claim_then_a_duplicate_gets_the_stored_result(store: InterferingStore) -> None:
    records = _records(store)
    first = records.claim(_key("first"), PAYLOAD, NOW, RunId="train_1")
    assert isinstance(first, Claimed)
    stored = store.get("registration~test", "first")
    assert stored is not None and stored.data["Status"] == "in_progress" and stored.data["RunId"] == "train_1"
    records.complete(first.record, {"model_version": "7"}, NOW)
    again = records.claim(_key("first"), PAYLOAD, NOW + dt.timedelta(hours=1))
    assert isinstance(again, AlreadyDone)
    assert again.result == {"model_version": "7"} and again.record.fields == {"RunId": "train_1"}


def test_of_concurrent_claims_exactly_one_wins(store: InterferingStore) -> None:
    records = _records(store)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        outcomes.append(records.claim(_key("race"), PAYLOAD, NOW))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["Claimed", *["InProgressElsewhere"] * 3]


def test_an_expired_claim_is_taken_over(store: InterferingStore) -> None:
    records = _records(store)
    dead = records.claim(_key("expired"), PAYLOAD, NOW)
    assert isinstance(records.claim(_key("expired"), PAYLOAD, NOW + TTL / 2), InProgressElsewhere)
    taker = records.claim(_key("expired"), PAYLOAD, NOW + TTL)
    assert isinstance(dead, Claimed) and isinstance(taker, Claimed)
    assert taker.record.claim_id != dead.record.claim_id
    assert taker.record.expires_at == NOW + 2 * TTL  # the datetime round-trips through the table, aware


def test_release_lets_the_next_delivery_claim(store: InterferingStore) -> None:
    records = _records(store)
    claimed = records.claim(_key("released"), PAYLOAD, NOW)
    assert isinstance(claimed, Claimed) and records.release(claimed.record)
    assert records.get(_key("released")).status is Status.RELEASED  # type: ignore[union-attr]
    assert isinstance(records.claim(_key("released"), PAYLOAD, NOW + dt.timedelta(seconds=1)), Claimed)


def test_the_same_key_with_another_payload_is_an_error(store: InterferingStore) -> None:
    records = _records(store)
    records.claim(_key("mismatch"), PAYLOAD, NOW)
    with pytest.raises(PayloadMismatch, match="registration~test/mismatch is in_progress for a different request"):
        records.claim(_key("mismatch"), {**PAYLOAD, "model": "fraud"}, NOW)


def test_an_etag_conflict_is_retried_on_the_fresh_row(store: InterferingStore, stack: DevStack) -> None:
    records = _records(store)
    rival = _records(_connect(stack))
    claimed = records.claim(_key("etag"), PAYLOAD, NOW)
    assert isinstance(claimed, Claimed)
    # Between our read and our write, another instance marks the record notified: our replace carries a
    # stale ETag, Azurite refuses it, and the retry completes on top of the other instance's change.
    store.interfere = lambda: rival.annotate(_key("etag"), Notified=True)
    done = records.complete(claimed.record, {"model_version": "2"}, NOW)
    assert done.status is Status.COMPLETED and done.fields == {"Notified": True}
    assert done.result == {"model_version": "2"}
