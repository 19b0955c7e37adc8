"""DatasetDriftDetected: a ``drift detected`` notification with monitor, coefficient and window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, DatasetDriftDetectedData


def handle(event: AmlEvent[DatasetDriftDetectedData], deps: Deps) -> str:
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
    return f"notified: drift {drift.drift_coefficient:.3f} on {monitor}"


def _iso(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else "?"
