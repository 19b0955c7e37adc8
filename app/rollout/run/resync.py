"""The resync: roll out the newest ``deploy=true`` version of each model that no event announced.

Two gaps leave tagged models undeployed: events that are lost (dead-lettered, never delivered) and tags added
after registration (Azure ML raises no event for a tag edit). The ``resync_models`` timer lists the opted-in
versions (filtered by the service), and records a rollout for the newest one of each model that the ledger has
not seen, through the same plan -> ledger path as ModelRegistered, with the event id ``resync:{model}:{version}``
(so the ledger and ``GET /api/rollouts`` show who started it). The reconciler drives it from there; a
ModelRegistered arriving later finds the row and deploys nothing twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.platform.errors import is_retryable
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import Reject, Rollout, Skip, State
from app.rollout.decide.plan import plan_rollout
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run.notifications import rollout_notification
from app.rollout.run.registry_resync import resync_registries
from app.rollout.run.resync_cursor import ResyncCursor, models_in_turn

if TYPE_CHECKING:
    from app.ports import Deps
    from app.rollout.decide.model import ModelInfo, RolloutPlan, State

logger = logging.getLogger(__name__)

#: The server-side filter: the opt-in tag as the tag contract spells it (``deploy=true``).
OPT_IN_FILTER = "deploy=true"
#: Ledger event ids of rollouts the resync started.
RESYNC_EVENT_PREFIX = "resync:"
STARTED_BY_RESYNC = "started by resync: no event announced this version (lost, or tagged after registration)"


def resync_event_id(model: ModelInfo) -> str:
    """Stable per model version: a second resync run appends nothing to the ledger row."""
    return f"{RESYNC_EVENT_PREFIX}{model.name}:{model.version}"


def resync(deps: Deps) -> list[str]:
    """One resync run over every allowed workspace; one line per model acted on."""
    settings = deps.settings
    if not settings.resync_schedule:
        logger.info("resync: RESYNC_SCHEDULE is empty, the resync is off")
        return []

    ledger = ledger_of(deps)
    seen = {
        (WorkspaceRef.from_arm_id(workspace_id).key, name.lower(), version)
        for workspace_id, name, version in ledger.history.model_versions()
    }
    lines: list[str] = []
    for key in sorted(settings.allowed_workspaces):
        try:
            lines.extend(_resync_workspace(deps, WorkspaceRef.from_arm_id(key), seen))
        except Exception as err:
            # One workspace's trouble must not stop the others; the next run tries again.
            kind = "retryable" if is_retryable(err) else "permanent"
            logger.error("resync: workspace %s not resynced (%s): %s: %s", key, kind, type(err).__name__, err)
            lines.append(f"{key}: error {type(err).__name__}")
    lines.extend(resync_registries(deps, seen))
    logger.info("resync: %s", "; ".join(lines) or "every opted-in model is in the ledger")
    return lines


def _resync_workspace(deps: Deps, workspace: WorkspaceRef, seen: set[tuple[str, str, str]]) -> list[str]:
    """The next ``RESYNC_MAX_MODELS`` models of the workspace, after those the previous run looked at."""
    settings = deps.settings
    gateway = deps.aml(workspace)
    # ARM's spelling of the id: the ledger's partition keys must match what ModelRegistered events write.
    canonical = WorkspaceRef.from_arm_id(gateway.canonical_id())
    cursor = ResyncCursor(deps.table(settings.idempotency_table), canonical)
    turn = models_in_turn(gateway.model_names(), cursor.after(), settings.resync_max_models)
    lines: list[str] = []
    if turn.partial:
        logger.warning(
            "resync: %s has more than RESYNC_MAX_MODELS=%d models; this run looks at %s to %s, the next ones after",
            canonical.workspace_name,
            settings.resync_max_models,
            turn.names[0],
            turn.next_after,
        )
        lines.append(f"looked at {len(turn.names)} models (RESYNC_MAX_MODELS), {turn.names[0]} to {turn.next_after}")
    done = cursor.after()
    for name in turn.names:
        try:
            model = gateway.newest_opted_in(name, OPT_IN_FILTER)
            if model is not None and (canonical.key, model.name.lower(), model.version) not in seen:
                lines.extend(_resync_model(deps, canonical, model))
        except Exception as err:
            if is_retryable(err):
                # Throttled or unreachable: stop here; the next run starts again at this model.
                cursor.save(done, deps.clock())
                raise
            # This model alone cannot be read (deleted meanwhile, or refused for good): report it, go on.
            logger.error("resync: model %s not resynced (permanent): %s: %s", name, type(err).__name__, err)
            lines.append(f"{name}: error {type(err).__name__}")
        done = name if turn.partial else ""
    cursor.save(done, deps.clock())
    return lines


def _resync_model(deps: Deps, canonical: WorkspaceRef, model: ModelInfo) -> list[str]:
    settings = deps.settings
    decision = plan_rollout(canonical, model, settings)
    if isinstance(decision, Skip):
        logger.info("resync: %s:%s skipped: %s", model.name, model.version, decision.reason)
        return []
    if isinstance(decision, Reject):
        reason = f"invalid tags, nothing was written to Azure ML: {decision.reason}"
        return [_record(deps, model, decision.plan, State.REJECTED, reason)]
    if not settings.records_rollouts:
        reason = (
            f"DEPLOY_MODE=plan: would deploy {decision.instance_count} x {decision.instance_type} "
            f"to {decision.endpoint}/{decision.deployment} with {decision.traffic}% traffic ({STARTED_BY_RESYNC})"
        )
        return [_record(deps, model, decision, State.PLANNED, reason)]
    return [_record(deps, model, decision, State.PENDING, STARTED_BY_RESYNC, notify=False)]


def _record(deps: Deps, model: ModelInfo, plan: RolloutPlan, state: State, reason: str, *, notify: bool = True) -> str:
    """Record the rollout as the ModelRegistered path does (final states notified first, as there)."""
    now, event_id = deps.clock(), resync_event_id(model)
    if notify:
        draft = Rollout(plan=plan, state=state, created_at=now, updated_at=now, event_ids=(event_id,), reason=reason)
        deps.notifier.send(rollout_notification(draft, state, reason, status_host=deps.settings.status_host))
    rollout, created = ledger_of(deps).record(plan, state, event_id, now, reason=reason)
    target = f"{plan.endpoint}/{plan.deployment}"
    if not created:
        return f"{model.name}:{model.version}: already in the ledger as {target} ({rollout.state.value})"
    logger.info("resync: %s:%s recorded as rollout %s (%s)", model.name, model.version, target, state.value)
    return f"{model.name}:{model.version}: {rollout.state.value} rollout {target} started by resync"
