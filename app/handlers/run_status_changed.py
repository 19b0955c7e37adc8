"""RunStatusChanged: raised for every status change. Monitoring breaches retrain; NOTIFY_RUN_STATUSES notify."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.handlers import monitor_breach
from app.intake.outcome import Outcome, OutcomeKind
from app.notify.notifier import Notification
from app.retraining.signals import breach_of

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, RunStatusChangedData
    from app.ports import Deps

logger = logging.getLogger(__name__)

#: Notification type and severity per status; any other status in NOTIFY_RUN_STATUSES is "StatusChanged".
_NOTICES = {
    "failed": ("AmlEvents.Run.Failed", "error"),
    "canceled": ("AmlEvents.Run.Canceled", "warning"),
}


def handle(event: AmlEvent[RunStatusChangedData], deps: Deps) -> Outcome:
    run = event.data
    breach = breach_of(run)
    if breach is not None:
        # The breach tag decides, whatever the status: the evaluate step that carries it ends Completed.
        return monitor_breach.handle(event, breach, deps)
    status = run.run_status.strip().lower()
    if status not in deps.settings.notify_run_statuses:
        logger.debug("%s run %s status %s: not in NOTIFY_RUN_STATUSES, ignored", event.label, run.run_id, status)
        return Outcome(
            OutcomeKind.IGNORED, f"ignored: run {run.run_id} is {run.run_status} (not in NOTIFY_RUN_STATUSES)"
        )
    # Events arrive late and out of order: act on the status AML reports now, not on the event's.
    job = deps.aml(event.workspace).get_job(run.run_id)
    current = job.status if job is not None else ""
    if current and current.lower() != status:
        if current.lower() not in deps.settings.notify_run_statuses:
            logger.info(
                "%s run %s: the event says %s but Azure ML now reports %s; not notified",
                event.label,
                run.run_id,
                run.run_status,
                current,
            )
            return Outcome(
                OutcomeKind.IGNORED,
                f"ignored: run {run.run_id} is {current} in Azure ML (the event said {run.run_status})",
            )
        status = current.lower()
    kind, severity = _NOTICES.get(status, ("AmlEvents.Run.StatusChanged", "info"))
    shown = current or run.run_status
    deps.notifier.send(
        Notification.about_run(
            event,
            kind,
            status if status in _NOTICES else f"is {shown}",
            severity=severity,
            status=shown,
            amlStatus=current or "unknown (no such job in Azure ML)",
        )
    )
    return Outcome(OutcomeKind.HANDLED, f"notified: run {run.run_id} {status if status in _NOTICES else 'is ' + shown}")
