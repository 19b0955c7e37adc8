"""The resync's poll of ``PROMOTION_REGISTRIES``: promotions whose ``AmlEvents.Model.Promoted`` was lost.

Registries raise no events (docs/research/registry-events.md), and an event of the staging app's own can be lost.
Each resync run lists, per registry, the versions created since its cursor (oldest first, within the same bound on
reads as the workspace resync, ``RESYNC_MAX_MODELS``), takes the newest listed version of each model that the
ledger has not seen and that this app rolls out, and records it as the promoted event would (event id
``resync:{registry}/{model}:{version}``); the reconciler deploys it. The cursor is kept in the idempotency table
and moves on only after a run recorded everything it listed; it never passes a version still being copied.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from app.platform.clock import as_utc
from app.platform.errors import is_retryable
from app.platform.tables import Row, Table
from app.rollout.decide.model import Skip
from app.rollout.run.from_registry import Refused, decide, promotion_target, record

if TYPE_CHECKING:
    from app.platform.workspace import WorkspaceRef
    from app.ports import Deps
    from app.rollout.decide.registry_model import RegistryModelVersion

logger = logging.getLogger(__name__)

CURSOR_PARTITION = "registry-cursor"
#: How long a version without evidence is listed again (its staging app may still be writing it): a share's tagging
#: follows its copy within minutes.
EVIDENCE_GRACE = dt.timedelta(hours=1)
STARTED_BY_RESYNC = "started by resync: no promotion event announced this registry version (lost?)"


def resync_registries(deps: Deps, seen: set[tuple[str, str, str]]) -> list[str]:
    """One poll of every registry in ``PROMOTION_REGISTRIES``; one line per version acted on, or per registry that
    failed (the others go on). ``seen`` holds the ledger's (workspace key, model, version) triples."""
    settings = deps.settings
    if not settings.promotion_registries or not settings.promotion_workspace:
        return []
    lines: list[str] = []
    try:
        target = promotion_target(deps)
    except Exception as err:
        logger.error("resync: registries not polled: %s: %s", type(err).__name__, err)
        return [f"registries: error {type(err).__name__}"]
    for registry in sorted(settings.promotion_registries):
        try:
            lines.extend(_poll(deps, registry, target, seen))
        except Exception as err:
            kind = "retryable" if is_retryable(err) else "permanent"
            logger.error("resync: registry %s not polled (%s): %s: %s", registry, kind, type(err).__name__, err)
            lines.append(f"registry {registry}: error {type(err).__name__}")
    return lines


def _poll(deps: Deps, registry: str, target: WorkspaceRef, seen: set[tuple[str, str, str]]) -> list[str]:
    bound = deps.settings.resync_max_models
    cursors = deps.table(deps.settings.idempotency_table)
    row = cursors.get(CURSOR_PARTITION, registry)
    since = as_utc(row.data["Cursor"]) if row and isinstance(row.data.get("Cursor"), dt.datetime) else None
    listed = deps.registry(registry).list_promoted(since, max_models=bound, max_reads=bound, max_versions=bound)
    lines = [_take(deps, version, target, seen) for version in _newest_of_each_model(listed.versions)]
    if not listed.complete:
        logger.warning("resync: registry %s has more to read than RESYNC_MAX_MODELS=%d; next run", registry, bound)
    cursor = _held_back(listed.cursor, listed.versions, deps.clock())
    if cursor is not None and cursor != since:
        _save_cursor(cursors, registry, cursor)
    return [line for line in lines if line]


def _held_back(
    cursor: dt.datetime | None, versions: tuple[RegistryModelVersion, ...], now: dt.datetime
) -> dt.datetime | None:
    """The cursor, kept at the oldest recent version without evidence: a staging app writes its evidence just after
    the copy lands, so such a version is listed again until ``EVIDENCE_GRACE`` has passed."""
    waiting = [
        v.created_at
        for v in versions
        if v.evidence is None and v.created_at is not None and now - v.created_at < EVIDENCE_GRACE
    ]
    return min([*waiting, cursor]) if waiting and cursor is not None else cursor


def _newest_of_each_model(versions: tuple[RegistryModelVersion, ...]) -> list[RegistryModelVersion]:
    """The newest version of each model in the batch (they come oldest first): an older one would be superseded."""
    newest: dict[str, RegistryModelVersion] = {}
    for version in versions:
        newest[version.name.lower()] = version
    return list(newest.values())


def _take(deps: Deps, version: RegistryModelVersion, target: WorkspaceRef, seen: set[tuple[str, str, str]]) -> str:
    label = f"{version.registry}/{version.name}:{version.version}"
    if (target.key, version.name.lower(), version.version) in seen:
        return ""
    decision = decide(deps, version, target)
    if isinstance(decision, Refused | Skip):
        logger.info("resync: %s not rolled out: %s", label, decision.reason)
        return ""
    event_id = f"resync:{version.registry}/{version.name}:{version.version}"
    rollout, created, outcome = record(deps, decision, event_id, pending_reason=STARTED_BY_RESYNC)
    seen.add((target.key, version.name.lower(), version.version))
    plan = rollout.plan
    if not created:
        return f"{label}: already in the ledger as {plan.endpoint}/{plan.deployment} ({rollout.state.value})"
    logger.info("resync: %s recorded as rollout %s/%s: %s", label, plan.endpoint, plan.deployment, outcome)
    return f"{label}: {rollout.state.value} rollout {plan.endpoint}/{plan.deployment} started by resync"


def _save_cursor(cursors: Table, registry: str, cursor: dt.datetime) -> None:
    # No ClaimedAt or SentAt: the retention timer must never delete a cursor (the versions behind it would be
    # listed again once their rollouts are purged from the ledger).
    def change(current: Row | None) -> dict[str, Any]:
        return {**(current.data if current else {}), "Cursor": cursor}

    cursors.update(CURSOR_PARTITION, registry, change)
