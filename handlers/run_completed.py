"""RunCompleted: a ``run completed`` notification, then (opt-in through run tags) the run's model registered once."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from shared.errors import RetryableError
from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, RunCompletedData
    from shared.register import RegisterModel
    from shared.store import Row, TableStore

logger = logging.getLogger(__name__)

#: How long a registration claimed by another delivery is waited for before this one takes over.
CLAIM_SECONDS = 120


def handle(event: AmlEvent[RunCompletedData], deps: Deps) -> str:
    # Imported on first use: cold start of function_app pays only for what it uses.
    from shared.register import registration_request

    run = event.data
    deps.notifier.send(Notification.about_run(event, "AmlEvents.Run.Completed", "completed"))
    noticed = f"notified: run {run.run_id} completed"
    request = registration_request(run)
    if request is None:
        return noticed
    if not deps.settings.applies_changes:
        logger.info("%s DEPLOY_MODE=plan: would register %s from %s", event.label, request.name, request.path)
        return f"{noticed}; DEPLOY_MODE=plan: would register {request.path} as model {request.name}"
    return f"{noticed}; {_register(event, deps, request)}"


def _register(event: AmlEvent[RunCompletedData], deps: Deps, request: RegisterModel) -> str:
    """Claim the run's record, find or create the model version, record it, report it once."""
    from shared.register import record_keys

    store = deps.table(deps.settings.idempotency_table)
    partition, key = record_keys(event.workspace, request.run_id)
    now = deps.clock()
    mine = False

    def claim(row: Row | None) -> dict[str, Any] | None:
        nonlocal mine
        mine = row is None or _claimable(row, now)
        if not mine:
            return None
        return {"RunId": request.run_id, "ModelName": request.name, "State": "registering", "ClaimedAt": now}

    row = store.update(partition, key, claim)
    assert row is not None
    if row.data.get("State") == "registered":
        recorded = str(row.data["ModelVersion"])
        if row.data.get("Notified"):
            logger.info("%s duplicate: run %s registered %s:%s", event.label, request.run_id, request.name, recorded)
            return f"duplicate: run {request.run_id} is already registered as {request.name}:{recorded}"
        return _report(event, deps, store, request, recorded, created=False)

    gateway = deps.aml(event.workspace)
    try:
        found = gateway.find_model_version_from_run(request.name, request.run_id)
        created = found is None
        if found is None:
            if not mine:
                raise RetryableError(f"run {request.run_id} is being registered by another delivery; retry later")
            logger.info("%s registering %s as model %s", event.label, request.path, request.name)
        version = found or gateway.register_model_from_run(request)
    except Exception:
        if mine:
            # Let the redelivery claim it again at once instead of waiting out the claim.
            store.update(partition, key, lambda current: _release(current))
        raise
    store.update(partition, key, lambda current: _registered(current, request, version))
    return _report(event, deps, store, request, version, created=created)


def _claimable(row: Row, now: dt.datetime) -> bool:
    """A record nobody is working on: released, or a claim older than CLAIM_SECONDS (its delivery died)."""
    state = row.data.get("State")
    if state == "released":
        return True
    claimed = row.data.get("ClaimedAt")
    return state == "registering" and isinstance(claimed, dt.datetime) and _aware(claimed) < now - _claim_ttl()


def _claim_ttl() -> dt.timedelta:
    return dt.timedelta(seconds=CLAIM_SECONDS)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _release(row: Row | None) -> dict[str, Any] | None:
    if row is None or row.data.get("State") != "registering":
        return None
    return {**row.data, "State": "released"}


def _registered(row: Row | None, request: RegisterModel, version: str) -> dict[str, Any] | None:
    if row is not None and row.data.get("State") == "registered":
        return None
    return {
        **(row.data if row else {}),
        "RunId": request.run_id,
        "ModelName": request.name,
        "ModelVersion": version,
        "State": "registered",
    }


def _notified(row: Row | None) -> dict[str, Any] | None:
    if row is None or row.data.get("Notified"):
        return None
    return {**row.data, "Notified": True}


def _report(
    event: AmlEvent[RunCompletedData],
    deps: Deps,
    store: TableStore,
    request: RegisterModel,
    version: str,
    *,
    created: bool,
) -> str:
    """Notify ``model registered from run`` (notification first: if it fails, the redelivery sends it)."""
    from shared.register import record_keys

    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Model.RegisteredFromRun",
            f"Model {request.name}:{version} registered from run {request.run_id} "
            f"in experiment {request.experiment} ({request.model_type})",
            facts={
                "model": request.name,
                "version": version,
                "modelType": request.model_type,
                "path": request.path,
                "runId": request.run_id,
                "experiment": request.experiment,
                "tags": dict(request.tags),
            },
            links={
                "model": event.workspace.studio_link(f"models/{request.name}/version/{version}"),
                "run": event.workspace.studio_link(f"runs/{request.run_id}"),
            },
        )
    )
    partition, key = record_keys(event.workspace, request.run_id)
    store.update(partition, key, _notified)
    verb = "registered" if created else "found registered"
    return f"{verb}: model {request.name}:{version} from run {request.run_id}"
