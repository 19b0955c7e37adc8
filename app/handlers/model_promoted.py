"""AmlEvents.Model.Promoted: a staging app promoted a version into a registry; roll it out into this app's workspace.

The event's source was admitted against ``PROMOTION_SOURCES`` by the dispatcher. Here: the registry must be in
``PROMOTION_REGISTRIES``; the version is read from the registry (authoritative: the event is only a hint), read
again while it lags the share (or shows no evidence yet); it must carry evidence from a listed source; it is
planned with this app's settings and gates, recorded, and advanced once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from app.handlers.model_registered import MODEL_READ_WINDOW
from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import RetryableError, is_retryable
from app.ports import RegistryVersionNotFound
from app.rollout.decide.model import Skip
from app.rollout.decide.promotion import NO_EVIDENCE
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.from_registry import Refused, decide, promotion_target, record
from app.rollout.run.outcomes import Stepped

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, ModelPromotedData
    from app.ports import Deps
    from app.rollout.decide.registry_model import RegistryModelVersion

logger = logging.getLogger(__name__)


def handle(event: AmlEvent[ModelPromotedData], deps: Deps) -> Outcome:
    data, settings = event.data, deps.settings
    if not settings.reads_registry(data.registry):
        outcome = Outcome(OutcomeKind.IGNORED, f"ignored: registry {data.registry} is not in PROMOTION_REGISTRIES")
        logger.warning("%s %s", event.label, outcome)
        return outcome
    version = _read_version(event, deps)
    decision = decide(deps, version, promotion_target(deps))
    if isinstance(decision, Refused) and decision.reason == NO_EVIDENCE and _young(event, deps):
        # The event follows the evidence; a read without it lags the staging app's tag write.
        raise RetryableError(f"{version.asset_id} shows no promotion evidence yet; read again on redelivery")
    if isinstance(decision, Refused):
        logger.warning("%s ignored: %s", event.label, decision.reason)
        return Outcome(OutcomeKind.IGNORED, f"ignored: {decision.reason}")
    if isinstance(decision, Skip):
        logger.info("%s skipped: %s", event.label, decision.reason)
        return Outcome(OutcomeKind.SKIPPED, f"skipped: {decision.reason}")
    rollout, created, outcome = record(deps, decision, event.id, pending_reason="accepted: promoted from a registry")
    if not created or rollout.state.terminal:
        return outcome
    plan = rollout.plan
    target = f"{plan.endpoint}/{plan.deployment}"
    try:
        passed = RolloutEngine(deps).advance(
            plan.workspace_id, plan.endpoint, time.monotonic() + settings.event_budget_seconds
        )
    except Exception as err:
        if not is_retryable(err):
            raise
        logger.warning("%s rollout %s recorded; first step deferred to the reconciler: %s", event.label, target, err)
        return Outcome(OutcomeKind.DEFERRED, f"recorded rollout {target}; first step deferred to the reconciler")
    mine = passed.rollout(plan.deployment)
    if isinstance(mine, Stepped):
        return Outcome(OutcomeKind.HANDLED, f"rollout {target} of {plan.model_ref}: {mine.state.value} ({mine.reason})")
    waiting = "out of time budget; next tick" if mine else "queued"
    return Outcome(OutcomeKind.DEFERRED, f"rollout {target} of {plan.model_ref}: {waiting}")


def _young(event: AmlEvent[ModelPromotedData], deps: Deps) -> bool:
    sent = event.envelope.time
    return sent is not None and deps.clock() - sent < MODEL_READ_WINDOW


def _read_version(event: AmlEvent[ModelPromotedData], deps: Deps) -> RegistryModelVersion:
    """The registry's version. Still not readable within ``MODEL_READ_WINDOW`` of the event: the share's lag
    (registries replicate to each region), retryable; later it counts as missing."""
    data = event.data
    try:
        return deps.registry(data.registry).get(data.model_name, data.model_version)
    except RegistryVersionNotFound as err:
        sent, now = event.envelope.time, deps.clock()
        if sent is None or now - sent >= MODEL_READ_WINDOW:
            waited = f"{int((now - sent).total_seconds())} s" if sent else "no event time to wait from"
            raise RegistryVersionNotFound(f"{err} (still not readable after {waited}; not read again)", 0) from err
        until = (sent + MODEL_READ_WINDOW).isoformat()
        raise RetryableError(
            f"{data.registry}/{data.model_name}:{data.model_version} is not readable yet (the registry lags the "
            f"share); read again on redelivery until {until}"
        ) from err
