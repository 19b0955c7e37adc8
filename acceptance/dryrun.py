"""A stand-in for "the deployed app plus Event Grid", so the live target's code path can run against the dev kit.

``HostedApp`` is the dev kit's local Functions host (``devkit.host.LocalHost``: the unchanged app's HTTP functions
behind a function key, the Event Grid webhook behind the system key, ``/admin/functions/{timer}`` behind the master
key, the emulator's events forwarded to the webhook, the reconciler's timer on a short period) plus what this suite
needs of the emulator: model deletion, and scoring containers that fail or answer slowly for the shipped models.
Point a ``LiveTarget`` at ``url`` and at the emulator's ARM URL and it runs unchanged.

Two apps can be hosted in one process (a promotion's staging and production apps): one with the process's settings,
the other with ``settings`` of its own, applied around each of its calls; ``APP_LOCK`` lets only one app run at a
time, since the settings are the process's. The production app's ``events`` are the staging app's
``AmlEvents.Model.Promoted``, as the Event Grid subscription from its topic delivers them.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from acceptance.emulator import ContainerSimulator, teach_model_deletion
from devkit._server import Request, Response
from devkit.aml_emulator.health import Health
from devkit.harness import app_environment
from devkit.host import HostKeys, LocalHost

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from devkit.stack import DevStack


#: One hosted app runs at a time: the app's settings are the process's.
APP_LOCK = threading.RLock()

#: The dry run's pace: its scoring load (``ACCEPTANCE_LOAD_RPS``), the timer's period, and how far the emulated
#: clock moves at each tick, so that a 5-minute bake passes in a few seconds.
LOAD_RPS = 30.0
TICK_S = 0.3
EMULATED_S_PER_TICK = 30.0
#: How the shipped models that load answer in a dry run: a narrow tail (P99 1.5x the median), where the emulator's
#: default P99 is 3x. The load above is real HTTP at the wall clock's pace while the bakes run 100 times faster, so
#: an emulated minute holds about 20 requests. With the default tail, a healthy 50% step would fail the 1.5x
#: latency ratio in about 1 run in 30 to 40 ("Low traffic makes the latency ratio noisy" in docs/rollout.md). The
#: dry run proves the live target's path through the app, not the gate's statistics, which the offline suite's
#: heavy load covers (tests/acceptance/test_gate_noise.py).
STEADY_LATENCY = Health(p50_ms=20.0, p99_ms=30.0)


class HostedApp(LocalHost):
    """The in-process app behind HTTP, an Event Grid forwarder and a timer; a context manager."""

    def __init__(
        self,
        stack: DevStack,
        ml: MLClient,
        *,
        function_key: str,
        eventgrid_key: str,
        master_key: str = "",
        tick_s: float = TICK_S,
        forward_s: float = 0.1,
        emulated_s_per_tick: float = 0.0,
        settings: Mapping[str, str] | None = None,
        events: Callable[[], list[Mapping[str, Any]]] | None = None,
        steady: Health | None = STEADY_LATENCY,
    ) -> None:
        keys = HostKeys(function_key, eventgrid_key, master_key or secrets.token_urlsafe(24))
        super().__init__(stack, keys=keys, tick_s=tick_s, followup_s=forward_s, emulated_s_per_tick=emulated_s_per_tick)
        self.containers = ContainerSimulator(stack.aml, ml, steady=steady)
        self.settings = dict(settings) if settings is not None else None
        self._events = events or stack.aml.take_events

    @contextlib.contextmanager
    def _as_app(self) -> Iterator[None]:
        """Run a call of this app: alone in the process, with its own settings if it has any."""
        with APP_LOCK:
            if self.settings is None:
                yield
                return
            with app_environment(self.stack, **self.settings):
                yield

    def handle(self, request: Request) -> Response:
        with self._as_app():
            return super().handle(request)

    def _guarded(self, name: str, step: Callable[[], object]) -> None:
        if name == "forward":  # it posts to this host's webhook, whose handler runs as the app
            super()._guarded(name, step)
            return
        with self._as_app():
            super()._guarded(name, step)

    def _take_events(self) -> list[Mapping[str, Any]]:
        """What this app's Event Grid subscription delivers: by default what the AML emulator published."""
        return list(self._events())

    def __enter__(self) -> HostedApp:
        teach_model_deletion(self.stack.aml)
        super().__enter__()
        return self

    def published(self, event: Mapping[str, Any]) -> None:
        self.containers.on_event(event)
