"""ModelRegistered: read the model as registered, plan its rollout from its tags, record it, advance it once."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.platform.errors import RetryableError, is_retryable
from app.ports import ModelNotFound
from app.rollout.decide.model import Reject, Skip, State
from app.rollout.decide.plan import plan_rollout
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.notifications import rollout_notification
from app.rollout.run.outcomes import Stepped

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, ModelRegisteredData
    from app.ports import Deps
    from app.rollout.decide.model import ModelInfo, RolloutPlan, State

logger = logging.getLogger(__name__)

#: How long after the event a model that cannot be read yet is read again (on Event Grid's redeliveries, at about
#: 10 s, 40 s and 100 s) before it counts as missing: AML can send ModelRegistered before a GET finds the version.
MODEL_READ_WINDOW = dt.timedelta(minutes=5)

#: A rollout that ends where it starts, by the state its row is in; a row an earlier event left in another state
#: (it was recorded before, in another mode) is that event's: this one is a duplicate.
_FINAL_KINDS = {State.REJECTED: OutcomeKind.REJECTED, State.PLANNED: OutcomeKind.PLANNED}


def handle(event: AmlEvent[ModelRegisteredData], deps: Deps) -> Outcome:

    settings = deps.settings
    model = _read_model(event, deps)
    decision = plan_rollout(event.workspace, model, settings)
    if isinstance(decision, Skip):
        logger.info("%s skipped: %s", event.label, decision.reason)
        return Outcome(OutcomeKind.SKIPPED, f"skipped: {decision.reason}")

    ledger, now = ledger_of(deps), deps.clock()
    if isinstance(decision, Reject):
        return _record_final(
            deps,
            event.id,
            decision.plan,
            State.REJECTED,
            f"invalid tags, nothing was written to Azure ML: {decision.reason}",
        )
    if not settings.records_rollouts:
        return _record_final(
            deps,
            event.id,
            decision,
            State.PLANNED,
            f"DEPLOY_MODE=plan: would deploy {decision.instance_count} x {decision.instance_type} "
            f"to {decision.endpoint}/{decision.deployment} with {decision.traffic}% traffic",
        )

    rollout, created = ledger.record(decision, State.PENDING, event.id, now, reason="accepted")
    target = f"{decision.endpoint}/{decision.deployment}"
    if not created:
        logger.info("%s duplicate: rollout %s is already %s", event.label, target, rollout.state.value)
        return Outcome(
            OutcomeKind.DUPLICATE, f"duplicate: rollout {target} is already {rollout.state.value}; event id recorded"
        )
    deadline = time.monotonic() + settings.event_budget_seconds
    try:
        outcome = RolloutEngine(deps).advance(decision.workspace_id, decision.endpoint, deadline)
    except Exception as err:
        if not is_retryable(err):
            raise
        # The rollout is recorded; the reconciler drives it from here. No need to redeliver the event.
        logger.warning("%s rollout %s recorded; first step deferred to the reconciler: %s", event.label, target, err)
        return Outcome(OutcomeKind.DEFERRED, f"recorded rollout {target}; first step deferred to the reconciler")
    mine = outcome.rollout(decision.deployment)
    if isinstance(mine, Stepped):
        return Outcome(OutcomeKind.HANDLED, f"rollout {target}: {mine.state.value} ({mine.reason})")
    # No time left for it, or another rollout on the endpoint goes first: the timer (or a follow-up) takes it.
    return Outcome(OutcomeKind.DEFERRED, f"rollout {target}: {'out of time budget; next tick' if mine else 'queued'}")


def _read_model(event: AmlEvent[ModelRegisteredData], deps: Deps) -> ModelInfo:
    """The model as registered. A 404 within ``MODEL_READ_WINDOW`` of the event is read-after-write lag: retryable.

    No ledger row is recorded for the tick to retry instead: the row's key (the endpoint) comes from the model's
    own tags, which are exactly what cannot be read yet. Event Grid keeps the event and redelivers it.
    """

    data = event.data
    try:
        return deps.aml(event.workspace).get_model(data.model_name, data.model_version)
    except ModelNotFound as err:
        registered, now = event.envelope.time, deps.clock()
        if registered is None or now - registered >= MODEL_READ_WINDOW:
            waited = f"{int((now - registered).total_seconds())} s" if registered else "no event time to wait from"
            raise ModelNotFound(f"{err} (still not readable after {waited}; not read again)") from err
        raise RetryableError(
            f"model {data.model_name}:{data.model_version} is not readable yet (read-after-write lag?); "
            f"read again on redelivery until {(registered + MODEL_READ_WINDOW).isoformat()}"
        ) from err


def _record_final(deps: Deps, event_id: str, plan: RolloutPlan, state: State, reason: str) -> Outcome:
    """Record a rollout that ends where it starts (planned or rejected) and notify once per event."""
    now = deps.clock()
    rollout, created = ledger_of(deps).record(plan, state, event_id, now, reason=reason)
    # Once per event: a redelivery finds the row (and the notifier skips a notification id it sent already,
    # and keeps one a sink failed for the reconciler's tick to retry).
    if created or event_id == rollout.event_ids[0]:
        deps.notifier.send(rollout_notification(rollout, state, reason, status_host=deps.settings.status_host))
    return Outcome(_FINAL_KINDS.get(rollout.state, OutcomeKind.DUPLICATE), f"{rollout.state.value}: {reason}")
