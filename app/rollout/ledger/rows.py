"""The rollout row's layout: its keys, its properties, and how a ``Rollout`` is written to and read from them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from app.platform.clock import as_utc
from app.platform.tables import Row, workspace_scope
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import Cleanup, Progress, Rollout, RolloutPlan, State

logger = logging.getLogger(__name__)

LEASE_KEY = "~lease"  # sorts after every deployment name; also holds the endpoint's intents and observations
MAX_EVENT_IDS = 50
MAX_TEXT = 30_000  # Table string properties hold 64 KiB of UTF-16
#: The rollout row layout written by this code. 1: the first (rows without ``SchemaVersion`` are read as 1).
SCHEMA_VERSION = 1
#: What a step reads of a rollout it will probably not write back: every property ``encode_rollout`` writes but
#: the container logs (``save`` reads those back before writing such a row).
SUMMARY = [
    "SchemaVersion", "Workspace", "Endpoint", "Deployment", "ModelName", "ModelVersion", "State", "Active", "Plan",
    "CreatedAt", "UpdatedAt", "EventIds", "Attempts", "NextAttemptAt", "LastError", "Reason", "Actions",
    "TurnTakenAt", "Retries", "ErrorSource", "DeniedSince", "Cleanup", "Progress",
]  # fmt: skip
#: The states in which a rollout still has steps to take (the others are terminal): a bake is not finished.
IN_PROGRESS = tuple(state for state in State if not state.terminal)
_READ_CACHE_LIMIT = 1000


class UndecodableRow(ValueError):
    """A ledger row that cannot be read (a hand edit, a bug). The message names its keys and the problem."""

    def __init__(self, row: Row, problem: str) -> None:
        super().__init__(f"ledger row PartitionKey={row.partition!r} RowKey={row.key!r} cannot be read: {problem}")
        self.row = row
        self.problem = problem


def partition_key(workspace_id: str, endpoint: str) -> str:
    """Readable, unique per workspace (ids compared case-insensitively) and endpoint."""
    return f"{workspace_scope(WorkspaceRef.from_arm_id(workspace_id))}~{endpoint}"


def state_of(row: Row) -> State | None:
    """The row's ``State``, or None if it has none this app knows."""
    try:
        return State(str(row.data.get("State") or ""))
    except ValueError:
        return None


class RolloutsAsRead:
    """The rollouts decoded by one ledger, by ETag: ``save`` compares a row that changed meanwhile with the row
    as it was read, and reads back the logs of a row read without them (``SUMMARY``)."""

    def __init__(self) -> None:
        self._read: dict[str, Rollout] = {}
        self._summaries: set[str] = set()

    def decode(self, row: Row, *, summary: bool = False) -> Rollout:
        """The rollout in ``row``, remembered by its ETag; ``summary`` if it was read without its logs."""
        rollout = decode_rollout(row)
        if row.etag:
            if len(self._read) >= _READ_CACHE_LIMIT:
                self._read.clear()
                self._summaries.clear()
            self._read[row.etag] = rollout
            if summary:
                self._summaries.add(row.etag)
        return rollout

    def base(self, etag: str) -> Rollout | None:
        """The rollout as read with ``etag``, if this ledger read it (and still remembers it)."""
        return self._read.get(etag)

    def is_summary(self, etag: str) -> bool:
        """Was the row with ``etag`` read without its logs?"""
        return etag in self._summaries


def encode_rollout(rollout: Rollout) -> dict[str, Any]:
    """The row's properties: every field of ``rollout``, long texts cut to what a Table property holds."""
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


def decode_rollout(row: Row) -> Rollout:
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
    plan, state, created = _required(row)
    updated = data.get("UpdatedAt")
    try:
        return Rollout(
            plan=plan,
            state=state,
            created_at=created,
            updated_at=as_utc(updated) if isinstance(updated, dt.datetime) else created,
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


def _required(row: Row) -> tuple[RolloutPlan, State, dt.datetime]:
    """The properties a rollout cannot be read without: ``Plan``, ``State`` and ``CreatedAt``."""
    data = row.data
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
    return plan, state, as_utc(created)


def _json_list(value: Any) -> list[Any]:
    parsed = json.loads(str(value or "[]"))
    if not isinstance(parsed, list):
        raise ValueError(f"{value!r} is not a JSON list")
    return parsed


def _optional_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return as_utc(dt.datetime.fromisoformat(str(value))) if value else None
