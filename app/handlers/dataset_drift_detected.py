"""DatasetDriftDetected (legacy, v1 data drift): a notification, then retraining: one job per drift run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome
from app.notify.notifier import Notification
from app.retraining.decide import drift_signal
from app.retraining.submit import retrain

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, DatasetDriftDetectedData
    from app.ports import Deps

logger = logging.getLogger(__name__)


def handle(event: AmlEvent[DatasetDriftDetectedData], deps: Deps) -> Outcome:
    drift = event.data
    monitor = drift.data_drift_name or drift.data_drift_id
    window = f"{_iso(drift.start_time)} .. {_iso(drift.end_time)}"
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Drift.Detected",
            f"Drift monitor {monitor} measured drift {drift.drift_coefficient:.3f} over {window}",
            severity="warning",
            facts={
                "monitor": monitor,
                "dataDriftId": drift.data_drift_id,
                "driftRunId": drift.run_id,
                "driftCoefficient": drift.drift_coefficient,
                "window": window,
                "baseDatasetId": drift.base_dataset_id,
                "targetDatasetId": drift.target_dataset_id,
            },
            links={"driftRun": event.workspace.studio_link(f"runs/{drift.run_id}")},
        )
    )
    noticed = f"notified: drift {drift.drift_coefficient:.3f} on {monitor}"
    return retrain(event, drift_signal(drift), deps).after(noticed)


def _iso(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else "?"
