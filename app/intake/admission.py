"""Which sources an event may come from: Azure ML's events from ``AML_ALLOWED_WORKSPACES``, a staging app's
promotions from ``PROMOTION_SOURCES``. Both lists fail closed: empty, nothing is admitted."""

from __future__ import annotations

import logging

from app.intake.events import MODEL_PROMOTED, Envelope
from app.platform.settings import Settings
from app.platform.workspace import WorkspaceRef


def refusal(envelope: Envelope, workspace: WorkspaceRef, settings: Settings) -> tuple[str, int] | None:
    """Why the event is ignored, and the level to log it at; None when its source is admitted."""
    if envelope.event_type == MODEL_PROMOTED:
        if not settings.promotion_sources:
            return "ignored: no promotion source is allowed (PROMOTION_SOURCES is empty, failing closed)", logging.ERROR
        if not settings.promotes_from(workspace):
            return f"ignored: promotions from {workspace.arm_id} are not in PROMOTION_SOURCES", logging.WARNING
        return None
    if not settings.allowed_workspaces:
        return "ignored: no workspace is allowed (AML_ALLOWED_WORKSPACES is empty, failing closed)", logging.ERROR
    if not settings.allows(workspace):
        return f"ignored: workspace {workspace.arm_id} is not in AML_ALLOWED_WORKSPACES", logging.WARNING
    return None
