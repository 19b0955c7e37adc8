"""The ledger's history: what retention deletes, the indexing of rows written before the newest-first index
existed, and the model versions every rollout ever recorded."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from app.platform.clock import as_utc
from app.platform.tables import Conflict, Row, Table
from app.rollout.decide.model import RolloutPlan
from app.rollout.ledger.indexes import (
    ACTIVE_INDEX,
    HISTORY_INDEXED,
    RECENT_INDEX,
    recent_entries,
    recent_key,
    recent_partition,
)
from app.rollout.ledger.rows import IN_PROGRESS, LEASE_KEY, state_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    """What one retention pass did."""

    examined: int = 0
    deleted: int = 0
    kept_newest: int = 0  # the newest terminal rollout of its endpoint
    dangling: int = 0  # index rows left by a recorder that crashed before the rollout row


class RolloutHistory:
    """Every rollout ever recorded, over a ``Table``: bounded passes that read it page by page."""

    def __init__(self, store: Table) -> None:
        self.store = store

    def purge(self, cutoff: dt.datetime, *, budget: int) -> Purged:
        """Delete terminal rollouts last updated before ``cutoff``, keeping each endpoint's newest terminal one.

        Walks ``RECENT_INDEX`` from ``cutoff`` back in time (a rollout updated before the cutoff was created
        before it), examining at most ``budget`` entries. Each delete is ETag-guarded: a row changed since it
        was read stays. The rollout row goes first, then its index entries; a crash between leaves entries
        that point at no row, which readers skip and the next pass deletes.
        """
        examined = deleted = kept_newest = dangling = 0
        kept: dict[str, frozenset[str]] = {}
        token: dict[str, str] | None = None
        older = recent_key(cutoff, "", "")[:17]
        while examined < budget:
            entries, token = self.store.page(
                "PartitionKey eq @pk and RowKey gt @older",
                limit=min(1000, budget - examined),
                continuation=token,
                pk=RECENT_INDEX,
                older=older,
            )
            for entry in entries:
                examined += 1
                pk, key = str(entry.data.get("Partition", "")), str(entry.data.get("Row", ""))
                row = self.store.get(pk, key, select=["State", "Active", "CreatedAt", "UpdatedAt"])
                created = row.data.get("CreatedAt") if row is not None else None
                if row is None or (
                    isinstance(created, dt.datetime) and as_utc(created) > as_utc(entry.data["CreatedAt"])
                ):
                    self._delete_entry(entry)
                    dangling += 1
                    continue
                if not _purgeable(row, cutoff):
                    continue  # in progress, cleanup owed, recent, or unreadable (left for the operator)
                if pk not in kept:
                    kept[pk] = self._kept(pk)
                if key.lower() in kept[pk]:
                    kept_newest += 1
                    continue
                try:
                    self.store.delete(row)
                except Conflict:
                    continue  # changed since it was read: decided again on the next pass
                self._delete_entry(entry)
                deleted += 1
            if token is None:
                break
        return Purged(examined=examined, deleted=deleted, kept_newest=kept_newest, dangling=dangling)

    def _kept(self, partition: str) -> frozenset[str]:
        """The rows of an endpoint retention keeps however old: its newest finished rollout, and those of the
        deployments its last observation showed with live or mirrored traffic (what serves must stay explained)."""
        rows = self.store.partition(partition, select=["RowKey", "State", "CreatedAt", "Observed"])
        terminal = [r for r in rows if r.key != LEASE_KEY and state_of(r) not in (None, *IN_PROGRESS)]
        kept = {max(terminal, key=lambda r: as_utc(r.data["CreatedAt"])).key.lower()} if terminal else set()
        lease = next((r for r in rows if r.key == LEASE_KEY), None)
        return frozenset(kept | _serving(lease))

    def _delete_entry(self, entry: Row) -> None:
        self.store.delete(Row(recent_partition(str(entry.data.get("Endpoint", ""))), entry.key, etag="*"))
        self.store.delete(entry)

    def backfill_index(self, now: dt.datetime, *, budget: int) -> int:
        """Give the rows written before ``RECENT_INDEX`` existed their entries, at most ``budget`` rows a run,
        resuming where the last run stopped; once done, a single read. Returns the rows indexed this run.

        An entry's key comes from the row's creation time, as ``record`` makes it, so a row indexed already
        gets the same entry again, never a second one.
        """
        mark = self.store.get(ACTIVE_INDEX, HISTORY_INDEXED)
        if mark is not None and mark.data.get("Done"):
            return 0
        token = json.loads(str(mark.data["Next"])) if mark is not None and mark.data.get("Next") else None
        indexed = 0
        while indexed < budget:
            rows, token = self.store.page(
                "PartitionKey lt @indexes",  # every endpoint's partition sorts before the ``~`` ones
                limit=min(1000, budget - indexed),
                continuation=token,
                select=["PartitionKey", "RowKey", "Plan", "CreatedAt"],
                indexes="~",
            )
            for row in rows:
                indexed += 1
                self._index_row(row)
            if token is None:
                break
        progress = {"Done": token is None, "Next": json.dumps(token) if token else "", "At": now}
        self.store.upsert(ACTIVE_INDEX, HISTORY_INDEXED, progress)
        return indexed

    def _index_row(self, row: Row) -> None:
        """Write the index entries of one rollout row (the ``~lease`` rows have no ``Plan``, and are passed by)."""
        if not (row.data.get("Plan") and isinstance(row.data.get("CreatedAt"), dt.datetime)):
            return
        try:
            plan = RolloutPlan.from_json(str(row.data["Plan"]))
        except (KeyError, ValueError, TypeError) as err:
            logger.error("retention: row %s/%s not indexed, its Plan is unreadable: %s", row.partition, row.key, err)
            return
        for partition, key, entry in recent_entries(plan, row.data["CreatedAt"]):
            self.store.upsert(partition, key, entry)

    def model_versions(self) -> set[tuple[str, str, str]]:
        """(workspace id, model name, model version) of every rollout: for the resync timer, which must know
        the versions the ledger has seen. A table scan reading three properties a row (the resync runs hourly
        at most, and retention bounds the table); never on a tick's or a status page's path."""
        rows = self.store.query(
            "PartitionKey lt @indexes", select=["RowKey", "Workspace", "ModelName", "ModelVersion"], indexes="~"
        )
        return {
            (str(r.data["Workspace"]), str(r.data["ModelName"]), str(r.data["ModelVersion"]))
            for r in rows
            if r.key != LEASE_KEY and r.data.get("ModelName") is not None and r.data.get("Workspace") is not None
        }


def _serving(lease: Row | None) -> set[str]:
    """The deployments the endpoint row's last observation shows with live or mirrored traffic (lower case)."""
    if lease is None:
        return set()
    try:
        observed = json.loads(str(lease.data.get("Observed") or "null"))
    except ValueError:
        return set()
    if not isinstance(observed, dict):
        return set()
    shares = {**(observed.get("traffic") or {}), **(observed.get("mirror") or {})}
    return {str(name).lower() for name, pct in shares.items() if isinstance(pct, int | float) and pct > 0}


def _purgeable(row: Row, cutoff: dt.datetime) -> bool:
    """A finished rollout with nothing owed (``Active`` false: no step, no cleanup), last updated before ``cutoff``."""
    state, updated = state_of(row), row.data.get("UpdatedAt")
    if state is None or state in IN_PROGRESS or row.data.get("Active") is not False:
        return False
    return isinstance(updated, dt.datetime) and as_utc(updated) < cutoff
