"""Production's side of promotion: a registry version becomes a rollout in this app's own workspace.

Both ways in share this: the ``AmlEvents.Model.Promoted`` handler (``app/handlers/model_promoted.py``), which then
advances the rollout once, and the resync's poll of the registries (``app/rollout/run/registry_resync.py``), which
leaves it to the reconciler. The registry version is read first and decides (the event is only a hint); the plan
is made with this app's settings and gates (``plan_from_registry``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import PermanentError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import Reject, Rollout, RolloutPlan, Skip, State
from app.rollout.decide.promotion import plan_from_registry, registry_version_refusal
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run.notifications import rollout_notification

if TYPE_CHECKING:
    from app.ports import Deps
    from app.rollout.decide.registry_model import RegistryModelVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    """This app does not roll the version out (registry or source not listed, not opted in)."""

    reason: str


def promotion_target(deps: Deps) -> WorkspaceRef:
    """The workspace promoted versions roll out into, spelled as ARM spells it (one ARM read), so that its
    rollouts share the ledger's keys with those its own events start."""
    key = deps.settings.promotion_workspace
    if not key:
        raise PermanentError(
            "no workspace to roll promoted versions into: set AML_ALLOWED_WORKSPACES (or PROMOTION_WORKSPACE)"
        )
    workspace = WorkspaceRef.from_arm_id(key)
    return WorkspaceRef.from_arm_id(deps.aml(workspace).canonical_id())


def decide(deps: Deps, version: RegistryModelVersion, target: WorkspaceRef) -> RolloutPlan | Skip | Reject | Refused:
    """What to do with ``version`` here: refused, skipped by its tags, rejected, or a plan."""
    refusal = registry_version_refusal(version, deps.settings)
    if refusal is not None:
        return Refused(refusal)
    return plan_from_registry(target, version, deps.settings)


def record(
    deps: Deps, decision: RolloutPlan | Reject, event_id: str, *, pending_reason: str = "accepted"
) -> tuple[Rollout, bool, Outcome]:
    """Record the rollout as a registered model's is recorded: rejected or planned rollouts end where they start
    (notified once per event), others are pending for the engine. (row, whether it is new, what was done)."""
    settings, now = deps.settings, deps.clock()
    plan = decision.plan if isinstance(decision, Reject) else decision
    if isinstance(decision, Reject):
        state, reason = State.REJECTED, f"invalid tags, nothing was written to Azure ML: {decision.reason}"
    elif not settings.records_rollouts:
        state = State.PLANNED
        reason = (
            f"DEPLOY_MODE=plan: would deploy {plan.instance_count} x {plan.instance_type} to "
            f"{plan.endpoint}/{plan.deployment} with {plan.traffic}% traffic, from {plan.model_ref}"
        )
    else:
        state, reason = State.PENDING, pending_reason
    rollout, created = ledger_of(deps).record(plan, state, event_id, now, reason=reason)
    target = f"{plan.endpoint}/{plan.deployment}"
    if state.terminal and (created or event_id == rollout.event_ids[0]):
        deps.notifier.send(rollout_notification(rollout, state, reason, status_host=settings.status_host))
    if not created:
        text = f"duplicate: rollout {target} is already {rollout.state.value}; event id recorded"
        return rollout, False, Outcome(OutcomeKind.DUPLICATE, text)
    logger.info("rollout %s of %s recorded as %s", target, plan.model_ref, state.value)
    if state.terminal:
        kind = OutcomeKind.REJECTED if state is State.REJECTED else OutcomeKind.PLANNED
        return rollout, True, Outcome(kind, f"{state.value}: {reason}")
    return rollout, True, Outcome(OutcomeKind.DEFERRED, f"recorded rollout {target}")
