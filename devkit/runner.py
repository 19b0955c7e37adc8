"""Run the Function App's functions in-process, the way the Functions host would."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.timer import TimerRequest

from app.intake.outcome import OutcomeKind

logger = logging.getLogger(__name__)

EVENT_FUNCTION = "on_aml_event"
TIMER_FUNCTION = "reconcile_rollouts"
STATUS_FUNCTION = "rollout_status"
CONTROL_FUNCTION = "rollout_control"
RESYNC_FUNCTION = "resync_models"
FOLLOWUP_FUNCTION = "follow_up_rollout"


@dataclass
class Delivery:
    """What happened to one event: each attempt's outcome, and whether it was finally acknowledged.

    ``kind`` is the dispatcher's kind of outcome for the acknowledged attempt; ``errors`` what each raising attempt
    raised (the host would have answered 500, and Event Grid redelivered).
    """

    event_id: str
    event_type: str
    subject: str
    attempts: list[str] = field(default_factory=list)
    acknowledged: bool = False
    kind: OutcomeKind | None = None
    errors: list[Exception] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return self.attempts[-1] if self.attempts else "not delivered"


class _Capture(logging.Handler):
    """Collects the dispatcher's one-line outcome, and its kind, for the event being delivered."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.outcomes: list[str] = []
        self.kinds: list[OutcomeKind | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        outcome = getattr(record, "outcome", None)
        if outcome is not None:
            self.outcomes.append(str(outcome))
            kind = getattr(record, "outcome_kind", None)
            self.kinds.append(OutcomeKind(kind) if kind is not None else None)


_INDEX_LOCK = threading.Lock()


def _index() -> tuple[Any, ...]:
    # functools.cache alone lets two threads (a hosted app's timer and a request) both build it on first use.
    with _INDEX_LOCK:
        return _built_index()


@functools.cache
def _built_index() -> tuple[Any, ...]:
    # get_functions() builds the index once; calling it twice re-registers (see CONTEXT §6).
    import function_app

    return tuple(function_app.app.get_functions())


def _functions() -> Mapping[str, Any]:
    return {str(fn.get_function_name()): fn.get_user_function() for fn in _index()}


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function as the app declares it: its route template, methods and auth level."""

    name: str
    route: str  # without the host's route prefix, e.g. ``rollouts/{endpoint}/{deployment}/{action}``
    methods: tuple[str, ...]  # upper case; empty: every method
    auth_level: str  # anonymous | function | admin
    call: Any  # the user function: HttpRequest -> HttpResponse


def http_functions() -> list[HttpFunction]:
    """Every HTTP function of ``function_app.app``, read from its trigger bindings (as the host indexes them)."""
    from azure.functions.decorators.http import HttpTrigger

    found = []
    for fn in _index():
        trigger = fn.get_trigger()
        if not isinstance(trigger, HttpTrigger):
            continue
        name = str(fn.get_function_name())
        methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods or ())
        # The app's own default (FunctionApp(http_auth_level=...)) is FUNCTION, as is the host's.
        level = str(getattr(trigger.auth_level, "value", trigger.auth_level) or "function").lower()
        found.append(HttpFunction(name, trigger.route or name, methods, level, fn.get_user_function()))
    return found


def function_names() -> list[str]:
    return sorted(_functions())


def load_events(path: Path | str) -> list[dict[str, Any]]:
    """Read an event file as Event Grid delivers it: a JSON array (a single object is accepted too)."""
    body = json.loads(Path(path).read_text(encoding="utf-8"))
    return body if isinstance(body, list) else [body]


def to_function_event(body: Mapping[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """Build the trigger argument exactly as the worker does, with its own converter."""
    datum = meta.Datum(json.dumps(body), "json")
    return EventGridEventInConverter.decode(datum, trigger_metadata={})


def deliver(events: Iterable[Mapping[str, Any]], *, max_attempts: int = 3) -> list[Delivery]:
    """Invoke ``on_aml_event`` once per event; redeliver a raising invocation, as Event Grid would (bounded)."""
    function = _functions()[EVENT_FUNCTION]
    deliveries = []
    for body in events:
        delivery = Delivery(
            event_id=str(body.get("id")),
            event_type=str(body.get("eventType") or body.get("type")),
            subject=str(body.get("subject")),
        )
        for _ in range(max_attempts):
            with _captured() as capture:
                try:
                    function(to_function_event(body))
                except Exception as err:  # the host would answer 500; Event Grid redelivers
                    delivery.attempts.append(f"raised {type(err).__name__}: {err}")
                    delivery.errors.append(err)
                    continue
            delivery.attempts.append(capture.outcomes[-1] if capture.outcomes else "acknowledged")
            delivery.kind = capture.kinds[-1] if capture.kinds else None
            delivery.acknowledged = True
            break
        deliveries.append(delivery)
    return deliveries


def tick(past_due: bool = False) -> None:
    """Fire the reconciler's timer once."""
    _functions()[TIMER_FUNCTION](TimerRequest(past_due=past_due))


def resync(past_due: bool = False) -> None:
    """Fire the resync timer once."""
    _functions()[RESYNC_FUNCTION](TimerRequest(past_due=past_due))


def fire(function_name: str, past_due: bool = False) -> None:
    """Fire another timer function once (``purge_history``, the retention timer)."""
    _functions()[function_name](TimerRequest(past_due=past_due))


def follow_up(message_id: str, body: str, dequeue_count: int) -> None:
    """Invoke ``follow_up_rollout`` with a queue message, as the host does after decoding its Base64 body."""
    from azure.functions.queue import QueueMessage

    _functions()[FOLLOWUP_FUNCTION](QueueMessage(id=message_id, body=body, dequeue_count=dequeue_count))


def get_status(params: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """Call ``rollout_status`` as ``GET /api/rollouts`` and return (status code, parsed JSON)."""
    request = func.HttpRequest("GET", "http://localhost/api/rollouts", params=dict(params or {}), body=b"")
    response = _functions()[STATUS_FUNCTION](request)
    return response.status_code, json.loads(response.get_body() or b"null")


def control(
    endpoint: str, deployment: str, action: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """Call ``rollout_control`` as ``POST /api/rollouts/{endpoint}/{deployment}/{action}``: (status, parsed JSON)."""
    request = func.HttpRequest(
        "POST",
        f"http://localhost/api/rollouts/{endpoint}/{deployment}/{action}",
        headers=dict(headers or {}),
        route_params={"endpoint": endpoint, "deployment": deployment, "action": action},
        body=body,
    )
    response = _functions()[CONTROL_FUNCTION](request)
    return response.status_code, json.loads(response.get_body() or b"null")


class _captured:
    """Context manager attaching a ``_Capture`` to the dispatcher's logger."""

    def __enter__(self) -> _Capture:
        self.capture = _Capture()
        self.logger = logging.getLogger("app.intake.dispatch")
        self.previous_level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.capture)
        return self.capture

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.capture)
        self.logger.setLevel(self.previous_level)


def expand(paths: Sequence[Path | str]) -> Iterator[dict[str, Any]]:
    """Every event of every file, in order."""
    for path in paths:
        yield from load_events(path)
