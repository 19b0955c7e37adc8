"""The emulator's server: lifecycle, HTTPS handling, routing, auth, workspace checks, paging and control API."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from devkit._server import BackgroundServer, Request, Response
from devkit.aml_emulator.batch_metrics import BATCH_PATH, MetricsBatchArea
from devkit.aml_emulator.control import CONTROL_PREFIX, ControlArea
from devkit.aml_emulator.deployments import DeploymentsArea
from devkit.aml_emulator.discovery import METADATA_PATH, RegistriesArea
from devkit.aml_emulator.endpoints import EndpointsArea
from devkit.aml_emulator.faults import FaultPlan, FaultsArea, RequestRule
from devkit.aml_emulator.jobs import DEFAULT_JOB_DURATION_S, JobsArea
from devkit.aml_emulator.limits import ARM_API, BATCH_API, LimitsArea
from devkit.aml_emulator.metrics import MetricsArea
from devkit.aml_emulator.models import ModelsArea
from devkit.aml_emulator.monitor_outage import MonitorOutageArea
from devkit.aml_emulator.operations import DEFAULT_OPERATION_DURATION_S, DEFAULT_POLL_INTERVAL_S, OperationsArea
from devkit.aml_emulator.outbox import OutboxArea
from devkit.aml_emulator.rules import EndpointNameRegistry
from devkit.aml_emulator.scoring import SCORING_PREFIX, ScoringArea
from devkit.aml_emulator.state import (
    PROVIDER,
    ArmError,
    ComponentVersion,
    Job,
    LoggedRequest,
    ModelVersion,
    Operation,
    Resource,
    _now,
)
from devkit.aml_emulator.traffic import TrafficArea
from devkit.identity import TokenIssuer
from devkit.tls import DevCertificateAuthority

logger = logging.getLogger(__name__)

#: The audience of Azure Monitor's data-plane metrics API (MetricsClient's default scope).
METRICS_AUDIENCE = "https://metrics.monitor.azure.com"


_WORKSPACE_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    + re.escape(PROVIDER)
    + r"/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_OPERATION_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/"
    + re.escape(PROVIDER)
    + r"/locations/(?P<loc>[^/]+)/(?P<kind>mfeOperationsStatus|mfeOperationResults)/(?P<op>[^/]+)$",
    re.IGNORECASE,
)


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class AmlEmulator(
    ModelsArea,
    EndpointsArea,
    DeploymentsArea,
    OperationsArea,
    JobsArea,
    OutboxArea,
    FaultsArea,
    ControlArea,
    ScoringArea,
    TrafficArea,
    MetricsArea,
    LimitsArea,
    MetricsBatchArea,
    MonitorOutageArea,
    RegistriesArea,
):
    """ARM for an Azure ML workspace, over HTTPS, with LROs, AML's write rules, faults and a request log.

    Point azure-ai-ml at it with ``AZUREML_DEV_URL_MFE=`` :attr:`url` and the mgmt SDK with ``base_url=`` :attr:`url`.
    Everything is also controllable over HTTP under ``/_emulator/`` (see :meth:`_control`).
    More workspaces (same subscription) can be served on the same URL with :meth:`add_workspace`; endpoint names are
    then unique per region across all of them, as in Azure. Registries (:meth:`add_registry`) are served on the same
    URL too, on ARM and on the registry data plane that azure-ai-ml discovers (``discovery.py``).
    """

    def __init__(
        self,
        ca: DevCertificateAuthority | None,
        *,
        subscription_id: str,
        resource_group: str,
        workspace_name: str,
        location: str = "eastus",
        issuer: TokenIssuer | None = None,
        operation_duration_s: float = DEFAULT_OPERATION_DURATION_S,
        host: AmlEmulator | None = None,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace_name
        self.location = location
        self.issuer = issuer
        self.default_operation_duration_s = operation_duration_s
        self.workspace_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_id.lower()))
        self._lock = threading.RLock()
        self._generation = 0  # how many resets: a request in flight across one is not logged after it
        self._host = host
        self._workspaces: list[AmlEmulator] = []  # the other workspaces served on this URL (host only)
        self._server: BackgroundServer | None = None
        self.url: str
        self.port: int
        self.names: EndpointNameRegistry
        if host is not None:
            self.url, self.port, self.names = host.url, host.port, host.names
        elif ca is not None:
            self._server = BackgroundServer("aml-emulator", self._handle, ca.server_context())
            self.url, self.port = self._server.url, self._server.port
            self.names = EndpointNameRegistry(lambda: self._clock.now())
        else:
            raise ValueError("AmlEmulator needs a certificate authority to serve HTTPS (or a host to serve it)")
        self._routes: list[Route] = []
        self._register_routes()
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AmlEmulator:
        """Start serving; returns self."""
        if self._server is not None:
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> AmlEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM id (also the Event Grid topic of its events)."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace_name}"
        )

    def add_workspace(
        self,
        workspace_name: str,
        *,
        location: str | None = None,
        resource_group: str | None = None,
        subscription_id: str | None = None,
    ) -> AmlEmulator:
        """Serve another workspace on this URL; returns its emulator (a full one: its own models, endpoints, outbox).

        Reach it through ARM with its own workspace (and resource group, and subscription) name: e.g. the mgmt SDK's
        ``online_endpoints.begin_create_or_update(rg, workspace_name, ...)``. ``location``, ``resource_group`` and
        ``subscription_id`` default to this one's (a production workspace often lives in a subscription of its own);
        endpoint names are unique per region across every workspace served here (see :class:`EndpointNameRegistry`).
        Requests to it are logged, faulted and ruled by this (the host) emulator. :meth:`reset` of the host forgets it.
        """
        if self._host is not None:
            return self._host.add_workspace(
                workspace_name, location=location, resource_group=resource_group, subscription_id=subscription_id
            )
        rg = resource_group or self.resource_group
        sub = subscription_id or self.subscription_id
        if self._workspace_for(sub, rg, workspace_name) is not None:
            raise ValueError(f"workspace '{workspace_name}' in resource group '{rg}' is already served")
        sibling = AmlEmulator(
            None,
            subscription_id=sub,
            resource_group=rg,
            workspace_name=workspace_name,
            location=location or self.location,
            issuer=self.issuer,
            operation_duration_s=self.default_operation_duration_s,
            host=self,
        )
        with self._lock:
            self._workspaces.append(sibling)
        return sibling

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Block until no operation is in progress here or in any workspace added with :meth:`add_workspace`."""
        super().wait_idle(timeout_s)
        for sibling in list(self._workspaces):
            sibling.wait_idle(timeout_s)

    def set_clock(
        self, now: str | float | datetime | None = None, *, frozen: bool | None = None, rate: float | None = None
    ) -> None:
        """As :meth:`TrafficArea.set_clock`, for every workspace served here (they share one clock)."""
        self._catch_up_siblings()
        super().set_clock(now, frozen=frozen, rate=rate)

    def advance_clock(self, seconds: float) -> None:
        """As :meth:`TrafficArea.advance_clock`, for every workspace served here (they share one clock)."""
        self._catch_up_siblings()
        super().advance_clock(seconds)

    def _catch_up_siblings(self) -> None:
        # Synthetic load up to now, in each added workspace, with the routing in force before time jumps.
        for sibling in list(self._workspaces):
            with sibling._lock:
                sibling._run_load(sibling._clock.now())

    def workspace(self, workspace_name: str) -> AmlEmulator:
        """The emulator of a workspace served on this URL, by name (this one included)."""
        for ws in [self, *self._workspaces]:
            if ws.workspace_name.lower() == workspace_name.lower():
                return ws
        raise KeyError(f"no workspace '{workspace_name}' is served here")

    def _workspace_for(self, sub: str, rg: str, ws: str) -> AmlEmulator | None:
        for candidate in [self, *self._workspaces]:
            if (
                candidate.subscription_id.lower() == sub.lower()
                and candidate.resource_group.lower() == rg.lower()
                and candidate.workspace_name.lower() == ws.lower()
            ):
                return candidate
        return None

    def set_endpoint_name_hold(self, seconds: float) -> None:
        """Keep a deleted endpoint's name unusable in its region for ``seconds`` (as AML can; default 0)."""
        self.names.hold_after_delete_s = seconds

    # ------------------------------------------------------------------ Python control API

    def reset(self) -> None:
        """Forget all models, endpoints, deployments, jobs, faults, rules and logged requests; restore defaults.

        On the host, also forget the workspaces added with :meth:`add_workspace` and every held endpoint name.
        """
        if self._host is None:
            self._workspaces = []
            self._registries = {}
            self.names.reset()
        with self._lock:
            self._models: dict[str, dict[str, ModelVersion]] = {}
            self._model_containers: dict[str, dict[str, Any]] = {}
            self._endpoints: dict[str, Resource] = {}
            self._deployments: dict[str, dict[str, Resource]] = {}
            self._operations: dict[str, Operation] = {}
            self._jobs: dict[str, Job] = {}
            self._components: dict[str, dict[str, ComponentVersion]] = {}
            self._component_sequence = 0
            self._outbox: list[dict[str, Any]] = []
            self._keys: dict[str, tuple[str, str]] = {}
            self._log: list[LoggedRequest] = []
            self._generation += 1
            self._faults = FaultPlan()
            self._rng = random.Random(0)
            self._failing_deployments: set[str] = set()
            self._failing_jobs: set[str] = set()
            self._rules: list[RequestRule] = []
            self.release_stalls()
            self._scripted_outcomes: dict[tuple[str, str | None], list[str]] = {}
            self._model_read_lag: tuple[float, str | None] = (0.0, None)
            self.operation_duration_s = self.default_operation_duration_s
            self.operation_durations = {}
            self.poll_interval_s = DEFAULT_POLL_INTERVAL_S
            self.job_duration_s = DEFAULT_JOB_DURATION_S
            self._reset_traffic()
            if self._host is not None:
                self._clock = self._host._clock  # one time for every workspace served here, as in one Azure
            self._reset_scoring()
            self._reset_metrics()
            self._reset_monitor_outages()
            self._reset_limits()

    def requests(
        self, *, method: str | None = None, path_contains: str | None = None, since: float | None = None
    ) -> list[LoggedRequest]:
        """ARM requests seen so far, oldest first, optionally filtered."""
        with self._lock:
            log = list(self._log)
        return [
            r
            for r in log
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains.lower() in r.path.lower())
            and (since is None or r.time >= since)
        ]

    def request_counts(self, since: float | None = None) -> dict[str, int]:
        """``{"reads": n, "writes": n, "total": n}`` of ARM requests (as ARM's quotas count them; the data-plane
        ``metrics:getBatch`` calls are not ARM requests)."""
        log = [r for r in self.requests(since=since) if r.api == ARM_API]
        writes = sum(1 for r in log if r.is_write)
        return {"reads": len(log) - writes, "writes": writes, "total": len(log)}

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary of models, endpoints (with traffic) and deployments."""
        with self._lock:
            self._advance()
            return {
                "models": [
                    {"name": m.name, "version": m.version, "type": m.model_type, "tags": m.tags}
                    for versions in self._models.values()
                    for m in versions.values()
                ],
                "endpoints": {
                    e.name: {
                        "provisioningState": e.state,
                        "traffic": e.body["properties"].get("traffic", {}),
                        "mirrorTraffic": e.body["properties"].get("mirrorTraffic", {}),
                        "deployments": {d.name: d.state for d in self._deployments.get(key, {}).values()},
                    }
                    for key, e in self._endpoints.items()
                },
                "jobs": {j.name: self._job_status(j) for j in self._jobs.values() if not j.parent},
                "components": {
                    c.name: sorted(v.version for v in versions.values())
                    for versions in self._components.values()
                    for c in list(versions.values())[:1]
                },
                "registries": {
                    registry.name: [
                        {"name": m.name, "version": m.version, "stage": m.stage, "state": m.state, "tags": m.tags}
                        for m in registry.models()
                    ]
                    for registry in (self._registries.values() if self._host is None else ())
                },
            }

    # ------------------------------------------------------------------ HTTP entry

    def _handle(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            try:
                return self._control(request)
            except ArmError as err:
                return err.response()
            except (ValueError, TypeError, KeyError) as err:
                return ArmError(400, "BadRequest", f"bad control request: {err}").response()
        if request.path.startswith(SCORING_PREFIX):
            return self._handle_scoring(request)  # the data plane: its own auth, not in the ARM request log
        if request.path == METADATA_PATH and request.method == "GET":
            return self._cloud_metadata(request)  # the dev kit's cloud, for azure-ai-ml (discovery.py); not logged
        started = _now()
        with self._lock:
            latency, generation = self._faults.latency_ms, self._generation
        if latency:
            time.sleep(latency / 1000.0)
        injected = False
        rule: RequestRule | None = None
        api = BATCH_API if BATCH_PATH.match(request.path) else ARM_API
        principal, limit_headers = self._principal(request), dict[str, str]()
        try:
            response = self._authorize(request, METRICS_AUDIENCE if api == BATCH_API else None)
            if response is None:
                response, limit_headers = self._throttle(request, api, principal)
                injected = response is not None
            if response is None:
                response, rule = self._apply_rules(request, self._route)
                injected = rule is not None and rule.kind != "stall"
            if response is None:
                response = self._inject_fault(request)
                injected = response is not None
            if response is None:
                response = self._route(request)
        except ArmError as err:
            response = err.response()
        except json.JSONDecodeError as err:
            response = ArmError(400, "BadRequest", f"The request body is not valid JSON: {err}").response()
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        for name, value in limit_headers.items():
            response.headers.setdefault(name, value)
        entry = LoggedRequest(
            time=started,
            method=request.method,
            path=request.path,
            api_version=request.query.get("api-version"),
            status=response.status,
            duration_ms=(_now() - started) * 1000.0,
            injected=injected,
            query=dict(request.query),
            rule=rule.id if rule is not None else None,
            api=api,
            principal=principal,
            body=_write_body(request),
        )
        with self._lock:
            if generation == self._generation:  # a request from before a reset is not in the log after it
                self._log.append(entry)
        logger.debug("ARM %s %s -> %d", request.method, request.path, response.status)
        return response

    def _authorize(self, request: Request, audience: str | None = None) -> Response | None:
        """401 unless the bearer token is the devkit's for ``audience`` (by default the audiences of the path)."""
        auth = request.headers.get("authorization")
        if not auth or not auth.lower().startswith("bearer "):
            err = ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            return err.response()
        audiences = (audience,) if audience else self._audiences(request.path)
        if self.issuer is not None and not any(self.issuer.verify_authorization(auth, a) for a in audiences):
            err = ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid: it was not issued by the devkit token endpoint for "
                f"audience {' or '.join(audiences)}.",
            )
            return err.response()
        return None

    def _route(self, request: Request) -> Response:
        registry_answer = self._route_registries(request)  # discovery and registries (discovery.py)
        if registry_answer is not None:
            return registry_answer
        if batch := BATCH_PATH.match(request.path):
            if request.method != "POST":
                raise ArmError(405, "MethodNotAllowed", "metrics:getBatch is a POST.")
            return self._metrics_batch(request, batch["region"], batch["sub"])
        op_match = _OPERATION_RE.match(request.path)
        if op_match:
            if request.method != "GET":
                raise ArmError(405, "MethodNotAllowed", "Only GET is supported on operation status.")
            owner = next((ws for ws in self._workspaces if op_match["op"] in ws._operations), self)
            owner._check_subscription(op_match["sub"])
            return owner._operation_status(op_match["kind"], op_match["op"], request)
        ws_match = _WORKSPACE_RE.match(request.path)
        if not ws_match:
            raise ArmError(404, "NotFound", f"No route for {request.path}")
        target = self._workspace_for(ws_match["sub"], ws_match["rg"], ws_match["ws"])
        if target is None:
            self._check_workspace(ws_match["sub"], ws_match["rg"], ws_match["ws"])
        return (target or self)._route_in_workspace(request, (ws_match["rest"] or "").rstrip("/"))

    def _route_in_workspace(self, request: Request, rest: str) -> Response:
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.match(rest)
            if match:
                with self._lock:
                    self._advance()
                    return handler(request, **match.groupdict())
        raise ArmError(404, "NotFound", f"Unsupported {request.method} {request.path}")

    def _check_subscription(self, sub: str) -> None:
        if sub.lower() != self.subscription_id.lower():
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def _check_workspace(self, sub: str, rg: str, ws: str) -> None:
        self._check_subscription(sub)
        if rg.lower() != self.resource_group.lower():
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        if ws.lower() != self.workspace_name.lower():
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{ws}' under resource group '{rg}' was not found.",
            )

    def add_route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        """Serve ``method`` on ``{workspace id}{pattern}`` (a regex with named groups passed as kwargs).

        Handlers run under the emulator lock after time-driven state has advanced; raise :class:`ArmError`.
        """
        self._routes.append((method.upper(), re.compile(f"^{pattern}$", re.IGNORECASE), handler))

    def _register_routes(self) -> None:
        n = r"(?P<name>[^/]+)"
        e = r"(?P<endpoint>[^/]+)"
        d = r"(?P<deployment>[^/]+)"
        v = r"(?P<version>[^/]+)"
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", "", self._get_workspace),
            ("GET", "/models", self._list_model_containers),
            ("GET", f"/models/{n}", self._get_model_container),
            ("PUT", f"/models/{n}", self._put_model_container),
            ("GET", f"/models/{n}/versions", self._list_model_versions),
            ("GET", f"/models/{n}/versions/{v}", self._get_model_version),
            ("PUT", f"/models/{n}/versions/{v}", self._put_model_version),
            ("GET", "/onlineEndpoints", self._list_endpoints),
            ("GET", f"/onlineEndpoints/{e}", self._get_endpoint),
            ("PUT", f"/onlineEndpoints/{e}", self._put_endpoint),
            ("PATCH", f"/onlineEndpoints/{e}", self._patch_endpoint),
            ("DELETE", f"/onlineEndpoints/{e}", self._delete_endpoint),
            ("POST", f"/onlineEndpoints/{e}/listKeys", self._list_keys),
            ("POST", f"/onlineEndpoints/{e}/token", self._endpoint_token),
            ("GET", f"/onlineEndpoints/{e}/deployments", self._list_deployments),
            ("GET", f"/onlineEndpoints/{e}/deployments/{d}", self._get_deployment),
            ("PUT", f"/onlineEndpoints/{e}/deployments/{d}", self._put_deployment),
            ("PATCH", f"/onlineEndpoints/{e}/deployments/{d}", self._patch_deployment),
            ("DELETE", f"/onlineEndpoints/{e}/deployments/{d}", self._delete_deployment),
            ("POST", f"/onlineEndpoints/{e}/deployments/{d}/getLogs", self._get_logs),
            ("GET", f"/onlineEndpoints/{e}/providers/Microsoft.Insights/metrics", self._list_metrics),
            ("GET", "/components", self._list_component_containers),
            ("GET", f"/components/{n}", self._get_component_container),
            ("GET", f"/components/{n}/versions", self._list_component_versions),
            ("GET", f"/components/{n}/versions/{v}", self._get_component_version),
            ("GET", "/jobs", self._list_jobs),
            ("GET", f"/jobs/{n}", self._get_job),
            ("PUT", f"/jobs/{n}", self._put_job),
            ("POST", f"/jobs/{n}/cancel", self._cancel_job),
        ]
        for method, pattern, handler in routes:
            self.add_route(method, pattern, handler)

    # ------------------------------------------------------------------ workspace

    def _get_workspace(self, request: Request) -> Response:
        rg_id = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
        short = re.sub(r"[^a-z0-9]", "", self.workspace_name.lower())[:16] or "ws"
        return Response(
            200,
            {
                "id": self.workspace_id,
                "name": self.workspace_name,
                "type": f"{PROVIDER}/workspaces",
                "location": self.location,
                "kind": "Default",
                "tags": {},
                "sku": {"name": "Basic", "tier": "Basic"},
                "identity": {
                    "type": "SystemAssigned",
                    "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_id + "/principal")),
                    "tenantId": "00000000-0000-0000-0000-00000000a7e1",
                },
                "properties": {
                    "friendlyName": self.workspace_name,
                    "description": "devkit emulated workspace",
                    "workspaceId": self.workspace_guid,
                    "provisioningState": "Succeeded",
                    "storageAccount": f"{rg_id}/providers/Microsoft.Storage/storageAccounts/{short}sa",
                    "keyVault": f"{rg_id}/providers/Microsoft.KeyVault/vaults/{short}kv",
                    "applicationInsights": f"{rg_id}/providers/Microsoft.insights/components/{short}ai",
                    "containerRegistry": f"{rg_id}/providers/Microsoft.ContainerRegistry/registries/{short}cr",
                    "discoveryUrl": f"{self.url}/discovery",
                    "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                    "hbiWorkspace": False,
                    "publicNetworkAccess": "Enabled",
                    "v1LegacyMode": False,
                    "storageHnsEnabled": False,
                    "enableDataIsolation": False,
                },
                "systemData": {"createdAt": "2024-01-01T00:00:00Z", "createdByType": "User"},
            },
        )

    def _page(self, request: Request, items: list[dict[str, Any]], page_size: int = 100) -> Response:
        skip = int(request.query.get("$skipToken") or 0)
        page = items[skip : skip + page_size]
        body: dict[str, Any] = {"value": page}
        if skip + page_size < len(items):
            query = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "$skipToken")
            body["nextLink"] = f"{self.url}{request.path}?{query}&$skipToken={skip + page_size}"
        return Response(200, body)


def _write_body(request: Request) -> Any:
    """A write's JSON body for the request log (None for reads, empty or unreadable bodies)."""
    if request.method in {"GET", "HEAD"} or not request.body:
        return None
    try:
        return request.json()
    except ValueError:
        return None
