"""The rollout ledger: a row per (workspace, endpoint, deployment), a lease row per endpoint, and two indexes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from shared.clock import as_utc
from shared.errors import RetryableError
from shared.rollout.model import Rollout, RolloutPlan, State
from shared.store import Conflict, Row, TableStore, backoff, workspace_scope
from shared.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

LEASE_KEY = "~lease"  # sorts after every deployment name
MAX_EVENT_IDS = 50
MAX_TEXT = 30_000  # Table string properties hold 64 KiB of UTF-16

# The indexes live in the ledger's table, in partitions no endpoint's partition key can take (those start
# with the workspace name), so every read below names its partition and never scans the table.
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
#: What a decision reads of a rollout it will not write back: everything but the container logs.
SUMMARY = [
    "Workspace", "Endpoint", "Deployment", "ModelName", "ModelVersion", "State", "Active", "Plan", "CreatedAt",
    "UpdatedAt", "EventIds", "Attempts", "NextAttemptAt", "LastError", "Reason", "Actions",
]  # fmt: skip


def partition_key(workspace_id: str, endpoint: str) -> str:
    """Readable, unique per workspace (ids compared case-insensitively) and endpoint."""
    return f"{workspace_scope(WorkspaceRef.from_arm_id(workspace_id))}~{endpoint}"


def recent_key(created_at: dt.datetime, partition: str, deployment: str) -> str:
    """The ``RECENT_INDEX`` key of a rollout: ascending keys are newest first, ties broken by the row's keys."""
    micros = (as_utc(created_at) - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{_TIME_SPAN_US - micros:017d}~{partition}~{deployment}"


def recent_partition(endpoint: str = "") -> str:
    """The index partition of every rollout, or of the rollouts on endpoints named ``endpoint``."""
    return f"{RECENT_INDEX}~{endpoint.lower()}" if endpoint else RECENT_INDEX


@dataclass(frozen=True)
class ActiveEndpoint:
    """An ``ACTIVE_INDEX`` row: an endpoint that had a rollout in progress when it was written."""

    workspace_id: str
    endpoint: str
    since: dt.datetime
    row: Row


@dataclass(frozen=True)
class Purged:
    """What one retention pass did."""

    examined: int = 0
    deleted: int = 0
    kept_newest: int = 0  # the newest terminal rollout of its endpoint
    dangling: int = 0  # index rows left by a recorder that crashed before the rollout row


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class RolloutLedger:
    """Rollout rows over a ``TableStore``. Every write is conditional on the row's ETag."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

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
                    return _decode(self.store.insert(pk, plan.deployment, _encode(rollout))), True
                except Conflict:
                    # Another delivery recorded it first: its own index entries point at the row, drop ours.
                    self._drop_recent(plan, now)
                    indexed = False
                    continue
            existing = _decode(current)
            if event_id in existing.event_ids:
                return existing, False
            appended = replace(existing, event_ids=(*existing.event_ids, event_id)[-MAX_EVENT_IDS:])
            try:
                return _decode(self.store.replace(current, _encode(appended))), False
            except Conflict:
                backoff(attempt)
        raise RetryableError(f"{pk}/{plan.deployment} kept changing under concurrent updates")

    def _index(self, plan: RolloutPlan, state: State, now: dt.datetime) -> None:
        pk = partition_key(plan.workspace_id, plan.endpoint)
        if not state.terminal:
            # An upsert changes the row's ETag, so a reconciler's ETag-guarded removal of an older entry fails.
            self.store.upsert(
                ACTIVE_INDEX, pk, {"Workspace": plan.workspace_id, "Endpoint": plan.endpoint, "Since": now}
            )
        for partition, key, entry in _recent_entries(plan, now):
            self.store.upsert(partition, key, entry)

    def _drop_recent(self, plan: RolloutPlan, created_at: dt.datetime) -> None:
        key = recent_key(created_at, partition_key(plan.workspace_id, plan.endpoint), plan.deployment)
        for partition in (recent_partition(), recent_partition(plan.endpoint)):
            self.store.delete(Row(partition, key, etag="*"))

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        """Write ``rollout``'s progress. On an ETag conflict (an event id appended meanwhile) the
        fresh row's event ids are kept and the write is retried, so no update is lost."""
        pk = partition_key(rollout.plan.workspace_id, rollout.plan.endpoint)
        row = Row(pk, rollout.plan.deployment, {}, rollout.etag)
        updated = replace(rollout, updated_at=now)
        for attempt in range(8):
            try:
                return _decode(self.store.replace(row, _encode(updated)))
            except Conflict:
                backoff(attempt)
                fresh = self.store.get(pk, rollout.plan.deployment)
                if fresh is None:
                    raise
                current = _decode(fresh)
                merged = tuple(dict.fromkeys((*current.event_ids, *updated.event_ids)))[-MAX_EVENT_IDS:]
                updated = replace(updated, event_ids=merged)
                row = fresh
        raise Conflict(f"{pk}/{rollout.plan.deployment} kept changing")

    def endpoint_rollouts(self, workspace_id: str, endpoint: str) -> list[Rollout]:
        """The rollouts in progress on one endpoint, oldest first: one partition query, whatever its history."""
        rows = self.store.query("PartitionKey eq @pk and Active eq true", pk=partition_key(workspace_id, endpoint))
        return sorted((_decode(row) for row in rows if row.key != LEASE_KEY), key=lambda r: r.created_at)

    def deployment_rollouts(self, workspace_id: str, endpoint: str, deployments: Iterable[str]) -> list[Rollout]:
        """The rollouts of the named deployments (those AML shows on the endpoint), without their logs.

        With ``endpoint_rollouts`` this is what a step decides from: the active rollouts, and the record of
        every deployment that exists (for supersede and cleanup). Point reads, so the endpoint's history of
        deleted deployments is never read. The rows come without ``Logs``: never ``save`` them.
        """
        pk = partition_key(workspace_id, endpoint)
        rows = [self.store.get(pk, name, select=SUMMARY) for name in sorted(set(deployments))]
        return [_decode(row) for row in rows if row is not None]

    def active_endpoints(self, now: dt.datetime) -> list[ActiveEndpoint]:
        """The endpoints with a rollout in progress: one read of the ``ACTIVE_INDEX`` partition.

        The index may name an endpoint that has none left (``settle`` removes it); it never misses one.
        """
        rows = self.store.partition(ACTIVE_INDEX)
        if not any(row.key == INDEX_BUILT for row in rows):
            built = self._build_active_index(now)
            rows = [*built, *(row for row in rows if row.key not in {b.key for b in built})]
        entries = [
            ActiveEndpoint(str(row.data["Workspace"]), str(row.data["Endpoint"]), as_utc(row.data["Since"]), row)
            for row in rows
            if row.key not in (INDEX_BUILT, HISTORY_INDEXED)
        ]
        return sorted(entries, key=lambda e: (e.workspace_id, e.endpoint))

    def _build_active_index(self, now: dt.datetime) -> list[Row]:
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
        ``ACTIVE_INDEX_GRACE``. ETag-guarded: an entry rewritten meanwhile by a new rollout stays. True if removed."""
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

    def recent(
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
                rollout = _decode(row)
                if not state or rollout.state.value == state.lower():
                    found.append(rollout)
            if token is None or len(found) >= limit:
                break
        return found, token

    def purge(self, cutoff: dt.datetime, *, budget: int) -> Purged:
        """Delete terminal rollouts last updated before ``cutoff``, keeping each endpoint's newest terminal one.

        Walks ``RECENT_INDEX`` from ``cutoff`` back in time (a rollout updated before the cutoff was created
        before it), examining at most ``budget`` entries. Each delete is ETag-guarded: a row changed since it
        was read stays. The rollout row goes first, then its index entries; a crash between leaves entries
        that point at no row, which readers skip and the next pass deletes.
        """
        examined = deleted = kept_newest = dangling = 0
        newest: dict[str, str | None] = {}
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
                row = self.store.get(pk, key, select=["State", "CreatedAt", "UpdatedAt"])
                if row is None or as_utc(row.data["CreatedAt"]) > as_utc(entry.data["CreatedAt"]):
                    self._delete_entry(entry)
                    dangling += 1
                    continue
                if not State(str(row.data["State"])).terminal or as_utc(row.data["UpdatedAt"]) >= cutoff:
                    continue
                if pk not in newest:
                    newest[pk] = self._newest_terminal(pk)
                if newest[pk] == key:
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

    def index_history(self, now: dt.datetime, *, budget: int) -> int:
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
                if row.data.get("Plan") and isinstance(row.data.get("CreatedAt"), dt.datetime):
                    plan = RolloutPlan.from_json(str(row.data["Plan"]))
                    for partition, key, entry in _recent_entries(plan, row.data["CreatedAt"]):
                        self.store.upsert(partition, key, entry)
            if token is None:
                break
        progress = {"Done": token is None, "Next": json.dumps(token) if token else "", "At": now}
        self.store.upsert(ACTIVE_INDEX, HISTORY_INDEXED, progress)
        return indexed

    def _newest_terminal(self, partition: str) -> str | None:
        rows = self.store.partition(partition, select=["RowKey", "State", "CreatedAt"])
        terminal = [r for r in rows if r.data.get("State") and State(str(r.data["State"])).terminal]
        return max(terminal, key=lambda r: as_utc(r.data["CreatedAt"])).key if terminal else None

    def _delete_entry(self, entry: Row) -> None:
        self.store.delete(Row(recent_partition(str(entry.data.get("Endpoint", ""))), entry.key, etag="*"))
        self.store.delete(entry)

    def acquire_lease(
        self, workspace_id: str, endpoint: str, owner: str, now: dt.datetime, seconds: float
    ) -> Row | None:
        """Take the endpoint's lease so only one instance advances its rollouts; None if someone holds it."""
        pk = partition_key(workspace_id, endpoint)
        current = self.store.get(pk, LEASE_KEY)
        data = {"Owner": owner, "Until": now + dt.timedelta(seconds=seconds)}
        try:
            if current is None:
                return self.store.insert(pk, LEASE_KEY, data)
            until = current.data.get("Until")
            if isinstance(until, dt.datetime) and as_utc(until) > now and current.data.get("Owner") != owner:
                return None
            return self.store.replace(current, data)
        except Conflict:
            return None

    def release_lease(self, lease: Row, now: dt.datetime) -> None:
        try:
            self.store.replace(lease, {"Owner": "", "Until": now})
        except Conflict:
            logger.warning("lease %s was taken over before release (it had expired)", lease.partition)


def entities_of(rollout: Rollout) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, key, properties) of a finished rollout's row and its index entries, as ``record`` writes
    them: for bulk loads (``make bench`` fills a ledger with history this way)."""
    assert rollout.state.terminal, "an active rollout also needs its ACTIVE_INDEX entry: use record()"
    plan = rollout.plan
    row = (partition_key(plan.workspace_id, plan.endpoint), plan.deployment, _encode(rollout))
    return [row, *_recent_entries(plan, rollout.created_at)]


def _recent_entries(plan: RolloutPlan, created_at: dt.datetime) -> list[tuple[str, str, dict[str, Any]]]:
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


def _encode(rollout: Rollout) -> dict[str, Any]:
    plan = rollout.plan
    return {
        "Workspace": plan.workspace_id,
        "Endpoint": plan.endpoint,
        "Deployment": plan.deployment,
        "ModelName": plan.model_name,
        "ModelVersion": plan.model_version,
        "State": rollout.state.value,
        "Active": not rollout.state.terminal,
        "Plan": plan.to_json(),
        "CreatedAt": rollout.created_at,
        "UpdatedAt": rollout.updated_at,
        "EventIds": json.dumps(list(rollout.event_ids)),
        "Attempts": rollout.attempts,
        "NextAttemptAt": rollout.next_attempt_at.isoformat() if rollout.next_attempt_at else "",
        "LastError": rollout.last_error[:MAX_TEXT],
        "Reason": rollout.reason[:MAX_TEXT],
        "Logs": rollout.logs[-MAX_TEXT:],
        "Actions": json.dumps(list(rollout.actions)[-100:]),
    }


def _decode(row: Row) -> Rollout:
    data = row.data
    next_attempt = str(data.get("NextAttemptAt") or "")
    return Rollout(
        plan=RolloutPlan.from_json(str(data["Plan"])),
        state=State(str(data["State"])),
        created_at=as_utc(data["CreatedAt"]),
        updated_at=as_utc(data["UpdatedAt"]),
        event_ids=tuple(json.loads(str(data.get("EventIds") or "[]"))),
        attempts=int(data.get("Attempts") or 0),
        next_attempt_at=dt.datetime.fromisoformat(next_attempt) if next_attempt else None,
        last_error=str(data.get("LastError") or ""),
        reason=str(data.get("Reason") or ""),
        logs=str(data.get("Logs") or ""),
        actions=tuple(json.loads(str(data.get("Actions") or "[]"))),
        etag=row.etag,
    )
