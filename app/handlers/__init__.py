"""The dispatch table: one handler module per Azure ML event type (and the promotions of a staging app), composed in
one place."""

from __future__ import annotations

from collections.abc import Mapping

from app.handlers import (
    dataset_drift_detected,
    model_deployed,
    model_promoted,
    model_registered,
    run_completed,
    run_status_changed,
)
from app.intake import events
from app.intake.dispatch import Handler

HANDLERS: Mapping[str, Handler] = {
    events.MODEL_REGISTERED: model_registered.handle,
    events.MODEL_DEPLOYED: model_deployed.handle,
    events.RUN_COMPLETED: run_completed.handle,
    events.RUN_STATUS_CHANGED: run_status_changed.handle,
    events.DATASET_DRIFT_DETECTED: dataset_drift_detected.handle,
    events.MODEL_PROMOTED: model_promoted.handle,
}
