"""The rollout ledger: a row per (workspace, endpoint, deployment), written with ETags, and the parts beside it.

``RolloutLedger`` records and saves the rollout rows and reads the ones a step decides from. Its parts each
hold one concern of the same table: ``leases`` (the endpoint's lease, traffic intents, observation and drift),
``active`` and ``recent`` (the two indexes), and ``history`` (retention, backfill, the versions seen).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from app.platform.errors import RetryableError
from app.platform.tables import Conflict, Row, Table, backoff
from app.ports import Deps
from app.rollout.decide.intents import Intent
from app.rollout.decide.model import Rollout, RolloutPlan, State
from app.rollout.ledger.history import RolloutHistory
from app.rollout.ledger.indexes import ActiveIndex, RecentIndex, recent_entries
from app.rollout.ledger.leases import EndpointLeases, Lease, LeaseLost
from app.rollout.ledger.rows import (
    LEASE_KEY,
    MAX_EVENT_IDS,
    MAX_TEXT,
    SUMMARY,
    RolloutsAsRead,
    UndecodableRow,
    decode_rollout,
    encode_rollout,
    partition_key,
)

# ``Lease`` and ``LeaseLost`` are imported from here by the engine, which reaches the leases through this class.
__all__ = ["Lease", "LeaseLost", "RolloutLedger", "StaleRollout", "entities_of", "ledger_of"]

logger = logging.getLogger(__name__)


class StaleRollout(Conflict):
    """The rollout row's state or actions changed since it was read (another instance moved it on).

    Nothing is written; the engine decides the step again from a fresh observation next time.
    """


class RolloutLedger:
    """Rollout rows over a ``Table``. Every write is conditional on the row's ETag."""

    def __init__(self, store: Table) -> None:
        self.store = store
        # The rows as read, by ETag: ``save`` merges a concurrent change only if it touched nothing but event ids.
        self.reads = RolloutsAsRead()
        self.active = ActiveIndex(store)
        self.recent = RecentIndex(store, self.reads)
        self.leases = EndpointLeases(store, self.active)
        self.history = RolloutHistory(store)

    def record(
        self, plan: RolloutPlan, state: State, event_id: str, now: dt.datetime, reason: str = ""
    ) -> tuple[Rollout, bool]:
        """Record that ``event_id`` asks for ``plan``. Returns the row and whether it is new.

        A duplicate or late event finds the row and changes nothing but its list of event ids. A new row's
        index entries are written first, so a crash between the writes leaves an index entry without a
        row (which the readers skip) and never a rollout the reconciler or the status API cannot find.
        """
        pk = partition_key(plan.workspace_id, plan.endpoint)
        indexed = False
        for attempt in range(8):
            current = self.store.get(pk, plan.deployment)
            if current is None:
                if not indexed:
                    self._index(plan, state, now)
                    indexed = True
                rollout = Rollout(
                    plan=plan, state=state, created_at=now, updated_at=now, event_ids=(event_id,), reason=reason
                )
                try:
                    return self.reads.decode(self.store.insert(pk, plan.deployment, encode_rollout(rollout))), True
                except Conflict:
                    # Another delivery recorded it first: its own index entries point at the row, drop ours.
                    self.recent.drop(plan, now)
                    indexed = False
                    continue
            existing = self.reads.decode(current)
            if event_id in existing.event_ids:
                return existing, False
            appended = replace(existing, event_ids=(*existing.event_ids, event_id)[-MAX_EVENT_IDS:])
            try:
                return self.reads.decode(self.store.replace(current, encode_rollout(appended))), False
            except Conflict:
                backoff(attempt)
        raise RetryableError(f"{pk}/{plan.deployment} kept changing under concurrent updates")

    def _index(self, plan: RolloutPlan, state: State, now: dt.datetime) -> None:
        if not state.terminal:
            self.active.add(plan.workspace_id, plan.endpoint, now)
        self.recent.add(plan, now)

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        """Write ``rollout``'s progress, if the row is still as it was read.

        On an ETag conflict the fresh row is compared with the row as read: if only event ids were
        appended meanwhile (a duplicate event), they are kept and the write is retried; any other change
        (state, actions, reason: another instance moved the rollout on) raises ``StaleRollout`` and
        nothing is written, so a stale decision never overwrites a newer one.

        A row read without its logs (``deployment_rollouts``) gets them back from the table first, and a row
        turning active (cleanup owed again) puts its endpoint in the active index first.
        """
        pk = partition_key(rollout.plan.workspace_id, rollout.plan.endpoint)
        row = Row(pk, rollout.plan.deployment, {}, rollout.etag)
        updated = replace(rollout, updated_at=now)
        base = self.reads.base(rollout.etag)
        summary = self.reads.is_summary(rollout.etag)
        if summary and base is not None and updated.logs == base.logs:
            stored = self.store.get(pk, rollout.plan.deployment, select=["Logs"])
            if stored is not None:  # gone: the write below fails as for any row deleted meanwhile
                updated = replace(updated, logs=str(stored.data.get("Logs") or ""))
        if updated.active and (base is None or not base.active):
            self.active.add(rollout.plan.workspace_id, rollout.plan.endpoint, now)
        for attempt in range(8):
            try:
                return self.reads.decode(self.store.replace(row, encode_rollout(updated)))
            except Conflict as err:
                fresh = self.store.get(pk, rollout.plan.deployment)
                if fresh is None:
                    raise
                current = decode_rollout(fresh)
                if base is None or _progress(current, summary) != _progress(base, summary):
                    raise StaleRollout(
                        f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment} changed since it was read "
                        f"(now {current.state.value}: {current.reason})"
                    ) from err
                backoff(attempt)
                merged = tuple(dict.fromkeys((*current.event_ids, *updated.event_ids)))[-MAX_EVENT_IDS:]
                updated = replace(updated, event_ids=merged, logs=current.logs if summary else updated.logs)
                base, row, summary = current, fresh, False
        raise Conflict(f"{pk}/{rollout.plan.deployment} kept changing")

    def endpoint_rollouts(self, workspace_id: str, endpoint: str) -> list[Rollout]:
        """The rows on one endpoint that need the engine (a rollout in progress, cleanup owed), oldest first:
        one partition query for the rows marked ``Active``, whatever the endpoint's history. Read whole (with
        ``Logs``): these are the rows the engine writes back.

        An unreadable row is reported with its keys and set inactive, so it neither stops the endpoint's
        other rollouts nor is read again every tick; it stays in the table for the operator.
        """
        rollouts = []
        rows = self.store.query("PartitionKey eq @pk and Active eq true", pk=partition_key(workspace_id, endpoint))
        for row in rows:
            if row.key == LEASE_KEY:
                continue  # active while a traffic write is in doubt; not a rollout
            try:
                rollouts.append(self.reads.decode(row))
            except UndecodableRow as err:
                logger.error("%s; it is skipped (fix or delete the row)", err)
                try:
                    self.store.replace(row, {**row.data, "Active": False, "DecodeError": err.problem[:MAX_TEXT]})
                except Conflict:
                    logger.warning("unreadable row %s/%s changed meanwhile; next tick", row.partition, row.key)
        return sorted(rollouts, key=lambda r: r.created_at)

    def deployment_rollouts(self, workspace_id: str, endpoint: str, deployments: Iterable[str]) -> list[Rollout]:
        """The rollouts of the named deployments (those AML shows on the endpoint), without their logs.

        With ``endpoint_rollouts`` this is what a step decides from: the active rollouts, and the record of
        every deployment that exists (for supersede and cleanup). Point reads, so the endpoint's history of
        deleted deployments is never read. The rows come without ``Logs``; ``save`` reads those back before it
        writes such a row (a finished canary retired, a cleanup carried), so no write loses them.
        """
        pk = partition_key(workspace_id, endpoint)
        found = []
        for name in sorted(set(deployments)):
            row = self.store.get(pk, name, select=SUMMARY)
            if row is None:
                continue
            try:
                found.append(self.reads.decode(row, summary=True))
            except UndecodableRow as err:
                logger.error("%s; it is skipped (fix or delete the row)", err)
        return found

    # The engine's names for the leases' operations (it reaches them through the ledger).

    def acquire_lease(
        self, workspace_id: str, endpoint: str, owner: str, now: dt.datetime, seconds: float
    ) -> Lease | None:
        return self.leases.acquire(workspace_id, endpoint, owner, now, seconds)

    def update_lease(self, lease: Lease, now: dt.datetime, **changes: Any) -> Lease:
        return self.leases.update(lease, now, **changes)

    def renew_lease(
        self, lease: Lease, now: dt.datetime, seconds: float, intent: Intent | None = None, *, forget_list: bool = False
    ) -> Lease:
        return self.leases.renew(lease, now, seconds, intent, forget_list=forget_list)

    def settle_intent(self, lease: Lease, seq: int, status: str, now: dt.datetime) -> Lease | None:
        return self.leases.settle_intent(lease, seq, status, now)

    def release_lease(self, lease: Lease, now: dt.datetime, **changes: Any) -> None:
        self.leases.release(lease, now, **changes)


def entities_of(rollout: Rollout) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, key, properties) of a finished rollout's row and its index entries, as ``record`` writes
    them: for bulk loads (``make bench`` fills a ledger with history this way)."""
    assert rollout.state.terminal, "an active rollout also needs its ACTIVE_INDEX entry: use record()"
    plan = rollout.plan
    row = (partition_key(plan.workspace_id, plan.endpoint), plan.deployment, encode_rollout(rollout))
    return [row, *recent_entries(plan, rollout.created_at)]


def _progress(rollout: Rollout, summary: bool) -> Rollout:
    """What ``save`` compares to tell a concurrent step from a duplicate event (which only adds event ids);
    a row read without its logs is compared without them."""
    return replace(rollout, event_ids=(), logs="" if summary else rollout.logs)


def ledger_of(deps: Deps) -> RolloutLedger:
    """The rollout ledger in ``ROLLOUT_TABLE``."""
    return RolloutLedger(deps.table(deps.settings.rollout_table))
