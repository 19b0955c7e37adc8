"""The rollout ledger: one Azure Table row per (workspace, endpoint, deployment), plus a lease row per endpoint."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from shared.clock import as_utc
from shared.rollout.model import Cleanup, Rollout, RolloutPlan, State
from shared.store import Conflict, Row, TableStore, backoff, workspace_scope
from shared.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

LEASE_KEY = "~lease"  # sorts after every deployment name
MAX_EVENT_IDS = 50
MAX_TEXT = 30_000  # Table string properties hold 64 KiB of UTF-16


def partition_key(workspace_id: str, endpoint: str) -> str:
    """Readable, unique per workspace (ids compared case-insensitively) and endpoint."""
    return f"{workspace_scope(WorkspaceRef.from_arm_id(workspace_id))}~{endpoint}"


class RolloutLedger:
    """Rollout rows over a ``TableStore``. Every write is conditional on the row's ETag."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

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
        return _decode(row), created

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
        """Every rollout on one endpoint, oldest first."""
        rows = self.store.partition(partition_key(workspace_id, endpoint))
        return sorted((_decode(row) for row in rows if row.key != LEASE_KEY), key=lambda r: r.created_at)

    def active_endpoints(self) -> list[tuple[str, str]]:
        """(workspace id, endpoint) of every endpoint with a rollout in progress."""
        rows = self.store.query("Active eq true")
        return sorted({(str(row.data["Workspace"]), str(row.data["Endpoint"])) for row in rows})

    def all(self) -> list[Rollout]:
        """Every rollout, newest first."""
        rows = self.store.query("RowKey ne @lease", lease=LEASE_KEY)
        return sorted((_decode(row) for row in rows), key=lambda r: r.created_at, reverse=True)

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
        turn_taken_at=_time(data.get("TurnTakenAt")),
        retries=tuple(json.loads(str(data.get("Retries") or "[]"))),
        error_source=str(data.get("ErrorSource") or ""),
        denied_since=_time(data.get("DeniedSince")),
        cleanup=Cleanup.from_json(str(data["Cleanup"])) if data.get("Cleanup") else None,
        etag=row.etag,
    )


def _time(value: Any) -> dt.datetime | None:
    """An optional ISO 8601 time property ("" when unset; rows written before it existed lack it)."""
    return dt.datetime.fromisoformat(str(value)) if value else None
