"""A stand-in for "the deployed app plus Event Grid", so the live target's code path can run against the dev kit.

``HostedApp`` serves the unchanged app's functions over HTTP the way the Functions host exposes them
(``GET /api/rollouts`` and ``POST /api/rollouts/{endpoint}/{deployment}/{action}`` behind a function key,
``POST /runtime/webhooks/eventgrid`` behind the Event Grid system
key, ``POST /admin/functions/{timer}`` behind the master key when one is given), forwards what the AML emulator
publishes to that webhook as Event Grid would, fires the reconciler's timer on a short period and delivers the
follow-up queue's messages as its trigger would. Point a ``LiveTarget`` at ``url`` and at the emulator's ARM URL and
it runs unchanged.

Two apps can be hosted in one process (a promotion's staging and production apps): one with the process's
settings, the other with ``settings`` of its own, applied around each of its calls; ``APP_LOCK`` lets only one app
run at a time, since the settings are the process's. The production app's ``events`` are the staging app's
``AmlEvents.Model.Promoted``, as the Event Grid subscription from its topic delivers them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests

from app.platform import clock
from devkit import runner
from devkit._server import BackgroundServer, Request, Response
from devkit.harness import OfflineApp, app_environment

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from devkit.stack import DevStack

from acceptance.emulator import ContainerSimulator, teach_model_deletion
from acceptance.live import EVENT_FUNCTION

logger = logging.getLogger(__name__)

#: One hosted app runs at a time: the app's settings are the process's.
APP_LOCK = threading.RLock()


class HostedApp:
    """The in-process app behind HTTP, an Event Grid forwarder and a timer; a context manager."""

    def __init__(
        self,
        stack: DevStack,
        ml: MLClient,
        *,
        function_key: str,
        eventgrid_key: str,
        master_key: str = "",
        tick_s: float = 0.3,
        forward_s: float = 0.1,
        emulated_s_per_tick: float = 0.0,
        settings: Mapping[str, str] | None = None,
        events: Callable[[], list[Mapping[str, Any]]] | None = None,
    ) -> None:
        self.stack = stack
        self.function_key = function_key
        self.eventgrid_key = eventgrid_key
        self.master_key = master_key
        self.tick_s = tick_s
        self.forward_s = forward_s
        self.emulated_s_per_tick = emulated_s_per_tick
        self._following: contextlib.AbstractContextManager[None] | None = None
        self.containers = ContainerSimulator(stack.aml, ml)
        self._server = BackgroundServer("hosted-app", self._handle)
        self.url = self._server.url
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.deliveries: list[runner.Delivery] = []
        self.errors: list[str] = []
        self.settings = dict(settings) if settings is not None else None
        self._events = events or stack.aml.take_events
        self._followups = OfflineApp(stack)

    @contextlib.contextmanager
    def _as_app(self) -> Iterator[None]:
        """Run a call of this app: alone in the process, with its own settings if it has any."""
        with APP_LOCK:
            if self.settings is None:
                yield
                return
            with app_environment(self.stack, **self.settings):
                yield

    def __enter__(self) -> HostedApp:
        teach_model_deletion(self.stack.aml)
        if self.emulated_s_per_tick:
            # Time lapse: the app reads the emulator's clock, which moves ``emulated_s_per_tick`` at each timer tick
            # on top of the wall clock, so a 5-minute bake lasts a few seconds of the suite's real requests.
            aml = self.stack.aml
            self._following = clock.following(lambda: dt.datetime.fromtimestamp(aml.clock_now(), dt.UTC))
            self._following.__enter__()
        self._server.start()
        for name, loop in (("event-grid", self._forward_loop), ("timer", self._timer_loop)):
            thread = threading.Thread(target=loop, name=f"hosted-app-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._server.stop()
        if self._following is not None:
            self._following.__exit__(None, None, None)
            self._following = None

    # ------------------------------------------------------------------ the Functions host's HTTP surface

    def _handle(self, request: Request) -> Response:
        with self._as_app():
            return self._route(request)

    def _route(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/api/rollouts":
            key = request.headers.get("x-functions-key") or request.query.get("code")
            if key != self.function_key:
                return Response(401)
            params = {k: v for k, v in request.query.items() if k != "code"}
            code, body = runner.get_status(params)
            return Response(code, body)
        parts = request.path.split("/")
        if request.method == "POST" and len(parts) == 6 and parts[1:3] == ["api", "rollouts"]:
            key = request.headers.get("x-functions-key") or request.query.get("code")
            if key != self.function_key:
                return Response(401)
            code, body = runner.control(parts[3], parts[4], parts[5], request.body, dict(request.headers))
            return Response(code, body)
        if request.method == "POST" and request.path.lower() == "/runtime/webhooks/eventgrid":
            if request.query.get("code") != self.eventgrid_key:
                return Response(401)
            if request.query.get("functionName") != EVENT_FUNCTION:
                return Response(404, {"error": f"no function {request.query.get('functionName')!r}"})
            if request.headers.get("aeg-event-type") != "Notification":
                return Response(400, {"error": "aeg-event-type must be Notification"})
            deliveries = runner.deliver(json.loads(request.body), max_attempts=1)
            self.deliveries.extend(deliveries)
            # The host answers 500 when the function raised, so Event Grid redelivers.
            return Response(202 if all(d.acknowledged for d in deliveries) else 500)
        if request.method == "POST" and request.path.startswith("/admin/functions/") and self.master_key:
            # How the host runs a non-HTTP function on demand: the master key, a JSON body, 202 Accepted
            # (https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http).
            if request.headers.get("x-functions-key") != self.master_key:
                return Response(401)
            timers = {runner.TIMER_FUNCTION: runner.tick, runner.RESYNC_FUNCTION: runner.resync}
            name = request.path.removeprefix("/admin/functions/")
            if name not in timers:
                return Response(404, {"error": f"no timer function {name!r}"})
            timers[name]()
            return Response(202)
        return Response(404)

    # ------------------------------------------------------------------ Event Grid and the timer

    def _forward_loop(self) -> None:
        session = requests.Session()
        pending: list[Mapping[str, Any]] = []
        while not self._stop.wait(self.forward_s):
            try:
                for event in self._events():
                    self.containers.on_event(event)
                    pending.append(event)
                while pending:
                    response = session.post(
                        f"{self.url}/runtime/webhooks/eventgrid",
                        params={"functionName": EVENT_FUNCTION, "code": self.eventgrid_key},
                        headers={"aeg-event-type": "Notification"},
                        json=[dict(pending[0])],
                        timeout=30,
                    )
                    if response.status_code >= 300:
                        break  # Event Grid retries later
                    pending.pop(0)
            except Exception as err:
                logger.exception("event forwarding failed")
                self.errors.append(f"forward: {type(err).__name__}: {err}")
        session.close()

    def _timer_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                if self.emulated_s_per_tick:
                    self.stack.aml.advance_clock(self.emulated_s_per_tick)
                with self._as_app():
                    runner.tick()
                    self._followups.drain_followups()  # the queue trigger's work: follow-ups, promotions
            except Exception as err:
                logger.exception("reconciler tick failed")
                self.errors.append(f"tick: {type(err).__name__}: {err}")
