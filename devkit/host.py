"""A local stand-in for the Functions host: the app's real HTTP functions on 127.0.0.1, and its triggers kept moving.

What it serves, the way the host does (Core Tools cannot run here; CONTEXT §6):

- every HTTP function ``function_app.app`` declares, found from its trigger bindings (route template, methods,
  auth level; ``runner.http_functions``), under the route prefix of host.json (default ``api``). ``FUNCTION``
  level asks for a function key or the master key, ``ADMIN`` for the master key, in the ``x-functions-key``
  header or the ``code`` query parameter; a missing or wrong key is 401 (learn.microsoft.com/azure/
  azure-functions/function-keys-how-to, "Authorization level");
- the Event Grid webhook, ``POST /runtime/webhooks/EventGrid?functionName=on_aml_event``, behind the
  ``eventgrid_extension`` system key: ``aeg-event-type: Notification`` with a JSON array of events, one
  invocation per event, 202 when every invocation returned and 500 when one raised (Event Grid then redelivers);
  ``SubscriptionValidation`` is answered by the host itself (learn.microsoft.com/azure/azure-functions/
  functions-bindings-event-grid-trigger, "Local testing"; learn.microsoft.com/azure/event-grid/webhook-event-delivery);
- ``POST /admin/functions/{name}`` behind the master key runs a timer function now
  (learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http).

What it keeps moving, in one background thread: the reconciler's timer, the follow-up queue (its due messages
go to ``follow_up_rollout`` as the queue trigger would), what the AML emulator publishes (forwarded to the webhook
as Event Grid would) and, when asked, a synthetic load on every endpoint so the metric gates have requests to judge.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import requests

from app.platform import clock
from devkit import runner
from devkit._server import BackgroundServer, Request, Response

if TYPE_CHECKING:
    from devkit.stack import DevStack

logger = logging.getLogger(__name__)

WEBHOOK = "/runtime/webhooks/eventgrid"
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"


def route_prefix(host_json: Path = HOST_JSON) -> str:
    """host.json ``extensions.http.routePrefix``; the host's default is ``api``."""
    body = json.loads(host_json.read_text(encoding="utf-8"))
    return str(body.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip("/")


@dataclass(frozen=True)
class HostKeys:
    """The keys the host would hold: a default function key, the Event Grid extension's system key, the master key."""

    function: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    eventgrid: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    master: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def _template(route: str) -> re.Pattern[str]:
    """A route template (``rollouts/{endpoint}/{deployment}/{action}``, ``{id:int}``, ``{name?}``) as a regex."""
    pattern = ""
    for part in route.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)(?::[^}?]+)?(\?)?\}", part)
        if match:
            pattern += f"(?:/(?P<{match[1]}>[^/]+))?" if match[2] else f"/(?P<{match[1]}>[^/]+)"
        else:
            pattern += "/" + re.escape(part)
    return re.compile(pattern + "/?", re.IGNORECASE)


class LocalHost:
    """The Functions host's HTTP surface and triggers for the in-process app; a context manager."""

    def __init__(
        self,
        stack: DevStack,
        *,
        keys: HostKeys | None = None,
        port: int = 0,
        tick_s: float = 2.0,
        followup_s: float = 0.5,
        emulated_s_per_tick: float = 0.0,
        load_rpm: float = 0.0,
    ) -> None:
        self.stack = stack
        self.keys = keys or HostKeys()
        self.tick_s, self.followup_s = tick_s, followup_s
        self.emulated_s_per_tick, self.load_rpm = emulated_s_per_tick, load_rpm
        prefix = route_prefix()
        self._routes = [(_template(f"{prefix}/{fn.route}"), fn) for fn in runner.http_functions()]
        self._server = BackgroundServer("functions-host", self.handle, port=port)
        self.url = self._server.url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._following: contextlib.AbstractContextManager[None] | None = None
        self._loaded: set[str] = set()
        self.deliveries: list[runner.Delivery] = []
        self.errors: list[str] = []
        self.ticks = 0
        #: Called between two rounds of the trigger loop (tests use it to wait on a condition, not a sleep).
        self.on_round: Callable[[], None] | None = None

    def __enter__(self) -> LocalHost:
        if self.emulated_s_per_tick:
            # Time lapse: the app reads the emulator's clock, which moves ``emulated_s_per_tick`` at each timer
            # tick on top of the wall clock, so a 10-minute bake passes in a few ticks.
            aml = self.stack.aml
            self._following = clock.following(lambda: dt.datetime.fromtimestamp(aml.clock_now(), dt.UTC))
            self._following.__enter__()
        self._server.start()
        self._thread = threading.Thread(target=self._triggers, name="functions-host-triggers", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server.stop()
        if self._following is not None:
            self._following.__exit__(None, None, None)
            self._following = None

    # ------------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.lower() == WEBHOOK:
            return self._event_grid(request)
        if path.startswith("/admin/functions/") and request.method == "POST":
            return self._admin(request, path.removeprefix("/admin/functions/"))
        for pattern, function in self._routes:
            match = pattern.fullmatch(path)
            if match and (not function.methods or request.method in function.methods):
                if not self._authorized(request, function.auth_level):
                    return Response(401)
                return self._invoke(function, request, {k: v for k, v in match.groupdict().items() if v is not None})
        return Response(404)

    def _key_of(self, request: Request) -> str:
        return request.headers.get("x-functions-key") or request.query.get("code") or ""

    def _authorized(self, request: Request, level: str) -> bool:
        allowed = {"anonymous": None, "function": (self.keys.function, self.keys.master), "admin": (self.keys.master,)}
        keys = allowed.get(level, (self.keys.master,))
        given = self._key_of(request)
        return keys is None or any(given and secrets.compare_digest(given, key) for key in keys)

    def _invoke(self, function: runner.HttpFunction, request: Request, route_params: Mapping[str, str]) -> Response:
        http = func.HttpRequest(
            request.method,
            f"{self.url}{request.path}",
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=dict(route_params),
            body=request.body,
        )
        answer = function.call(http)
        mimetype = answer.mimetype or "text/plain"
        content_type = f"{mimetype}; charset={answer.charset}" if answer.charset else mimetype
        headers = {**{k: v for k, v in answer.headers.items() if k.lower() != "content-length"}}
        headers["Content-Type"] = content_type
        return Response(answer.status_code, answer.get_body() or b"", headers)

    def _event_grid(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405)
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        if not any(given and secrets.compare_digest(given, key) for key in (self.keys.eventgrid, self.keys.master)):
            return Response(401)
        kind = request.headers.get("aeg-event-type", "")
        try:
            body: Any = json.loads(request.body or b"null")
        except ValueError:
            return Response(400, {"error": "the body must be a JSON array of events"})
        if kind == "SubscriptionValidation":
            first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
            return Response(200, {"validationResponse": (first.get("data") or {}).get("validationCode")})
        if kind != "Notification":
            return Response(400, {"error": "aeg-event-type must be Notification or SubscriptionValidation"})
        if request.query.get("functionName") != runner.EVENT_FUNCTION:
            return Response(404, {"error": f"no Event Grid function {request.query.get('functionName')!r}"})
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            return Response(400, {"error": "the body must be a JSON array of event objects"})
        deliveries = runner.deliver(body, max_attempts=1)
        self.deliveries.extend(deliveries)
        return Response(202 if all(d.acknowledged for d in deliveries) else 500)

    def _admin(self, request: Request, name: str) -> Response:
        if not secrets.compare_digest(self._key_of(request) or "-", self.keys.master):
            return Response(401)
        timers = {runner.TIMER_FUNCTION, runner.RESYNC_FUNCTION, "purge_history"}
        if name not in timers:
            return Response(404, {"error": f"no timer function {name!r}; one of {', '.join(sorted(timers))}"})
        runner.fire(name)
        return Response(202)

    # ------------------------------------------------------------------ triggers

    def _triggers(self) -> None:
        from devkit.harness import OfflineApp

        app, session = OfflineApp(self.stack), requests.Session()
        pending: list[Mapping[str, Any]] = []
        next_tick = time.monotonic() + self.tick_s
        while not self._stop.is_set():
            self._guarded("forward", lambda: self._forward(session, pending))
            self._guarded("follow-ups", app.drain_followups)
            self._guarded("load", self._load)
            if time.monotonic() >= next_tick:
                self._guarded("tick", self._tick)
                next_tick = time.monotonic() + self.tick_s
            if self.on_round is not None:
                self.on_round()
            self._stop.wait(self.followup_s)
        session.close()

    def _guarded(self, name: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as err:
            logger.exception("local host: %s failed", name)
            self.errors.append(f"{name}: {type(err).__name__}: {err}")

    def _tick(self) -> None:
        if self.emulated_s_per_tick:
            self.stack.aml.advance_clock(self.emulated_s_per_tick)
        runner.tick()
        self.ticks += 1

    def _take_events(self) -> list[Mapping[str, Any]]:
        """The events this app's Event Grid subscription delivers next: what the AML emulator published."""
        return list(self.stack.aml.take_events())

    def _forward(self, session: requests.Session, pending: list[Mapping[str, Any]]) -> None:
        """What the subscription delivers (``_take_events``) goes to the webhook, one event per request; a failure is
        retried later."""
        for event in self._take_events():
            self.published(event)
            pending.append(event)
        while pending:
            response = session.post(
                f"{self.url}{WEBHOOK}",
                params={"functionName": runner.EVENT_FUNCTION, "code": self.keys.eventgrid},
                headers={"aeg-event-type": "Notification"},
                json=[dict(pending[0])],
                timeout=30,
            )
            if response.status_code >= 300:
                return  # Event Grid retries later
            pending.pop(0)

    def published(self, event: Mapping[str, Any]) -> None:
        """Called for each event the AML emulator published, before it is forwarded (a subclass may react)."""

    def _load(self) -> None:
        """A steady synthetic load on each endpoint once it exists (the callers a real endpoint would have)."""
        if not self.load_rpm:
            return
        for name in self.stack.aml.snapshot()["endpoints"]:
            if name.lower() not in self._loaded:
                self.stack.aml.start_load(name, rpm=self.load_rpm, seed=len(self._loaded))
                self._loaded.add(name.lower())
