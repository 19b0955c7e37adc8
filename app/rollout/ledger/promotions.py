"""Promotions owed by the staging app: one row per proven rollout, in the idempotency table, until it is promoted.

A promotion is recorded (``owe``) when its rollout ends proven, before the rollout's transition is saved; the
promotion itself runs later, off the event path, because ``models.share`` blocks for the whole copy. The row says
where it is:

- ``owed``: waiting for its turn (``NextAttemptAt``); the follow-up queue carries it out, the reconciler's tick
  sends the follow-up again if none came (a message lost, the queue off);
- ``sharing``: claimed by one invocation until ``ClaimedUntil`` (a crashed holder blocks it only that long);
- ``promoted`` (with the registry version's asset id), ``failed`` (a permanent error, or too many attempts) or
  ``dropped`` (the rollout turned out not to be promotable when its turn came): it is done.

One small partition, read with one query per tick (``Open eq true``); every write is conditional on the row's ETag
(``Table.update``). ``ClaimedAt`` dates the row for the retention timer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.platform.clock import as_utc
from app.platform.tables import Row, Table, workspace_scope
from app.platform.workspace import WorkspaceRef

PARTITION = "promotion"
#: How long one invocation holds a promotion: longer than the function timeout (host.json, 10 minutes), so a copy
#: the host cut short is taken over only after its invocation is gone.
CLAIM_FOR = dt.timedelta(minutes=15)


class PromotionStatus(StrEnum):
    OWED = "owed"
    SHARING = "sharing"
    PROMOTED = "promoted"
    FAILED = "failed"
    DROPPED = "dropped"

    @property
    def open(self) -> bool:
        return self in (PromotionStatus.OWED, PromotionStatus.SHARING)


@dataclass(frozen=True)
class PromotionRecord:
    """One promotion: which rollout, into which registry, and where it is."""

    key: str
    workspace_id: str
    endpoint: str
    deployment: str
    registry: str
    status: PromotionStatus
    attempts: int
    next_attempt_at: dt.datetime
    claimed_until: dt.datetime | None
    last_error: str = ""
    asset_id: str = ""
    #: When the reconciler may send this promotion's follow-up again (it sent one until then).
    resend_at: dt.datetime | None = None

    def due(self, now: dt.datetime) -> bool:
        """Its turn has come: owed and past its time, or claimed by an invocation that is gone."""
        if self.status is PromotionStatus.OWED:
            return now >= self.next_attempt_at
        return self.status is PromotionStatus.SHARING and (self.claimed_until is None or now >= self.claimed_until)


def promotion_key(workspace_id: str, endpoint: str, deployment: str) -> str:
    return f"{workspace_scope(WorkspaceRef.from_arm_id(workspace_id))}~{endpoint.lower()}~{deployment.lower()}"


class PromotionRecords:
    """The ``promotion`` partition of a table."""

    def __init__(self, store: Table) -> None:
        self.store = store

    def get(self, key: str) -> PromotionRecord | None:
        row = self.store.get(PARTITION, key)
        return _decode(row) if row else None

    def owe(
        self, workspace_id: str, endpoint: str, deployment: str, registry: str, now: dt.datetime
    ) -> PromotionRecord:
        """Record the promotion and return it. Once: a record that exists is left as it is, unless it was dropped
        (its rollout was not promotable when its turn came, and is again now: an operator's retry, say)."""
        key = promotion_key(workspace_id, endpoint, deployment)

        def change(row: Row | None) -> dict[str, Any] | None:
            if row is not None and row.data.get("Status") != PromotionStatus.DROPPED.value:
                return None
            return {
                "WorkspaceId": workspace_id,
                "Endpoint": endpoint,
                "Deployment": deployment,
                "Registry": registry,
                "Status": PromotionStatus.OWED.value,
                "Open": True,
                "Attempts": 0,
                "NextAttemptAt": now,
                "ClaimedAt": now,
            }

        row = self.store.update(PARTITION, key, change)
        assert row is not None
        return _decode(row)

    def open(self) -> list[PromotionRecord]:
        """Every promotion not yet done (one query)."""
        return [_decode(row) for row in self.store.query("PartitionKey eq @pk and Open eq true", pk=PARTITION)]

    def claim(self, key: str, now: dt.datetime) -> PromotionRecord | None:
        """Hold the promotion for ``CLAIM_FOR`` if its turn has come; None when it is not due, held or done."""
        claimed: PromotionRecord | None = None

        def change(row: Row | None) -> dict[str, Any] | None:
            nonlocal claimed
            claimed = None
            if row is None or not _decode(row).due(now):
                return None
            data = {**row.data, "Status": PromotionStatus.SHARING.value, "ClaimedAt": now}
            data["ClaimedUntil"] = now + CLAIM_FOR
            claimed = _decode(Row(row.partition, row.key, data))
            return data

        self.store.update(PARTITION, key, change)
        return claimed

    def postpone(self, record: PromotionRecord, until: dt.datetime, error: str = "", *, attempt: bool = True) -> None:
        """Owed again from ``until``; ``attempt`` counts a failed attempt (a wait that is no failure does not)."""
        self._write(
            record,
            Status=PromotionStatus.OWED.value,
            Open=True,
            NextAttemptAt=until,
            Attempts=record.attempts + (1 if attempt else 0),
            LastError=error[:2000],
        )

    def sent(self, record: PromotionRecord, resend_at: dt.datetime) -> None:
        """A follow-up was sent for it: the reconciler does not send another before ``resend_at``."""
        self._write(record, ResendAt=resend_at)

    def finish(self, record: PromotionRecord, status: PromotionStatus, *, error: str = "", asset_id: str = "") -> None:
        self._write(record, Status=status.value, Open=False, LastError=error[:2000], AssetId=asset_id)

    def _write(self, record: PromotionRecord, **fields: Any) -> None:
        def change(row: Row | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {**row.data, **fields}

        self.store.update(PARTITION, record.key, change)


def _decode(row: Row) -> PromotionRecord:
    data = row.data
    until, resend = data.get("ClaimedUntil"), data.get("ResendAt")
    return PromotionRecord(
        key=row.key,
        workspace_id=str(data["WorkspaceId"]),
        endpoint=str(data["Endpoint"]),
        deployment=str(data["Deployment"]),
        registry=str(data["Registry"]),
        status=PromotionStatus(str(data["Status"])),
        attempts=int(data.get("Attempts") or 0),
        next_attempt_at=as_utc(data["NextAttemptAt"]),
        claimed_until=as_utc(until) if isinstance(until, dt.datetime) else None,
        last_error=str(data.get("LastError") or ""),
        asset_id=str(data.get("AssetId") or ""),
        resend_at=as_utc(resend) if isinstance(resend, dt.datetime) else None,
    )
