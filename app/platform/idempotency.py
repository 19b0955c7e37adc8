"""Effects that must happen once: a record per key, claimed in progress (with an expiry), then completed or released.

The shape follows the idempotency utility of Powertools for AWS Lambda: the record carries a status, an
in-progress expiry (a crashed holder blocks the key only until then), the effect's result (a duplicate gets
the first result back) and a hash of the payload (the same key with a different payload is an error, not a
silent success). Every write is conditional on the row's ETag through ``Table.update``, which re-reads
and decides again on a conflict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.platform.clock import as_utc
from app.platform.errors import PermanentError
from app.platform.tables import Row, Table, checked_key, workspace_scope
from app.platform.workspace import WorkspaceRef


class Status(StrEnum):
    """Where a record is."""

    IN_PROGRESS = "in_progress"  # a delivery holds the key until the record's expiry
    COMPLETED = "completed"  # the effect happened; its result is stored
    RELEASED = "released"  # the holder failed for good and let go: the next delivery may claim the key


#: How long a handler's claim keeps other deliveries of the same key waiting before one may take over (a
#: crashed holder blocks the key only this long). Used by registration, breach and retraining handlers alike.
CLAIM_FOR = dt.timedelta(seconds=120)

#: The row properties this module owns; a caller's own fields (e.g. ``Notified``) must use other names.
RESERVED = frozenset({"Status", "PayloadHash", "ClaimId", "ClaimedAt", "ExpiresAt", "Result", "CompletedAt"})


@dataclass(frozen=True)
class RecordKey:
    """Where a record lives in the table."""

    partition: str
    row: str

    def __str__(self) -> str:
        return f"{self.partition}/{self.row}"


def record_key(kind: str, workspace: WorkspaceRef, name: str, *, field: str, what: str) -> RecordKey:
    """The key of ``kind``'s record for ``name`` in ``workspace``: partition ``{kind}~{workspace scope}``, row ``name``.

    ``name`` comes from an event, so it is checked as a table key; ``EventValidationError`` names ``field``.
    """
    return RecordKey(f"{kind}~{workspace_scope(workspace)}", checked_key(name, field, what))


def payload_hash(payload: Mapping[str, Any]) -> str:
    """A stable digest of ``payload`` (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    """One key's record as stored."""

    key: RecordKey
    status: Status
    payload_hash: str
    claim_id: str
    claimed_at: dt.datetime
    expires_at: dt.datetime  # the in-progress claim's end; after it, another delivery may take over
    result: Mapping[str, Any]  # the effect's result once completed, else empty
    fields: Mapping[str, Any]  # the caller's own properties on the row

    def expired(self, now: dt.datetime) -> bool:
        """An in-progress claim whose holder is presumed dead."""
        return self.status is Status.IN_PROGRESS and now >= self.expires_at


@dataclass(frozen=True)
class Claimed:
    """This delivery holds the key: do the effect, then ``complete`` (or ``release`` on a permanent failure)."""

    record: Record


@dataclass(frozen=True)
class InProgressElsewhere:
    """Another delivery holds the key and its claim has not expired."""

    record: Record


@dataclass(frozen=True)
class AlreadyDone:
    """The effect happened; ``result`` is what the first delivery stored."""

    record: Record

    @property
    def result(self) -> Mapping[str, Any]:
        return self.record.result


Outcome = Claimed | InProgressElsewhere | AlreadyDone


class PayloadMismatch(PermanentError):
    """The key was claimed or completed for a different payload. The message names the key."""

    def __init__(self, key: RecordKey, record: Record) -> None:
        super().__init__(
            f"idempotency record {key} is {record.status.value} for a different request "
            f"(payload hash {record.payload_hash[:12]}); the same key must always carry the same request"
        )
        self.key = key
        self.record = record


class Idempotency:
    """Records in one table, each claimed for at most ``in_progress_for`` at a time."""

    def __init__(
        self,
        store: Table,
        *,
        in_progress_for: dt.timedelta,
        new_claim_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.store = store
        self.in_progress_for = in_progress_for
        self._new_claim_id = new_claim_id

    def get(self, key: RecordKey) -> Record | None:
        row = self.store.get(key.partition, key.row)
        return _decode(row) if row else None

    def claim(self, key: RecordKey, payload: Mapping[str, Any], now: dt.datetime, **fields: Any) -> Outcome:
        """Claim ``key`` for ``payload``; ``fields`` are stored on the row with a new claim.

        A key that is free (no record, released, or an expired claim) is claimed. Raises ``PayloadMismatch``
        when a live claim or a completed record belongs to another payload.
        """
        _check_fields(fields)
        digest = payload_hash(payload)
        outcome: Outcome | None = None

        def change(row: Row | None) -> dict[str, Any] | None:
            nonlocal outcome
            current = _decode(row) if row else None
            if current is None or current.status is Status.RELEASED or current.expired(now):
                record = Record(
                    key=key,
                    status=Status.IN_PROGRESS,
                    payload_hash=digest,
                    claim_id=self._new_claim_id(),
                    claimed_at=now,
                    expires_at=now + self.in_progress_for,
                    result={},
                    fields=dict(fields),
                )
                outcome = Claimed(record)
                return _encode(record)
            if current.payload_hash != digest:
                raise PayloadMismatch(key, current)
            outcome = AlreadyDone(current) if current.status is Status.COMPLETED else InProgressElsewhere(current)
            return None

        row = self.store.update(key.partition, key.row, change)
        assert outcome is not None and row is not None
        if isinstance(outcome, Claimed):
            return Claimed(_decode(row))
        return outcome

    def complete(self, record: Record, result: Mapping[str, Any], now: dt.datetime, **fields: Any) -> Record:
        """Record that ``record``'s effect happened with ``result``. The first result stored wins.

        It completes even when this delivery's claim expired and was taken over: the effect did happen.
        """
        _check_fields(fields)

        def change(row: Row | None) -> dict[str, Any] | None:
            current = _decode(row) if row else record
            if current.status is Status.COMPLETED:
                return None
            data = _encode(current)
            data.update(fields)
            data.update(Status=Status.COMPLETED.value, Result=json.dumps(dict(result), default=str), CompletedAt=now)
            return data

        row = self.store.update(record.key.partition, record.key.row, change)
        assert row is not None
        return _decode(row)

    def release(self, record: Record) -> bool:
        """Let go of this delivery's claim after a permanent failure, so the next delivery may claim at once.

        A claim that was taken over meanwhile (or completed) is left alone. Returns whether it was released.
        """
        released = False

        def change(row: Row | None) -> dict[str, Any] | None:
            nonlocal released
            current = _decode(row) if row else None
            released = (
                current is not None and current.status is Status.IN_PROGRESS and current.claim_id == record.claim_id
            )
            return {**row.data, "Status": Status.RELEASED.value} if released and row else None

        self.store.update(record.key.partition, record.key.row, change)
        return released

    def annotate(self, key: RecordKey, **fields: Any) -> Record | None:
        """Set the caller's own ``fields`` on an existing record (no write if they already hold these values)."""
        _check_fields(fields)

        def change(row: Row | None) -> dict[str, Any] | None:
            if row is None or all(row.data.get(name) == value for name, value in fields.items()):
                return None
            return {**row.data, **fields}

        row = self.store.update(key.partition, key.row, change)
        return _decode(row) if row else None


def _check_fields(fields: Mapping[str, Any]) -> None:
    clash = sorted(RESERVED & set(fields))
    if clash:
        raise ValueError(f"{', '.join(clash)}: reserved by the idempotency record; name the field otherwise")


def _encode(record: Record) -> dict[str, Any]:
    return {
        **record.fields,
        "Status": record.status.value,
        "PayloadHash": record.payload_hash,
        "ClaimId": record.claim_id,
        "ClaimedAt": record.claimed_at,
        "ExpiresAt": record.expires_at,
        "Result": json.dumps(dict(record.result), default=str),
    }


def _decode(row: Row) -> Record:
    data = row.data
    try:
        status = Status(str(data.get("Status")))
    except ValueError:
        raise PermanentError(
            f"idempotency record {row.partition}/{row.key} has no valid Status ({data.get('Status')!r}); "
            "it was not written by this version: delete the row to let the next delivery claim the key"
        ) from None
    return Record(
        key=RecordKey(row.partition, row.key),
        status=status,
        payload_hash=str(data.get("PayloadHash") or ""),
        claim_id=str(data.get("ClaimId") or ""),
        claimed_at=as_utc(data["ClaimedAt"]),
        expires_at=as_utc(data["ExpiresAt"]),
        result=json.loads(str(data.get("Result") or "{}")),
        fields={name: value for name, value in data.items() if name not in RESERVED},
    )
