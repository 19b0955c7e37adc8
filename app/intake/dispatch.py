"""Intake of one event: allowlist, parse, dispatch, and the app's single error policy."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from app.intake import admission
from app.intake.events import AmlEvent, Envelope, envelope_from_function_event, parse, require_event_type, workspace_of
from app.intake.outcome import Outcome, OutcomeKind
from app.platform import telemetry
from app.platform.clock import as_utc
from app.platform.errors import PermanentError, SettingsError, is_retryable, permission_problem

if TYPE_CHECKING:
    import azure.functions as func

    from app.ports import Deps

logger = logging.getLogger(__name__)

Handler = Callable[[AmlEvent[Any], "Deps"], Outcome]


def receive(
    event: func.EventGridEvent | func.CloudEvent, deps: Callable[[], Deps], handlers: Mapping[str, Handler]
) -> Outcome:
    """What ``on_aml_event`` does: read the envelope, build the dependencies, ``process``.

    Reading the envelope is under the same error policy as handling: an event the worker hands over in a shape
    this code cannot read is logged and acknowledged (a redelivery brings the same shape), never a 500 for 24 h.
    """
    try:
        envelope = envelope_from_function_event(event)
    except Exception as err:
        label = f"id={getattr(event, 'id', None)!r} (envelope unreadable)"
        if is_retryable(err):
            _log_redelivery(label, err)
            raise
        return _settle(err, label, lambda: _raw(event))
    try:
        built = deps()
    except SettingsError as err:
        # Retryable on purpose: Event Grid keeps redelivering while the operator fixes the setting.
        logger.error(
            "%s cannot be handled until the app settings are fixed; Event Grid will redeliver: %s", envelope.label, err
        )
        raise
    return process(envelope, built, handlers)


def process(envelope: Envelope, deps: Deps, handlers: Mapping[str, Handler]) -> Outcome:
    """Handle one event and return what was done: its kind, and a one-line account.

    Raises only when a redelivery can fix the failure (the host then answers 500 and Event Grid
    retries). Everything else is logged with the event's id, type and subject, and acknowledged.
    """
    with telemetry.event_span(envelope) as span:
        outcome = _process(envelope, deps, handlers)
        telemetry.set_outcome(span, outcome.text, outcome.kind)
        return outcome


def _process(envelope: Envelope, deps: Deps, handlers: Mapping[str, Handler]) -> Outcome:
    label = envelope.label
    try:
        require_event_type(envelope)
        refused = admission.refusal(envelope, workspace_of(envelope), deps.settings)
        if refused is not None:
            text, level = refused
            outcome = Outcome(OutcomeKind.IGNORED, text)
            logger.log(level, "%s %s", label, outcome, extra=outcome.log_extra())
            return outcome
        handler = handlers.get(envelope.event_type)
        if handler is None:
            outcome = Outcome(OutcomeKind.IGNORED, f"ignored: unknown event type {envelope.event_type}")
            logger.info("%s %s", label, outcome, extra=outcome.log_extra())
            return outcome
        event = parse(envelope)
        outcome = handler(event, deps)
        logger.info("%s handled: %s", label, outcome, extra=outcome.log_extra())
        return outcome
    except Exception as err:
        denied = permission_problem(err)
        if denied and _older_than(envelope, deps.settings.permission_retry_minutes, deps.clock()):
            outcome = Outcome(
                OutcomeKind.FAILED,
                f"failed: permission denied for longer than PERMISSION_RETRY_MINUTES="
                f"{deps.settings.permission_retry_minutes}: {denied}",
            )
            logger.error(
                "%s %s; acknowledged: event=%s", label, outcome, _replayable(envelope), extra=outcome.log_extra()
            )
            return outcome
        if is_retryable(err):
            _log_redelivery(label, err)
            raise
        return _settle(err, label, lambda: _replayable(envelope))


def _log_redelivery(label: str, err: Exception) -> None:
    logger.warning("%s failed, Event Grid will redeliver: %s: %s", label, type(err).__name__, err)


def _settle(err: Exception, label: str, replayable: Callable[[], str]) -> Outcome:
    """The error policy for what no redelivery can fix: log it with the event, and acknowledge."""
    kind = OutcomeKind.REJECTED if isinstance(err, PermanentError) else OutcomeKind.FAILED
    outcome = Outcome(kind, f"{kind}: {err}")
    # The event goes into the log whole, so an operator can replay it after a fix.
    logger.error(
        "%s %s permanently, acknowledged: %s: %s; event=%s",
        label,
        kind,
        type(err).__name__,
        err,
        replayable(),
        exc_info=not isinstance(err, PermanentError),
        extra=outcome.log_extra(),
    )
    return outcome


def _raw(event: object) -> str:
    """Whatever can be read of an event whose envelope could not be: its JSON body, if the worker gives it."""
    try:
        get_json = getattr(event, "get_json", None)
        return json.dumps(get_json() if callable(get_json) else repr(event), default=str, separators=(",", ":"))
    except Exception as err:
        return f"(unreadable: {type(err).__name__})"


def _older_than(envelope: Envelope, minutes: int, now: dt.datetime) -> bool:
    """Is the event older than ``minutes``? An event without a time is not (Event Grid's own 24 h still bound it)."""
    sent = envelope.time
    return isinstance(sent, dt.datetime) and now - as_utc(sent) > dt.timedelta(minutes=minutes)


def _replayable(envelope: Envelope) -> str:
    """The event as one Event Grid-schema JSON line, ready for ``python -m tools.replay``."""
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
