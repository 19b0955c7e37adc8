"""The endpoint's ``~lease`` row: who may advance its rollouts (a lease fenced by its ETag and token), the app's
traffic intents, the last observation of its traffic, and any drift flagged."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.platform.clock import as_utc
from app.platform.tables import Conflict, Row, Table
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.intents import Intent
from app.rollout.decide.model import DeploymentView
from app.rollout.ledger.indexes import ActiveIndex
from app.rollout.ledger.rows import LEASE_KEY, partition_key

logger = logging.getLogger(__name__)

#: A deployments list longer than this (in JSON) is not kept on the row, which stays well inside a Table
#: property's 64 KiB; the next observation lists them. Azure ML allows 20 deployments per endpoint, ours are short.
MAX_LISTED_CHARS = 16_000


class LeaseLost(Conflict):
    """The endpoint's lease was taken over (it expired): this instance must not send a write."""


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
    #: The deployments as last listed, kept only while no write since could have changed them (a pass that wrote
    #: a deployment, or reused this list, keeps None): a traffic write's follow-up observes without listing them.
    observed_deployments: tuple[DeploymentView, ...] | None = None
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
            observed_deployments=_deployments(observed.get("deployments")) if isinstance(observed, dict) else None,
            drift=drift if isinstance(drift, dict) else None,
        )

    def encode(self, workspace_id: str, endpoint: str, now: dt.datetime) -> dict[str, Any]:
        observed: dict[str, Any] | None = (
            {"traffic": dict(self.observed_traffic), "mirror": dict(self.observed_mirror)}
            if self.observed_traffic is not None
            else None
        )
        if observed is not None and self.observed_deployments is not None:
            listed = [[d.name, d.provisioning_state, dict(d.tags), d.model] for d in self.observed_deployments]
            if len(json.dumps(listed)) <= MAX_LISTED_CHARS:
                observed["deployments"] = listed
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
            # Read by the active index: an endpoint with a write in doubt is observed every tick until it is not.
            "Active": intent_rules.watching(self.intents, now),
        }


def _deployments(listed: Any) -> tuple[DeploymentView, ...] | None:
    """The deployments list kept on the row; None when absent or not in the shape ``encode`` writes (the next
    observation then lists them)."""
    if not isinstance(listed, list):
        return None
    try:
        return tuple(
            DeploymentView(str(name), str(state), {str(k): str(v) for k, v in dict(tags).items()}, str(model))
            for name, state, tags, model in listed
        )
    except (TypeError, ValueError):
        logger.warning("endpoint row: its kept deployments list is unreadable; the next observation lists them")
        return None


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


class EndpointLeases:
    """The endpoints' ``~lease`` rows: one instance at a time advances an endpoint, and its writes are fenced."""

    def __init__(self, store: Table, active: ActiveIndex) -> None:
        self.store = store
        self.active = active  # a traffic write in doubt turns the lease row active: the endpoint is indexed first

    def read(self, workspace_id: str, endpoint: str) -> EndpointRecord:
        """The endpoint's row (intents, last observation, drift); empty if the app never held its lease."""
        return EndpointRecord.from_row(self.store.get(partition_key(workspace_id, endpoint), LEASE_KEY))

    def acquire(self, workspace_id: str, endpoint: str, owner: str, now: dt.datetime, seconds: float) -> Lease | None:
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

    def update(self, lease: Lease, now: dt.datetime, **changes: Any) -> Lease:
        """Write ``changes`` to the endpoint's record if this lease still holds it; else ``LeaseLost``."""
        record = replace(lease.record, **changes)
        if record.until is None or record.until <= now:
            raise LeaseLost(f"lease on {lease.endpoint} expired at {record.until}")
        try:
            row = self.store.replace(lease.row, record.encode(lease.workspace_id, lease.endpoint, now))
        except Conflict as err:
            raise LeaseLost(f"lease on {lease.endpoint} was taken over (token {lease.token})") from err
        return replace(lease, row=row, record=record)

    def renew(
        self, lease: Lease, now: dt.datetime, seconds: float, intent: Intent | None = None, *, forget_list: bool = False
    ) -> Lease:
        """The fence before an ARM write: extend the lease, recording ``intent`` with it; ``LeaseLost`` if taken.
        ``forget_list``: the write may change the deployments, so the list kept on the row goes first (even if the
        lease is lost before its release, no follow-up stands on a list from before the write)."""
        if lease.record.until is None or lease.record.until <= now:
            raise LeaseLost(f"lease on {lease.endpoint} expired at {lease.record.until}; the write is not sent")
        intents = (*lease.record.intents, intent)[-intent_rules.INTENT_LIMIT :] if intent else lease.record.intents
        if intent is not None:
            # The write is in doubt until AML's answer is recorded: the lease row turns active, and the
            # reconciler reads only the index, so the endpoint is (kept) in it first.
            self.active.add(lease.workspace_id, lease.endpoint, now)
        forget: dict[str, Any] = {"observed_deployments": None} if forget_list else {}
        return self.update(lease, now, until=now + dt.timedelta(seconds=seconds), intents=intents, **forget)

    def settle_intent(self, lease: Lease, seq: int, status: str, now: dt.datetime) -> Lease | None:
        """Record what became of intent ``seq``. Under the lease if still held; else on the fresh row (None)."""
        try:
            return self.update(lease, now, intents=intent_rules.with_status(lease.record.intents, seq, status))
        except LeaseLost:

            def change(row: Row | None) -> dict[str, Any] | None:
                if row is None:
                    return None
                record = EndpointRecord.from_row(row)
                record = replace(record, intents=intent_rules.with_status(record.intents, seq, status))
                return {**row.data, **record.encode(lease.workspace_id, lease.endpoint, now)}

            self.store.update(lease.partition, LEASE_KEY, change)
            return None

    def release(self, lease: Lease, now: dt.datetime, **changes: Any) -> None:
        """Give the lease up, keeping the record (plus ``changes``, such as the last observation)."""
        record = replace(lease.record, **changes, owner="", until=now)
        try:
            self.store.replace(lease.row, record.encode(lease.workspace_id, lease.endpoint, now))
        except Conflict:
            logger.warning("lease %s was taken over before release (it had expired)", lease.partition)
