"""The retention timer: delete rollout and idempotency rows older than ``ROLLOUT_RETENTION_DAYS``, in bounded runs.

A timer of its own (``RETENTION_SCHEDULE``, daily by default) rather than a part of each reconciler tick: the
tick's cost stays flat (the index reads only), its time budget stays for rollouts, and a sweep that meets a
backlog (the first run after an upgrade) is spread over days by ``BUDGET`` instead of slowing ticks.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.platform.clock import as_utc
from app.platform.tables import Conflict, Table
from app.rollout.ledger.history import Purged
from app.rollout.ledger.ledger import ledger_of

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)

#: Rows examined per table per run. A run deletes at most this many rollouts (four Table transactions each)
#: and as many idempotency records: a few minutes at worst, well inside the Functions timeout.
BUDGET = 2000
#: The properties that date an idempotency-table row (a record, a monitor's cooldown, a sent notification's
#: ``notified~...`` row): its newest one counts.
_DATED = ("ClaimedAt", "CompletedAt", "ExpiresAt", "SentAt")


@dataclass(frozen=True)
class RetentionRun:
    """What one run did to each table, and the line per table the log shows."""

    rollouts: Purged
    idempotency_deleted: int
    idempotency_examined: int
    lines: tuple[str, ...]


def purge_history(deps: Deps) -> RetentionRun:
    """One run over both tables."""
    settings, now = deps.settings, deps.clock()
    cutoff = now - dt.timedelta(days=settings.rollout_retention_days)
    ledger = ledger_of(deps)
    indexed = ledger.history.backfill_index(now, budget=BUDGET)
    if indexed:
        logger.info("retention: %d rows written before the newest-first index existed were indexed", indexed)
    purged = ledger.history.purge(cutoff, budget=BUDGET)
    lines = [
        f"rollouts: {purged.deleted} deleted, {purged.kept_newest} kept as their endpoint's newest, "
        f"{purged.dangling} orphaned index entries removed, {purged.examined} examined (older than {cutoff:%Y-%m-%d})"
    ]
    # A monitor's cooldown record must outlive its cooldown, whatever the retention.
    hold = max(
        dt.timedelta(days=settings.rollout_retention_days), dt.timedelta(minutes=settings.retrain_cooldown_minutes)
    )
    deleted, examined = purge_idempotency(deps.table(settings.idempotency_table), now - hold, budget=BUDGET)
    lines.append(f"idempotency: {deleted} deleted, {examined} examined (older than {now - hold:%Y-%m-%d})")
    logger.info("retention: %s", "; ".join(lines))
    return RetentionRun(purged, deleted, examined, tuple(lines))


def purge_idempotency(store: Table, cutoff: dt.datetime, *, budget: int) -> tuple[int, int]:
    """Delete the rows last written before ``cutoff`` whose newest date is before it too; at most ``budget``
    examined. (deleted, examined).

    The table has no time index, so this is a filtered scan; retention is what keeps the table small. It
    covers the event records and monitors' cooldowns (``ClaimedAt``; their newest date counts, a cooldown can
    end in the future) and the outbox's ``notified~...`` rows (``SentAt``). A record is kept long after Event
    Grid stops redelivering its event (24 hours), so deleting it never lets a duplicate through. Pending
    notifications (``notify-outbox``, undated) are the outbox's own to retry or give up.
    """
    deleted = examined = 0
    token: dict[str, str] | None = None
    while examined < budget:
        rows, token = store.page(
            "ClaimedAt lt @cutoff or SentAt lt @cutoff",
            limit=min(1000, budget - examined),
            continuation=token,
            select=["PartitionKey", "RowKey", *_DATED],
            cutoff=cutoff,
        )
        for row in rows:
            examined += 1
            dates = [as_utc(row.data[name]) for name in _DATED if isinstance(row.data.get(name), dt.datetime)]
            if not dates or max(dates) >= cutoff:
                continue
            try:
                store.delete(row)
            except Conflict:
                continue  # claimed or completed since it was read: it is not old any more
            deleted += 1
        if token is None:
            break
    return deleted, examined
