"""The rollout ledger: a row per (workspace, endpoint, deployment), a lease row per endpoint, and two indexes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.platform.clock import as_utc
from app.platform.errors import RetryableError
from app.platform.tables import Conflict, Row, Table, backoff, workspace_scope
from app.platform.workspace import WorkspaceRef
from app.ports import Deps
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.intents import Intent
from app.rollout.decide.model import Cleanup, Progress, Rollout, RolloutPlan, State

logger = logging.getLogger(__name__)

LEASE_KEY = "~lease"  # sorts after every deployment name; also holds the endpoint's intents and observations
MAX_EVENT_IDS = 50
MAX_TEXT = 30_000  # Table string properties hold 64 KiB of UTF-16
#: The rollout row layout written by this code. 1: the first (rows without ``SchemaVersion`` are read as 1).
SCHEMA_VERSION = 1
_READ_CACHE_LIMIT = 1000


class StaleRollout(Conflict):
    """The rollout row's state or actions changed since it was read (another instance moved it on).

    Nothing is written; the engine decides the step again from a fresh observation next time.
    """


class LeaseLost(Conflict):
    """The endpoint's lease was taken over (it expired): this instance must not send a write."""


class UndecodableRow(ValueError):
    """A ledger row that cannot be read (a hand edit, a bug). The message names its keys and the problem."""

    def __init__(self, row: Row, problem: str) -> None:
        super().__init__(f"ledger row PartitionKey={row.partition!r} RowKey={row.key!r} cannot be read: {problem}")
        self.row = row
        self.problem = problem


@dataclass(frozen=True)
class EndpointRecord:
    """The endpoint's row: its lease, the app's traffic intents, the last observation, and any drift."""

    owner: str = ""
    until: dt.datetime | None = None
    token: int = 0
    intents: tuple[Intent, ...] = ()
    observed_traffic: Mapping[str, int] | None = None
    observed_mirror: Mapping[str, int] = field(default_factory=dict)
    observed_at: dt.datetime | None = None
    drift: Mapping[str, Any] | None = None  # {"at", "observed", "intended"} while drift is flagged

    @classmethod
    def from_row(cls, row: Row | None) -> EndpointRecord:
        if row is None:
            return cls()
        data = row.data
        until, observed_at = data.get("Until"), data.get("ObservedAt")
        try:
            observed = json.loads(str(data.get("Observed") or "null"))
            drift = json.loads(str(data.get("Drift") or "null"))
            intents = intent_rules.decode_intents(str(data.get("Intents") or "[]"))
        except (ValueError, KeyError, TypeError) as err:
            # The lease still works without them; say so rather than stop the endpoint.
            logger.error("endpoint row %s: intents/observation unreadable, ignored: %s", row.partition, err)
            observed, drift, intents = None, None, ()
        return cls(
            owner=str(data.get("Owner") or ""),
            until=as_utc(until) if isinstance(until, dt.datetime) else None,
            token=int(data.get("Token") or 0),
            intents=intents,
            observed_traffic=dict(observed["traffic"]) if isinstance(observed, dict) else None,
            observed_mirror=dict(observed.get("mirror") or {}) if isinstance(observed, dict) else {},
            observed_at=as_utc(observed_at) if isinstance(observed_at, dt.datetime) else None,
            drift=drift if isinstance(drift, dict) else None,
        )

    def encode(self, workspace_id: str, endpoint: str, now: dt.datetime) -> dict[str, Any]:
        observed = (
            {"traffic": dict(self.observed_traffic), "mirror": dict(self.observed_mirror)}
            if self.observed_traffic is not None
            else None
        )
        return {
            "Workspace": workspace_id,
            "Endpoint": endpoint,
            "Owner": self.owner,
            "Until": self.until or now,
            "Token": self.token,
            "Intents": intent_rules.encode_intents(self.intents),
            "Observed": json.dumps(observed),
            "ObservedAt": self.observed_at or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            "Drift": json.dumps(self.drift) if self.drift else "",
            # Read by active_endpoints: an endpoint with a write in doubt is observed every tick until it is not.
            "Active": intent_rules.watching(self.intents, now),
        }


@dataclass(frozen=True)
class Lease:
    """A held endpoint lease: the row as last written (its ETag fences the next write) and its token."""

    workspace_id: str
    endpoint: str
    row: Row
    record: EndpointRecord

    @property
    def token(self) -> int:
        return self.record.token

    @property
    def partition(self) -> str:
        return self.row.partition


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
#: What a step reads of a rollout it will probably not write back: every property ``_encode`` writes but the
#: container logs (``save`` reads those back before writing such a row).
SUMMARY = [
    "SchemaVersion", "Workspace", "Endpoint", "Deployment", "ModelName", "ModelVersion", "State", "Active", "Plan",
    "CreatedAt", "UpdatedAt", "EventIds", "Attempts", "NextAttemptAt", "LastError", "Reason", "Actions",
    "TurnTakenAt", "Retries", "ErrorSource", "DeniedSince", "Cleanup",
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
    """Rollout rows over a ``Table``. Every write is conditional on the row's ETag."""

    def __init__(self, store: Table) -> None:
        self.store = store
        # The rows as read, by ETag: ``save`` merges a concurrent change only if it touched nothing but event ids.
        self._read: dict[str, Rollout] = {}
        # The ETags of rows read without their ``Logs`` (``SUMMARY``): ``save`` reads the logs back first.
        self._summaries: set[str] = set()

    def _decoded(self, row: Row, *, summary: bool = False) -> Rollout:
        rollout = _decode(row)
        if row.etag:
            if len(self._read) >= _READ_CACHE_LIMIT:
                self._read.clear()
                self._summaries.clear()
            self._read[row.etag] = rollout
            if summary:
                self._summaries.add(row.etag)
        return rollout

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
                    return self._decoded(self.store.insert(pk, plan.deployment, _encode(rollout))), True
                except Conflict:
                    # Another delivery recorded it first: its own index entries point at the row, drop ours.
                    self._drop_recent(plan, now)
                    indexed = False
                    continue
            existing = self._decoded(current)
            if event_id in existing.event_ids:
                return existing, False
            appended = replace(existing, event_ids=(*existing.event_ids, event_id)[-MAX_EVENT_IDS:])
            try:
                return self._decoded(self.store.replace(current, _encode(appended))), False
            except Conflict:
                backoff(attempt)
        raise RetryableError(f"{pk}/{plan.deployment} kept changing under concurrent updates")

    def _index(self, plan: RolloutPlan, state: State, now: dt.datetime) -> None:
        if not state.terminal:
            self.index_endpoint(plan.workspace_id, plan.endpoint, now)
        for partition, key, entry in _recent_entries(plan, now):
            self.store.upsert(partition, key, entry)

    def index_endpoint(self, workspace_id: str, endpoint: str, now: dt.datetime) -> None:
        """Put (or keep) the endpoint in ``ACTIVE_INDEX``: written BEFORE any row of the endpoint turns active
        (a new rollout, cleanup owed again, a traffic write in doubt on the ``~lease`` row), so the reconciler,
        which reads only the index, never misses an endpoint that needs it. An upsert changes the entry's ETag,
        so a reconciler's ETag-guarded removal of the entry as it was fails."""
        data = {"Workspace": workspace_id, "Endpoint": endpoint, "Since": now}
        self.store.upsert(ACTIVE_INDEX, partition_key(workspace_id, endpoint), data)

    def _drop_recent(self, plan: RolloutPlan, created_at: dt.datetime) -> None:
        key = recent_key(created_at, partition_key(plan.workspace_id, plan.endpoint), plan.deployment)
        for partition in (recent_partition(), recent_partition(plan.endpoint)):
            self.store.delete(Row(partition, key, etag="*"))

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        """Write ``rollout``'s progress, if the row is still as it was read.

        On an ETag conflict the fresh row is compared with the row as read: if only event ids were
        appended meanwhile (a duplicate event), they are kept and the write is retried; any other change
        (state, actions, reason: another instance moved the rollout on) raises ``StaleRollout`` and
        nothing is written, so a stale decision never overwrites a newer one.

        A row read without its logs (``deployment_rollouts``) gets them back from the table first, and a row
        turning active (cleanup owed again) puts its endpoint in ``ACTIVE_INDEX`` first.
        """
        pk = partition_key(rollout.plan.workspace_id, rollout.plan.endpoint)
        row = Row(pk, rollout.plan.deployment, {}, rollout.etag)
        updated = replace(rollout, updated_at=now)
        base = self._read.get(rollout.etag)
        summary = rollout.etag in self._summaries
        if summary and base is not None and updated.logs == base.logs:
            stored = self.store.get(pk, rollout.plan.deployment, select=["Logs"])
            if stored is not None:  # gone: the write below fails as for any row deleted meanwhile
                updated = replace(updated, logs=str(stored.data.get("Logs") or ""))
        if updated.active and (base is None or not base.active):
            self.index_endpoint(rollout.plan.workspace_id, rollout.plan.endpoint, now)
        for attempt in range(8):
            try:
                return self._decoded(self.store.replace(row, _encode(updated)))
            except Conflict as err:
                fresh = self.store.get(pk, rollout.plan.deployment)
                if fresh is None:
                    raise
                current = _decode(fresh)
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
                rollouts.append(self._decoded(row))
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
                found.append(self._decoded(row, summary=True))
            except UndecodableRow as err:
                logger.error("%s; it is skipped (fix or delete the row)", err)
        return found

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

    def find(self, endpoint: str, deployment: str) -> list[Rollout]:
        """Every workspace's rollout of ``deployment`` on endpoints named ``endpoint`` (the operator's handle).

        One query of the endpoint's ``RECENT_INDEX`` partition (bounded by that endpoint's history, which
        retention bounds), then one point read per rollout found, with its logs. Entries pointing at no row, or
        at a row created after them, are skipped as in ``recent``.
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
                found[target] = self._decoded(row)
            except UndecodableRow as err:
                logger.error("%s; an operator action cannot use it (fix or delete the row)", err)
        return list(found.values())

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
                try:
                    rollout = _decode(row)
                except UndecodableRow as err:
                    logger.error("%s; it is left out of the status", err)
                    continue
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
                    try:
                        plan = RolloutPlan.from_json(str(row.data["Plan"]))
                    except (KeyError, ValueError, TypeError) as err:
                        logger.error(
                            "retention: row %s/%s not indexed, its Plan is unreadable: %s", row.partition, row.key, err
                        )
                        continue
                    for partition, key, entry in _recent_entries(plan, row.data["CreatedAt"]):
                        self.store.upsert(partition, key, entry)
            if token is None:
                break
        progress = {"Done": token is None, "Next": json.dumps(token) if token else "", "At": now}
        self.store.upsert(ACTIVE_INDEX, HISTORY_INDEXED, progress)
        return indexed

    def _newest_terminal(self, partition: str) -> str | None:
        rows = self.store.partition(partition, select=["RowKey", "State", "CreatedAt"])
        terminal = [r for r in rows if r.key != LEASE_KEY and _state(r) not in (None, *_IN_PROGRESS)]
        return max(terminal, key=lambda r: as_utc(r.data["CreatedAt"])).key if terminal else None

    def _delete_entry(self, entry: Row) -> None:
        self.store.delete(Row(recent_partition(str(entry.data.get("Endpoint", ""))), entry.key, etag="*"))
        self.store.delete(entry)

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

    def endpoint_record(self, workspace_id: str, endpoint: str) -> EndpointRecord:
        """The endpoint's row (intents, last observation, drift); empty if the app never held its lease."""
        return EndpointRecord.from_row(self.store.get(partition_key(workspace_id, endpoint), LEASE_KEY))

    def acquire_lease(
        self, workspace_id: str, endpoint: str, owner: str, now: dt.datetime, seconds: float
    ) -> Lease | None:
        """Take the endpoint's lease so only one instance advances its rollouts; None if someone holds it.

        Every acquisition increments the lease's token, so a write recorded under an older lease is
        told apart from the current holder's.
        """
        pk = partition_key(workspace_id, endpoint)
        current = self.store.get(pk, LEASE_KEY)
        record = EndpointRecord.from_row(current)
        if current is not None and record.until and record.until > now and record.owner != owner:
            return None
        record = replace(record, owner=owner, until=now + dt.timedelta(seconds=seconds), token=record.token + 1)
        data = record.encode(workspace_id, endpoint, now)
        try:
            row = self.store.replace(current, data) if current is not None else self.store.insert(pk, LEASE_KEY, data)
        except Conflict:
            return None
        return Lease(workspace_id, endpoint, row, record)

    def update_lease(self, lease: Lease, now: dt.datetime, **changes: Any) -> Lease:
        """Write ``changes`` to the endpoint's record if this lease still holds it; else ``LeaseLost``."""
        record = replace(lease.record, **changes)
        if record.until is None or record.until <= now:
            raise LeaseLost(f"lease on {lease.endpoint} expired at {record.until}")
        try:
            row = self.store.replace(lease.row, record.encode(lease.workspace_id, lease.endpoint, now))
        except Conflict as err:
            raise LeaseLost(f"lease on {lease.endpoint} was taken over (token {lease.token})") from err
        return replace(lease, row=row, record=record)

    def renew_lease(self, lease: Lease, now: dt.datetime, seconds: float, intent: Intent | None = None) -> Lease:
        """The fence before an ARM write: extend the lease, recording ``intent`` with it; ``LeaseLost`` if taken."""
        if lease.record.until is None or lease.record.until <= now:
            raise LeaseLost(f"lease on {lease.endpoint} expired at {lease.record.until}; the write is not sent")
        intents = (*lease.record.intents, intent)[-intent_rules.INTENT_LIMIT :] if intent else lease.record.intents
        if intent is not None:
            # The write is in doubt until AML's answer is recorded: the lease row turns active, and the
            # reconciler reads only the index, so the endpoint is (kept) in it first.
            self.index_endpoint(lease.workspace_id, lease.endpoint, now)
        return self.update_lease(lease, now, until=now + dt.timedelta(seconds=seconds), intents=intents)

    def settle_intent(self, lease: Lease, seq: int, status: str, now: dt.datetime) -> Lease | None:
        """Record what became of intent ``seq``. Under the lease if still held; else on the fresh row (None)."""
        try:
            return self.update_lease(lease, now, intents=intent_rules.with_status(lease.record.intents, seq, status))
        except LeaseLost:

            def change(row: Row | None) -> dict[str, Any] | None:
                if row is None:
                    return None
                record = EndpointRecord.from_row(row)
                record = replace(record, intents=intent_rules.with_status(record.intents, seq, status))
                return {**row.data, **record.encode(lease.workspace_id, lease.endpoint, now)}

            self.store.update(lease.partition, LEASE_KEY, change)
            return None

    def release_lease(self, lease: Lease, now: dt.datetime, **changes: Any) -> None:
        """Give the lease up, keeping the record (plus ``changes``, such as the last observation)."""
        record = replace(lease.record, **changes, owner="", until=now)
        try:
            self.store.replace(lease.row, record.encode(lease.workspace_id, lease.endpoint, now))
        except Conflict:
            logger.warning("lease %s was taken over before release (it had expired)", lease.partition)


def entities_of(rollout: Rollout) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, key, properties) of a finished rollout's row and its index entries, as ``record`` writes
    them: for bulk loads (``make bench`` fills a ledger with history this way)."""
    assert rollout.state.terminal, "an active rollout also needs its ACTIVE_INDEX entry: use record()"
    plan = rollout.plan
    row = (partition_key(plan.workspace_id, plan.endpoint), plan.deployment, _encode(rollout))
    return [row, *_recent_entries(plan, rollout.created_at)]


_IN_PROGRESS = (State.PENDING, State.DEPLOYING)


def _state(row: Row) -> State | None:
    try:
        return State(str(row.data.get("State") or ""))
    except ValueError:
        return None


def _purgeable(row: Row, cutoff: dt.datetime) -> bool:
    """A finished rollout with nothing owed (``Active`` false: no step, no cleanup), last updated before ``cutoff``."""
    state, updated = _state(row), row.data.get("UpdatedAt")
    if state is None or state in _IN_PROGRESS or row.data.get("Active") is not False:
        return False
    return isinstance(updated, dt.datetime) and as_utc(updated) < cutoff


def _progress(rollout: Rollout, summary: bool) -> Rollout:
    """What ``save`` compares to tell a concurrent step from a duplicate event (which only adds event ids);
    a row read without its logs is compared without them."""
    return replace(rollout, event_ids=(), logs="" if summary else rollout.logs)


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
        "SchemaVersion": SCHEMA_VERSION,
        "Workspace": plan.workspace_id,
        "Endpoint": plan.endpoint,
        "Deployment": plan.deployment,
        "ModelName": plan.model_name,
        "ModelVersion": plan.model_version,
        "State": rollout.state.value,
        "Active": rollout.active,
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
        "TurnTakenAt": rollout.turn_taken_at.isoformat() if rollout.turn_taken_at else "",
        "Retries": json.dumps(list(rollout.retries)),
        "ErrorSource": rollout.error_source,
        "DeniedSince": rollout.denied_since.isoformat() if rollout.denied_since else "",
        "Cleanup": rollout.cleanup.to_json() if rollout.cleanup else "",
        "Progress": rollout.progress.to_json() if rollout.progress != Progress() else "",
    }


def _decode(row: Row) -> Rollout:
    """A rollout from its row, tolerantly: unknown properties are ignored, missing optional ones defaulted.

    What cannot be read (no or broken ``Plan``, an unknown ``State``, no ``CreatedAt``) raises
    ``UndecodableRow`` naming the row's keys and the property.
    """
    data = row.data
    version = data.get("SchemaVersion") or 1
    if isinstance(version, int) and version > SCHEMA_VERSION:
        logger.warning(
            "ledger row %s/%s has SchemaVersion %s, newer than this app's %d; read as far as known",
            row.partition,
            row.key,
            version,
            SCHEMA_VERSION,
        )
    try:
        plan = RolloutPlan.from_json(str(data["Plan"]))
    except KeyError as err:
        raise UndecodableRow(row, f"Plan is missing a required field ({err})") from err
    except (ValueError, TypeError) as err:
        raise UndecodableRow(row, f"Plan is not a valid plan: {err}") from err
    try:
        state = State(str(data.get("State") or ""))
    except ValueError as err:
        raise UndecodableRow(
            row, f"State={data.get('State')!r} is not one of {', '.join(s.value for s in State)}"
        ) from err
    created = data.get("CreatedAt")
    if not isinstance(created, dt.datetime):
        raise UndecodableRow(row, f"CreatedAt={created!r} is not a date and time")
    updated = data.get("UpdatedAt")
    try:
        return Rollout(
            plan=plan,
            state=state,
            created_at=as_utc(created),
            updated_at=as_utc(updated) if isinstance(updated, dt.datetime) else as_utc(created),
            event_ids=tuple(str(e) for e in _json_list(data.get("EventIds"))),
            attempts=int(data.get("Attempts") or 0),
            next_attempt_at=_optional_time(data.get("NextAttemptAt")),
            last_error=str(data.get("LastError") or ""),
            reason=str(data.get("Reason") or ""),
            logs=str(data.get("Logs") or ""),
            actions=tuple(str(a) for a in _json_list(data.get("Actions"))),
            turn_taken_at=_optional_time(data.get("TurnTakenAt")),
            retries=tuple(str(r) for r in _json_list(data.get("Retries"))),
            error_source=str(data.get("ErrorSource") or ""),
            denied_since=_optional_time(data.get("DeniedSince")),
            cleanup=Cleanup.from_json(str(data["Cleanup"])) if data.get("Cleanup") else None,
            progress=Progress.from_json(str(data["Progress"])) if data.get("Progress") else Progress(),
            etag=row.etag,
        )
    except (ValueError, TypeError) as err:
        raise UndecodableRow(row, f"{type(err).__name__}: {err}") from err


def _json_list(value: Any) -> list[Any]:
    parsed = json.loads(str(value or "[]"))
    if not isinstance(parsed, list):
        raise ValueError(f"{value!r} is not a JSON list")
    return parsed


def _optional_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return as_utc(dt.datetime.fromisoformat(str(value))) if value else None


def ledger_of(deps: Deps) -> RolloutLedger:
    """The rollout ledger in ``ROLLOUT_TABLE``."""
    return RolloutLedger(deps.table(deps.settings.rollout_table))
