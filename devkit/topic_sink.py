"""Local HTTPS Event Grid topic that records what EventGridPublisherClient publishes (CloudEvents or EG schema)."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from devkit._server import BackgroundServer, Request, Response
from devkit.identity import TokenIssuer
from devkit.tls import DevCertificateAuthority

logger = logging.getLogger(__name__)

TOPIC_PATH = "/api/events"
EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
CLOUDEVENT_SINGLE = "application/cloudevents+json"


@dataclass(frozen=True)
class ReceivedEvent:
    """One event accepted by the sink, with how it was authenticated."""

    time: float
    event: dict[str, Any]
    content_type: str
    auth: str  # "key" | "bearer"


@dataclass(frozen=True)
class SinkRequest:
    """One POST to the sink, accepted or not."""

    time: float
    status: int
    content_type: str
    api_version: str | None
    event_count: int


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class TopicSink:
    """An Event Grid basic-tier topic at ``https://127.0.0.1:PORT/api/events``.

    Accepts ``aeg-sas-key: <key>`` or ``Authorization: Bearer <devkit token for eventgrid.azure.net>``.
    """

    def __init__(self, ca: DevCertificateAuthority, *, key: str | None = None, issuer: TokenIssuer | None = None):
        self.key = key or secrets.token_urlsafe(32)
        self.issuer = issuer
        self._lock = threading.Lock()
        self._events: list[ReceivedEvent] = []
        self._requests: list[SinkRequest] = []
        self._fail_next: list[int] = []
        self._server = BackgroundServer("topic-sink", self._handle, ca.server_context())
        self.endpoint = f"{self._server.url}{TOPIC_PATH}"
        self.port = self._server.port

    @property
    def env(self) -> dict[str, str]:
        """App settings that point the notifier at this sink."""
        return {"NOTIFY_TOPIC_ENDPOINT": self.endpoint, "NOTIFY_TOPIC_KEY": self.key}

    def start(self) -> TopicSink:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> TopicSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ Python API

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events accepted so far, oldest first, as the JSON objects that were sent."""
        with self._lock:
            return [e.event for e in self._events]

    @property
    def received(self) -> list[ReceivedEvent]:
        """Events accepted so far with their receipt details."""
        with self._lock:
            return list(self._events)

    @property
    def requests(self) -> list[SinkRequest]:
        """Every POST seen (including rejected and failed ones)."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events arrived; return all of them (raises TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events
            if len(events) >= count:
                return events
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink has {len(events)} events, wanted {count}")
            time.sleep(0.02)

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` authenticated publishes with ``status`` (5xx) and drop their events."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def reset(self) -> None:
        """Forget events, requests and pending failures."""
        with self._lock:
            self._events.clear()
            self._requests.clear()
            self._fail_next.clear()

    # ------------------------------------------------------------------ HTTP

    def _handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != TOPIC_PATH:
            return _error(404, "NotFound", f"No topic at {request.path}")
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "Only POST is supported.")
        content_type = request.headers.get("content-type", "")
        response, events = self._accept(request, content_type)
        with self._lock:
            self._requests.append(
                SinkRequest(time.time(), response.status, content_type, request.query.get("api-version"), len(events))
            )
        return response

    def _authenticate(self, request: Request) -> str | None:
        presented = request.headers.get("aeg-sas-key")
        if presented is not None:
            return "key" if hmac.compare_digest(presented.encode(), self.key.encode()) else None
        authorization = request.headers.get("authorization")
        if authorization and self.issuer is not None:
            return "bearer" if self.issuer.verify_authorization(authorization, EVENTGRID_AUDIENCE) else None
        return None

    def _accept(self, request: Request, content_type: str) -> tuple[Response, list[dict[str, Any]]]:
        auth = self._authenticate(request)
        if auth is None:
            logger.warning("topic sink rejected a publish: missing or wrong credentials")
            return _error(401, "Unauthorized", "The request authorization key or token is not valid."), []
        with self._lock:
            failing = self._fail_next.pop(0) if self._fail_next else None
        if failing is not None:
            return _error(failing, "ServiceUnavailable", "Injected failure (devkit)."), []
        try:
            payload = json.loads(request.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "BadRequest", "The request body is not valid JSON."), []
        media_type = content_type.split(";")[0].strip().lower()
        if media_type == CLOUDEVENT_SINGLE and isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
            return _error(400, "BadRequest", "Expected a JSON array of events."), []
        if media_type in {CLOUDEVENTS_BATCH, CLOUDEVENT_SINGLE}:
            missing = [e.get("id") for e in payload if not all(k in e for k in ("id", "source", "type", "specversion"))]
            if missing:
                return _error(400, "BadRequest", "CloudEvents need id, source, type and specversion."), []
        now = time.time()
        with self._lock:
            self._events.extend(ReceivedEvent(now, e, media_type, auth) for e in payload)
        logger.debug("topic sink accepted %d events", len(payload))
        return Response(200, b"", {"Content-Type": "text/plain"}), payload
