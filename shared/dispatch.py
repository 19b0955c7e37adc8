"""Intake of one event: allowlist, parse, dispatch, and the app's single error policy."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import PermanentError, is_retryable
from shared.events import AmlEvent, Envelope, parse, workspace_of

if TYPE_CHECKING:
    from shared.deps import Deps

logger = logging.getLogger(__name__)

Handler = Callable[[AmlEvent[Any], "Deps"], str]


def process(envelope: Envelope, deps: Deps, handlers: Mapping[str, Handler]) -> str:
    """Handle one event and return a one-line account of what was done.

    Raises only when a redelivery can fix the failure (the host then answers 500 and Event Grid
    retries). Everything else is logged with the event's id, type and subject, and acknowledged.
    """
    label = envelope.label
    try:
        workspace = workspace_of(envelope)
        if not deps.settings.allowed_workspaces:
            logger.error(
                "%s ignored: AML_ALLOWED_WORKSPACES is empty, so the app honours no workspace (fail closed)",
                label,
            )
            return "ignored: no workspace is allowed (AML_ALLOWED_WORKSPACES is empty)"
        if not deps.settings.allows(workspace):
            logger.warning("%s ignored: workspace %s is not in AML_ALLOWED_WORKSPACES", label, workspace.arm_id)
            return f"ignored: workspace {workspace.workspace_name} is not allowed"
        handler = handlers.get(envelope.event_type)
        if handler is None:
            logger.info("%s ignored: no handler for this event type", label)
            return f"ignored: unknown event type {envelope.event_type}"
        event = parse(envelope)
        outcome = handler(event, deps)
        logger.info("%s handled: %s", label, outcome)
        return outcome
    except Exception as err:
        if is_retryable(err):
            logger.warning("%s failed, Event Grid will redeliver: %s: %s", label, type(err).__name__, err)
            raise
        kind = "rejected" if isinstance(err, PermanentError) else "failed"
        # The event goes into the log whole, so an operator can replay it after a fix.
        logger.error(
            "%s %s permanently, acknowledged: %s: %s; event=%s",
            label,
            kind,
            type(err).__name__,
            err,
            _replayable(envelope),
            exc_info=not isinstance(err, PermanentError),
        )
        return f"{kind}: {err}"


def _replayable(envelope: Envelope) -> str:
    """The event as one Event Grid-schema JSON line, ready for ``python -m devkit.replay``."""
    body = {
        "id": envelope.id,
        "topic": envelope.topic,
        "subject": envelope.subject,
        "eventType": envelope.event_type,
        "eventTime": envelope.time.isoformat() if envelope.time else None,
        "data": dict(envelope.data),
        "dataVersion": "",
        "metadataVersion": "1",
    }
    return json.dumps(body, default=str, separators=(",", ":"))
