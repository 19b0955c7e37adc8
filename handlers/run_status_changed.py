"""RunStatusChanged: a failed run becomes a ``run failed`` notification; other statuses are logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, RunStatusChangedData

logger = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({"failed"})


def handle(event: AmlEvent[RunStatusChangedData], deps: Deps) -> str:
    run = event.data
    if run.run_status.lower() not in FAILED_STATUSES:
        logger.info("%s run %s status %s: nothing to do", event.label, run.run_id, run.run_status)
        return f"logged: run {run.run_id} is {run.run_status}"
    deps.notifier.send(
        Notification.about_run(event, "AmlEvents.Run.Failed", "failed", severity="error", status=run.run_status)
    )
    return f"notified: run {run.run_id} failed"
