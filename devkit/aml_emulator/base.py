"""What every area of the emulator may use from the others, declared once for the type checker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random
    import threading
    from collections.abc import Callable, Mapping

    from devkit._server import Request, Response
    from devkit.aml_emulator.health import Outcome
    from devkit.aml_emulator.registries import RegistryModelVersion
    from devkit.aml_emulator.rules import EndpointNameRegistry
    from devkit.aml_emulator.state import Job, ModelVersion, Operation, Resource
    from devkit.aml_emulator.traffic import EmulatedClock, Sample
    from devkit.identity import TokenIssuer


class AreaBase:
    """Declares, for the type checker only, the shared state and the cross-area methods each area may call.

    Every ``...Area`` mixin inherits it; :class:`~devkit.aml_emulator.server.AmlEmulator` composes the areas and so
    really has all of it. At run time it adds nothing: the attributes are bare annotations and the methods exist only
    under ``TYPE_CHECKING``, so attribute and method lookups find the real definitions, named beside each group.
    State that only one area uses stays declared in that area.
    """

    # Set in AmlEmulator.__init__ (server.py).
    _lock: threading.RLock
    subscription_id: str
    workspace_name: str
    location: str
    issuer: TokenIssuer | None
    url: str
    names: EndpointNameRegistry

    # Set in AmlEmulator.reset (server.py).
    _models: dict[str, dict[str, ModelVersion]]
    _endpoints: dict[str, Resource]
    _deployments: dict[str, dict[str, Resource]]
    _jobs: dict[str, Job]
    _keys: dict[str, tuple[str, str]]
    _failing_deployments: set[str]
    _failing_jobs: set[str]

    # Set in TrafficArea._reset_traffic (traffic.py).
    _clock: EmulatedClock

    if TYPE_CHECKING:
        # AmlEmulator (server.py).
        @property
        def workspace_id(self) -> str: ...

        def _page(self, request: Request, items: list[dict[str, Any]], page_size: int = 100) -> Response: ...

        # OperationsArea (operations.py).
        def _advance(self) -> None: ...

        def _start_operation(
            self, action: str, endpoint: str, deployment: str | None, api_version: str
        ) -> Operation: ...

        def _check_not_busy(self, endpoint: str) -> None: ...

        def _lro_response(self, status: int, op: Operation, body: Any = None) -> Response: ...

        def _render(self, res: Resource) -> dict[str, Any]: ...

        def _wait_until_ended(self, pending: Callable[[], list[float]], what: str, timeout_s: float) -> None: ...

        # EndpointsArea (endpoints.py).
        def _get_endpoint_resource(self, name: str) -> Resource: ...

        def _tracked_resource(
            self,
            path: str,
            name: str,
            kind: str,
            body: Mapping[str, Any],
            props: dict[str, Any],
            created_at: float,
            **extra: Any,
        ) -> dict[str, Any]: ...

        # DeploymentsArea (deployments.py).
        def _deployment_body(
            self, endpoint: str, name: str, body: Mapping[str, Any], created_at: float
        ) -> dict[str, Any]: ...

        # OutboxArea (outbox.py).
        def _emit(self, event_type: str, subject: str, data: Mapping[str, Any], at: float) -> None: ...

        def _announce_ended_jobs(self) -> None: ...

        # ScoringArea (scoring.py).
        def _scoring_properties(self, endpoint: str) -> dict[str, str]: ...

        def configure_scoring(self, *, seed: int | None = None, sleep_scale: float | None = None) -> None: ...

        # TrafficArea (traffic.py).
        def advance_clock(self, seconds: float) -> None: ...

        def samples(self, endpoint: str, since: float | None = None, until: float | None = None) -> list[Sample]: ...

        def _run_load(self, until: float) -> None: ...

        def _route_and_record(
            self,
            ep: Resource,
            header: str | None,
            rng: random.Random,
            *,
            at: float,
            bad_input: bool = False,
            synthetic: bool = False,
        ) -> tuple[Resource, Outcome]: ...

        # LimitsArea (limits.py).
        def _limits_control(self, method: str, route: str, body: Mapping[str, Any]) -> Response | None: ...

        # MetricsArea (metrics.py).
        def set_metric_lag(self, seconds: float) -> None: ...

        # MonitorOutageArea (monitor_outage.py).
        def _monitor_outage_answer(self, request: Request) -> Response | None: ...

        # RegistriesArea (discovery.py).
        def _registry_model_for(self, ref: str) -> RegistryModelVersion | None: ...
