"""Each notification sent once: recorded before it is sent, skipped when it was sent, retried by the tick meanwhile.

A notification's id is deterministic (source event, type, subject), so a redelivered event or a repeated
transition produces the same id. Two kinds of rows in the idempotency table:

- ``notify-outbox`` / ``{id}``: a notification not yet delivered to every sink, with the sinks that took it. It is
  written before the first attempt, so a crash or a failing sink leaves it for the reconciler's tick to retry
  (only to the sinks that have not taken it). One small partition, read by key range each tick. While an attempt
  is under way (``InFlightSince``), no other instance takes it, for longer than every sink's whole retry budget
  (``IN_FLIGHT``): a slow webhook must not get the same notification twice.
- ``notified~{workspace scope}`` / ``{id}``: the notification went out; a later send of the same id is skipped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from app.notify.notifier import Notification, Notifier, Sink
from app.platform import budgets
from app.platform.clock import as_utc, utc_now
from app.platform.tables import Conflict, Row, Table, workspace_scope
from app.platform.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

OUTBOX_PARTITION = "notify-outbox"
SENT_PREFIX = "notified"
#: An attempt started less than this long ago may still be under way (every sink waiting out its retries), so the
#: row is left to its sender; after it, the sender is taken to have died and the tick retries.
IN_FLIGHT = dt.timedelta(seconds=budgets.notification_in_flight_seconds())
#: A notification still undelivered after this long is given up, with an error that carries it whole.
GIVE_UP_AFTER = dt.timedelta(hours=24)
#: Pending notifications one tick retries at most (a dead sink must not eat the tick's budget).
FLUSH_LIMIT = 20


class OutboxNotifier(Notifier):
    """A ``Notifier`` whose ``send`` delivers each notification id once and never loses it to a failing sink."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        store: Callable[[], Table],
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        super().__init__(sinks)
        self._store = store
        self._clock = clock

    def send(self, notification: Notification) -> None:
        """Record, then publish. A sink's failure is kept for the tick to retry, not raised (storage errors are)."""
        store = self._store()
        if store.get(_sent_partition(notification), notification.id) is not None:
            logger.info("notification %s %s was sent already; not again", notification.type, notification.id)
            return
        try:
            row = store.insert(OUTBOX_PARTITION, notification.id, _encode(notification, self._clock()))
        except Conflict:
            logger.info(
                "notification %s %s is already pending; the reconciler's tick retries it",
                notification.type,
                notification.id,
            )
            return
        self._attempt(store, row, notification)

    def flush(self) -> int:
        """Retry pending notifications, oldest first; stop at the first that fails again. Returns how many went out."""
        store, now, sent = self._store(), self._clock(), 0
        rows = sorted(store.partition(OUTBOX_PARTITION), key=lambda r: as_utc(r.data["CreatedAt"]))
        for row in rows[:FLUSH_LIMIT]:
            created, attempts = as_utc(row.data["CreatedAt"]), int(row.data.get("Attempts") or 0)
            if _in_flight(row, now):
                continue
            if now - created > GIVE_UP_AFTER:
                logger.error(
                    "notification %s undelivered after %s, given up: %s",
                    row.key,
                    GIVE_UP_AFTER,
                    row.data.get("Notification"),
                )
                with contextlib.suppress(Conflict):
                    store.delete(row)
                continue
            try:
                # Taking the row (a conditional write) keeps two instances' ticks from sending it both.
                mine = store.replace(row, {**row.data, "Attempts": attempts + 1, "InFlightSince": now})
            except Conflict:
                continue
            if not self._attempt(store, mine, _decode(row)):
                break
            sent += 1
        return sent

    def _attempt(self, store: Table, row: Row, notification: Notification) -> bool:
        """Publish to the sinks that have not taken it; record the outcome. True when every sink is done."""
        already = set(json.loads(str(row.data.get("SentTo") or "[]")))
        published = self.publish(notification, skip=already)
        done = already | published.delivered | set(published.failed)
        if published.retryable:
            data = {
                **row.data,
                "SentTo": json.dumps(sorted(done)),
                "Attempts": max(int(row.data.get("Attempts") or 0), 1),
                "LastFailure": ", ".join(published.retryable),
                "InFlightSince": "",  # the attempt is over: the next tick may retry at once
            }
            with contextlib.suppress(Conflict):
                store.replace(row, data)
            logger.warning(
                "notification %s %s kept for retry by the reconciler (failed for %s)",
                notification.type,
                notification.id,
                ", ".join(published.retryable),
            )
            return False
        with contextlib.suppress(Conflict):
            # SentAt dates the row for the retention timer (app/rollout/ledger/retention.py).
            sent = {"Type": notification.type, "SentAt": self._clock()}
            store.insert(_sent_partition(notification), notification.id, sent)
        with contextlib.suppress(Conflict):
            store.delete(row)
        return True


def _in_flight(row: Row, now: dt.datetime) -> bool:
    """Is an attempt at this row possibly still under way? Rows written before ``InFlightSince`` existed count their
    first attempt from ``CreatedAt``."""
    since = row.data.get("InFlightSince")
    if since is None and not int(row.data.get("Attempts") or 0):
        since = row.data["CreatedAt"]
    return isinstance(since, dt.datetime) and now - as_utc(since) < IN_FLIGHT


def _sent_partition(notification: Notification) -> str:
    return f"{SENT_PREFIX}~{workspace_scope(notification.workspace)}"


def _encode(notification: Notification, now: dt.datetime) -> dict[str, Any]:
    body = {
        "type": notification.type,
        "subject": notification.subject,
        "summary": notification.summary,
        "workspace": notification.workspace.arm_id,
        "sourceEventId": notification.source_event_id,
        "severity": notification.severity,
        "facts": dict(notification.facts),
        "links": dict(notification.links),
        "time": notification.time.isoformat(),
    }
    return {
        "Type": notification.type,
        "Notification": json.dumps(body, default=str),
        "CreatedAt": now,
        "InFlightSince": now,
        "Attempts": 0,
        "SentTo": "[]",
    }


def _decode(row: Row) -> Notification:
    body = json.loads(str(row.data["Notification"]))
    return Notification(
        type=body["type"],
        subject=body["subject"],
        summary=body["summary"],
        workspace=WorkspaceRef.from_arm_id(body["workspace"]),
        source_event_id=body["sourceEventId"],
        severity=body["severity"],
        facts=body["facts"],
        links=body["links"],
        time=dt.datetime.fromisoformat(body["time"]),
    )
