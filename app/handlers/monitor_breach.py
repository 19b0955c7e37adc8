"""A model-monitoring (v2) threshold breach, on RunStatusChanged or RunCompleted: notify once per signal run, retrain.

The evaluate step that carries the breach tag raises several events (each status change, then RunCompleted),
all with the tag: the breach is claimed by the tagged run's id, so one signal run is handled once. Retraining
then follows the drift path: one job per monitor run, a cooldown per monitor, plan mode respected.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.intake.outcome import Outcome, OutcomeKind
from app.notify.notifier import Notification
from app.platform.errors import RetryableError
from app.platform.idempotency import CLAIM_FOR, AlreadyDone, Idempotency, InProgressElsewhere, record_key
from app.retraining.decide import breach_signal
from app.retraining.submit import retrain

if TYPE_CHECKING:
    from app.intake.events import AmlEvent
    from app.ports import Deps
    from app.retraining.signals import MonitorBreach

logger = logging.getLogger(__name__)

#: The idempotency table's kind for a handled breach (one per tagged run).
BREACH_RECORD = "monitor-breach"


def handle(event: AmlEvent[Any], breach: MonitorBreach, deps: Deps) -> Outcome:
    records = Idempotency(deps.table(deps.settings.idempotency_table), in_progress_for=CLAIM_FOR)
    key = record_key(BREACH_RECORD, event.workspace, breach.run_id, field="data.runId", what="an Azure ML run id")
    payload = {"runId": breach.run_id, "monitorRunId": breach.monitor_run_id, "monitor": breach.monitor}
    outcome = records.claim(key, payload, deps.clock(), Monitor=breach.monitor, Signal=breach.signal)
    if isinstance(outcome, AlreadyDone):
        logger.info("%s duplicate: the breach of run %s was handled", event.label, breach.run_id)
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"duplicate: monitoring breach of run {breach.run_id} already handled: {outcome.result['outcome']}",
        )
    if isinstance(outcome, InProgressElsewhere):
        raise RetryableError(f"the monitoring breach of run {breach.run_id} is being handled by another delivery")
    try:
        deps.notifier.send(_notification(event, breach))
        retrained = retrain(event, breach_signal(breach), deps)
    except Exception:
        # The redelivery claims the breach again at once.
        records.release(outcome.record)
        raise
    records.complete(outcome.record, {"outcome": retrained.text}, deps.clock())
    signal = breach.signal or "?"
    return retrained.after(f"notified: monitor {breach.monitor} signal {signal} breached its thresholds")


def _notification(event: AmlEvent[Any], breach: MonitorBreach) -> Notification:
    links = {"signalRun": event.workspace.studio_link(f"runs/{breach.run_id}")}
    if breach.monitor_run_id != breach.run_id:
        links["monitorRun"] = event.workspace.studio_link(f"runs/{breach.monitor_run_id}")
    return Notification.about(
        event,
        "AmlEvents.Monitor.ThresholdBreached",
        f"Model monitor {breach.monitor}: signal {breach.signal or '?'} breached its metric thresholds",
        severity="warning",
        facts={
            "monitor": breach.monitor,
            "signal": breach.signal,
            "breach": breach.message,
            "runId": breach.run_id,
            "monitorRunId": breach.monitor_run_id,
            "runStatus": breach.status,
        },
        links=links,
    )
