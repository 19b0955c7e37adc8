"""The rollout ledger: one Azure Table row per (workspace, endpoint, deployment), plus a lease row per endpoint."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.clock import as_utc
from shared.rollout import intents as intent_rules
from shared.rollout.intents import Intent
from shared.rollout.model import Cleanup, Progress, Rollout, RolloutPlan, State
from shared.store import Conflict, Row, TableStore, backoff, workspace_scope
from shared.workspace import WorkspaceRef

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


def partition_key(workspace_id: str, endpoint: str) -> str:
    """Readable, unique per workspace (ids compared case-insensitively) and endpoint."""
    return f"{workspace_scope(WorkspaceRef.from_arm_id(workspace_id))}~{endpoint}"


class RolloutLedger:
    """Rollout rows over a ``TableStore``. Every write is conditional on the row's ETag."""

    def __init__(self, store: TableStore) -> None:
        self.store = store
        # The rows as read, by ETag: ``save`` merges a concurrent change only if it touched nothing but event ids.
        self._read: dict[str, Rollout] = {}

    def _decoded(self, row: Row) -> Rollout:
        rollout = _decode(row)
        if row.etag:
            if len(self._read) >= _READ_CACHE_LIMIT:
                self._read.clear()
            self._read[row.etag] = rollout
        return rollout

    def record(
        self, plan: RolloutPlan, state: State, event_id: str, now: dt.datetime, reason: str = ""
    ) -> tuple[Rollout, bool]:
        """Record that ``event_id`` asks for ``plan``. Returns the row and whether it is new.

        A duplicate or late event finds the row and changes nothing but its list of event ids.
        """
        created = False

        def change(row: Row | None) -> dict[str, Any] | None:
            nonlocal created
            if row is None:
                created = True
                rollout = Rollout(
                    plan=plan, state=state, created_at=now, updated_at=now, event_ids=(event_id,), reason=reason
                )
                return _encode(rollout)
            created = False
            current = _decode(row)
            if event_id in current.event_ids:
                return None
            return _encode(replace(current, event_ids=(*current.event_ids, event_id)[-MAX_EVENT_IDS:]))

        row = self.store.update(partition_key(plan.workspace_id, plan.endpoint), plan.deployment, change)
        assert row is not None
        return self._decoded(row), created

    def save(self, rollout: Rollout, now: dt.datetime) -> Rollout:
        """Write ``rollout``'s progress, if the row is still as it was read.

        On an ETag conflict the fresh row is compared with the row as read: if only event ids were
        appended meanwhile (a duplicate event), they are kept and the write is retried; any other change
        (state, actions, reason: another instance moved the rollout on) raises ``StaleRollout`` and
        nothing is written, so a stale decision never overwrites a newer one.
        """
        pk = partition_key(rollout.plan.workspace_id, rollout.plan.endpoint)
        row = Row(pk, rollout.plan.deployment, {}, rollout.etag)
        updated = replace(rollout, updated_at=now)
        base = self._read.get(rollout.etag)
        for attempt in range(8):
            try:
                return self._decoded(self.store.replace(row, _encode(updated)))
            except Conflict as err:
                fresh = self.store.get(pk, rollout.plan.deployment)
                if fresh is None:
                    raise
                current = _decode(fresh)
                if base is None or replace(current, event_ids=()) != replace(base, event_ids=()):
                    raise StaleRollout(
                        f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment} changed since it was read "
                        f"(now {current.state.value}: {current.reason})"
                    ) from err
                backoff(attempt)
                merged = tuple(dict.fromkeys((*current.event_ids, *updated.event_ids)))[-MAX_EVENT_IDS:]
                updated = replace(updated, event_ids=merged)
                base, row = current, fresh
        raise Conflict(f"{pk}/{rollout.plan.deployment} kept changing")

    def endpoint_rollouts(self, workspace_id: str, endpoint: str) -> list[Rollout]:
        """Every readable rollout on one endpoint, oldest first.

        An unreadable row is reported with its keys and set inactive, so it neither stops the endpoint's
        other rollouts nor is read again every tick; it stays in the table for the operator.
        """
        rollouts = []
        for row in self.store.partition(partition_key(workspace_id, endpoint)):
            if row.key == LEASE_KEY:
                continue
            try:
                rollouts.append(self._decoded(row))
            except UndecodableRow as err:
                logger.error("%s; it is skipped (fix or delete the row)", err)
                if row.data.get("Active") is not False:
                    try:
                        self.store.replace(row, {**row.data, "Active": False, "DecodeError": err.problem[:MAX_TEXT]})
                    except Conflict:
                        logger.warning("unreadable row %s/%s changed meanwhile; next tick", row.partition, row.key)
        return sorted(rollouts, key=lambda r: r.created_at)

    def active_endpoints(self) -> list[tuple[str, str]]:
        """(workspace id, endpoint) of every endpoint with a rollout in progress."""
        rows = self.store.query("Active eq true")
        return sorted({(str(row.data["Workspace"]), str(row.data["Endpoint"])) for row in rows})

    def all(self) -> list[Rollout]:
        """Every readable rollout, newest first (unreadable rows are reported and skipped)."""
        rollouts = []
        for row in self.store.query("RowKey ne @lease", lease=LEASE_KEY):
            try:
                rollouts.append(_decode(row))
            except UndecodableRow as err:
                logger.error("%s; it is left out of the status", err)
        return sorted(rollouts, key=lambda r: r.created_at, reverse=True)

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


def filter_rollouts(
    rollouts: Iterable[Rollout], *, endpoint: str = "", model: str = "", state: str = ""
) -> list[Rollout]:
    """The ``rollout_status`` filters: exact, case-insensitive matches."""
    checks: list[Callable[[Rollout], bool]] = []
    if endpoint:
        checks.append(lambda r: r.plan.endpoint.lower() == endpoint.lower())
    if model:
        checks.append(lambda r: r.plan.model_name.lower() == model.lower())
    if state:
        checks.append(lambda r: r.state.value == state.lower())
    return [r for r in rollouts if all(check(r) for check in checks)]


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
