"""The ledger's two indexes: the endpoints with a rollout in progress, and every rollout newest first.

They live in the ledger's table, in partitions no endpoint's partition key can take (those start with the
workspace name), so every read here names its partition and never scans the table (but the one-time build of
the active index for a ledger written before it existed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from app.platform.clock import as_utc
from app.platform.tables import Conflict, Row, Table
from app.rollout.decide.model import Rollout, RolloutPlan
from app.rollout.ledger.rows import RolloutsAsRead, UndecodableRow, decode_rollout, partition_key

logger = logging.getLogger(__name__)

#: One row per endpoint with a rollout in progress; RowKey is the endpoint's partition key.
ACTIVE_INDEX = "~active"
#: In ``ACTIVE_INDEX``: the index was built from the rows once (an upgrade from a ledger without it).
INDEX_BUILT = "~built"
#: In ``ACTIVE_INDEX``: how far indexing the rows written before ``RECENT_INDEX`` existed has got.
HISTORY_INDEXED = "~history"
#: How long an ``ACTIVE_INDEX`` row outlives its endpoint's last active rollout. A recorder writes the index
#: row, then the rollout row; a reconciler that finds no active row removes the index row only when it is
#: older than this, so the pair's two writes (each bounded by the Tables client's timeouts and retries) can
#: never be split by a removal, and the index never under-reports.
ACTIVE_INDEX_GRACE = dt.timedelta(minutes=10)
#: One row per rollout, newest first: RowKey is ``{inverted creation time}~{partition}~{deployment}``.
#: ``RECENT_INDEX`` holds every rollout; ``RECENT_INDEX~{endpoint}`` the rollouts of one endpoint name.
RECENT_INDEX = "~recent"
_TIME_SPAN_US = 10**17  # microseconds after 1970 fit until the year 5138; keys stay 17 digits wide
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def recent_key(created_at: dt.datetime, partition: str, deployment: str) -> str:
    """The ``RECENT_INDEX`` key of a rollout: ascending keys are newest first, ties broken by the row's keys."""
    micros = (as_utc(created_at) - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{_TIME_SPAN_US - micros:017d}~{partition}~{deployment}"


def recent_partition(endpoint: str = "") -> str:
    """The index partition of every rollout, or of the rollouts on endpoints named ``endpoint``."""
    return f"{RECENT_INDEX}~{endpoint.lower()}" if endpoint else RECENT_INDEX


def recent_entries(plan: RolloutPlan, created_at: dt.datetime) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, key, properties) of a rollout's two ``RECENT_INDEX`` entries: in every rollout's partition
    and in its endpoint's. Each points at the rollout's row and carries the filters a status page matches."""
    pk = partition_key(plan.workspace_id, plan.endpoint)
    entry = {
        "Partition": pk,
        "Row": plan.deployment,
        "Endpoint": plan.endpoint.lower(),
        "Model": plan.model_name.lower(),
        "CreatedAt": created_at,
    }
    key = recent_key(created_at, pk, plan.deployment)
    return [(partition, key, entry) for partition in (recent_partition(), recent_partition(plan.endpoint))]


@dataclass(frozen=True)
class ActiveEndpoint:
    """An ``ACTIVE_INDEX`` row: an endpoint that had a rollout in progress when it was written."""

    workspace_id: str
    endpoint: str
    since: dt.datetime
    row: Row
    #: When the gate of the bake the endpoint last started falls due (``add``; None: none noted). A follow-up
    #: reads it to tell whether another gate of its region is read in the same tick's batch.
    gate_due: dt.datetime | None = None

    @classmethod
    def of(cls, row: Row) -> ActiveEndpoint:
        due = row.data.get("GateDueAt")
        return cls(
            str(row.data["Workspace"]),
            str(row.data["Endpoint"]),
            as_utc(row.data["Since"]),
            row,
            as_utc(due) if isinstance(due, dt.datetime) else None,
        )


class ActiveIndex:
    """The endpoints the reconciler visits: one ``ACTIVE_INDEX`` row each. It may over-report, never under-report."""

    def __init__(self, store: Table) -> None:
        self.store = store

    def add(self, workspace_id: str, endpoint: str, now: dt.datetime, gate_due: dt.datetime | None = None) -> None:
        """Put (or keep) the endpoint in ``ACTIVE_INDEX``: written BEFORE any row of the endpoint turns active
        (a new rollout, cleanup owed again, a traffic write in doubt on the ``~lease`` row), so the reconciler,
        which reads only the index, never misses an endpoint that needs it. An upsert changes the entry's ETag,
        so a reconciler's ETag-guarded removal of the entry as it was fails.

        ``gate_due``: when the gate of the bake the endpoint just started falls due (``ActiveEndpoint.gate_due``).
        Noting it renews ``Since`` too: the entry can only outlive its rollouts longer, never be removed early."""
        data: dict[str, Any] = {"Workspace": workspace_id, "Endpoint": endpoint, "Since": now}
        if gate_due is not None:
            data["GateDueAt"] = gate_due
        self.store.upsert(ACTIVE_INDEX, partition_key(workspace_id, endpoint), data)

    def find(self, workspace_id: str, endpoint: str) -> ActiveEndpoint | None:
        """The endpoint's ``ACTIVE_INDEX`` row, as written (one point read), or None: not active, spelled otherwise
        than its rows, or an index not built yet (``endpoints`` tells those apart)."""
        row = self.store.get(ACTIVE_INDEX, partition_key(workspace_id, endpoint))
        return None if row is None else ActiveEndpoint.of(row)

    def endpoints(self, now: dt.datetime) -> list[ActiveEndpoint]:
        """The endpoints with a rollout in progress: one read of the ``ACTIVE_INDEX`` partition.

        The index may name an endpoint that has none left (``settle`` removes it); it never misses one.
        """
        rows = self.store.partition(ACTIVE_INDEX)
        if not any(row.key == INDEX_BUILT for row in rows):
            built = self._build(now)
            rows = [*built, *(row for row in rows if row.key not in {b.key for b in built})]
        entries = [ActiveEndpoint.of(row) for row in rows if row.key not in (INDEX_BUILT, HISTORY_INDEXED)]
        return sorted(entries, key=lambda e: (e.workspace_id, e.endpoint))

    def _build(self, now: dt.datetime) -> list[Row]:
        """Once, for a ledger written before the index existed: one scan for the active rows."""
        logger.info("building the index of active endpoints from the ledger (a one-time table scan)")
        entries: dict[str, Row] = {}
        for row in self.store.query("Active eq true", select=["PartitionKey", "Workspace", "Endpoint"]):
            data = {"Workspace": row.data["Workspace"], "Endpoint": row.data["Endpoint"], "Since": now}
            entries[row.partition] = self.store.upsert(ACTIVE_INDEX, row.partition, data)
        with contextlib.suppress(Conflict):  # another instance built it at the same time
            self.store.insert(ACTIVE_INDEX, INDEX_BUILT, {"BuiltAt": now})
        return list(entries.values())

    def settle(self, entry: ActiveEndpoint, now: dt.datetime) -> bool:
        """Remove ``entry`` when its endpoint has no rollout in progress and the entry is older than
        ``ACTIVE_INDEX_GRACE``. ETag-guarded: an entry rewritten meanwhile by a new rollout stays. True if removed.

        "In progress" is any row of the endpoint's partition marked ``Active``: a rollout pending or deploying,
        a finished one with cleanup owed, and the ``~lease`` row while a traffic write is in doubt (the
        reconciler must observe the endpoint until it knows whether the write landed)."""
        if now - entry.since < ACTIVE_INDEX_GRACE:
            return False
        rows, _ = self.store.page(
            "PartitionKey eq @pk and Active eq true", limit=1, select=["RowKey"], pk=entry.row.key
        )
        if rows:
            return False
        try:
            self.store.delete(entry.row)
        except Conflict:
            return False
        logger.info("endpoint %s has no rollout in progress; removed from the active index", entry.endpoint)
        return True


class RecentIndex:
    """Every rollout, newest first (``RECENT_INDEX``): the status pages and the operator's handle read it."""

    def __init__(self, store: Table, reads: RolloutsAsRead) -> None:
        self.store = store
        self.reads = reads  # ``find`` hands out rollouts the operator's action saves: remembered as read

    def add(self, plan: RolloutPlan, created_at: dt.datetime) -> None:
        """Write the rollout's entries (before its row: a crash between leaves entries the readers skip)."""
        for partition, key, entry in recent_entries(plan, created_at):
            self.store.upsert(partition, key, entry)

    def drop(self, plan: RolloutPlan, created_at: dt.datetime) -> None:
        """Delete the rollout's entries, whatever their ETag."""
        key = recent_key(created_at, partition_key(plan.workspace_id, plan.endpoint), plan.deployment)
        for partition in (recent_partition(), recent_partition(plan.endpoint)):
            self.store.delete(Row(partition, key, etag="*"))

    def find(self, endpoint: str, deployment: str) -> list[Rollout]:
        """Every workspace's rollout of ``deployment`` on endpoints named ``endpoint`` (the operator's handle).

        One query of the endpoint's ``RECENT_INDEX`` partition (bounded by that endpoint's history, which
        retention bounds), then one point read per rollout found, with its logs. Entries pointing at no row, or
        at a row created after them, are skipped as in ``page``.
        """
        entries = self.store.query(
            "PartitionKey eq @pk and Row eq @row", pk=recent_partition(endpoint), row=deployment.lower()
        )
        found: dict[tuple[str, str], Rollout] = {}
        for entry in entries:
            target = (str(entry.data.get("Partition", "")), str(entry.data.get("Row", "")))
            row = self.store.get(*target) if target not in found else None
            if row is None or as_utc(row.data["CreatedAt"]) > as_utc(entry.data["CreatedAt"]):
                continue
            try:
                found[target] = self.reads.decode(row)
            except UndecodableRow as err:
                logger.error("%s; an operator action cannot use it (fix or delete the row)", err)
        return list(found.values())

    def page(
        self,
        *,
        endpoint: str = "",
        model: str = "",
        state: str = "",
        limit: int = 50,
        resume: dict[str, str] | None = None,
    ) -> tuple[list[Rollout], dict[str, str] | None]:
        """One page of rollouts, newest first, and where the next page starts (None after the last).

        Reads the ``RECENT_INDEX`` partition (or the endpoint's) in key order from ``resume`` on and each
        indexed row by key: one index query and at most ``limit`` point reads, whatever the history. Every
        rollout has one index entry written before its row, keyed by its creation time, which never changes;
        so following the pages yields each rollout exactly once. Entries of a recorder that crashed before
        its row, or that lost a race to record it, point at no row or at a row created after them: skipped.
        ``state`` is matched on the rows, so a page may hold fewer than ``limit`` with more to come.
        """
        filter = "PartitionKey eq @pk" + (" and Model eq @model" if model else "")
        found: list[Rollout] = []
        seen: set[tuple[str, str]] = set()
        token = resume
        for _ in range(10):  # at most 10 index pages per answer; the caller follows the continuation
            entries, token = self.store.page(
                filter, limit=limit - len(found), continuation=token, pk=recent_partition(endpoint), model=model.lower()
            )
            for entry in entries:
                target = (str(entry.data.get("Partition", "")), str(entry.data.get("Row", "")))
                row = self.store.get(*target) if target not in seen else None
                if row is None or as_utc(row.data["CreatedAt"]) > as_utc(entry.data["CreatedAt"]):
                    continue
                seen.add(target)
                try:
                    rollout = decode_rollout(row)
                except UndecodableRow as err:
                    logger.error("%s; it is left out of the status", err)
                    continue
                if not state or rollout.state.value == state.lower():
                    found.append(rollout)
            if token is None or len(found) >= limit:
                break
        return found, token
