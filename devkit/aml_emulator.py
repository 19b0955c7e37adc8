"""HTTPS stand-in for the Azure Resource Manager subset of Azure ML that the app and its SDKs use."""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from devkit._server import BackgroundServer, Request, Response
from devkit.identity import TokenIssuer
from devkit.tls import DevCertificateAuthority

logger = logging.getLogger(__name__)

PROVIDER = "Microsoft.MachineLearningServices"
ARM_AUDIENCE = "https://management.azure.com"
CONTROL_PREFIX = "/_emulator"
#: The SDK's own rule (azure.ai.ml EndpointConfigurations.NAME_REGEX_PATTERN) plus its 3..32 length check.
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
NAME_MIN, NAME_MAX = 3, 32
NO_CODE_MODEL_TYPES = frozenset({"mlflow_model", "triton_model"})
DEFAULT_OPERATION_DURATION_S = 0.5
DEFAULT_POLL_INTERVAL_S = 0.1
DEFAULT_JOB_DURATION_S = 0.5
EVENT_TYPE_PREFIX = "Microsoft.MachineLearningServices."
#: What AML reports as ``runType`` for each ``jobType`` (RunCompleted / RunStatusChanged ``data.runType``).
RUN_TYPES = {"pipeline": "azureml.PipelineRun", "command": "azureml.scriptrun", "sweep": "hyperdrive"}

#: What AML reports for a model registered from an MLflow run (the SDK requires ``flavors`` to be a dict).
_DEFAULT_FLAVORS: dict[str, dict[str, Any]] = {
    "mlflow_model": {
        "python_function": {"data": {"loader_module": "mlflow.sklearn", "python_version": "3.11.7"}},
        "sklearn": {"data": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}},
    },
}

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


class ArmError(Exception):
    """An ARM error answer: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return Response(self.status, {"error": {"code": self.code, "message": self.message}})


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | float | datetime | None) -> float:
    if value is None:
        return _now()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def validate_name(name: str, what: str) -> None:
    """Raise a 400 :class:`ArmError` unless ``name`` is a valid online endpoint/deployment name."""
    if not NAME_MIN <= len(name) <= NAME_MAX or not NAME_PATTERN.match(name):
        raise ArmError(
            400,
            "BadArgument",
            f"Invalid {what} name '{name}': it must be {NAME_MIN}-{NAME_MAX} characters, start with a letter, "
            "contain only letters, digits and '-', and end with a letter or digit.",
        )


def _io_spec(items: Mapping[str, str | Mapping[str, Any]] | Iterable[str], default_type: str) -> dict[str, Any]:
    """Component inputs/outputs as ``componentSpec`` spells them, from names or ``{name: type | spec}``."""
    if isinstance(items, Mapping):
        return {
            name: {"type": spec} if isinstance(spec, str) else {"type": default_type, **dict(spec)}
            for name, spec in items.items()
        }
    return {name: {"type": default_type} for name in items}


# --------------------------------------------------------------------------------------------- state


@dataclass
class ModelVersion:
    """One registered model version."""

    name: str
    version: str
    model_type: str = "mlflow_model"
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    model_uri: str | None = None
    created_at: float = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Operation:
    """A long-running ARM operation on an endpoint (``deployment`` set when it targets a deployment)."""

    id: str
    action: str  # create | update | delete
    endpoint: str
    deployment: str | None
    started: float
    ends_at: float
    api_version: str
    outcome: str = "Succeeded"  # what it turns into when it ends: Succeeded | Failed
    done: bool = False
    status: str = "InProgress"


@dataclass
class Resource:
    """An online endpoint or deployment: its ARM body plus the operation currently running on it."""

    name: str
    body: dict[str, Any]
    state: str
    created_at: float
    operation: Operation | None = None
    logs_failed: bool = False


@dataclass
class Job:
    """A submitted job; its status advances with time."""

    name: str
    body: dict[str, Any]
    created_at: float
    ends_at: float
    outcome: str = "Completed"
    canceled: bool = False
    announced: bool = False  # its RunCompleted / RunStatusChanged went to the outbox


@dataclass
class ComponentVersion:
    """One registered component version; ``spec`` is the ``componentSpec`` AML stores (inputs, outputs, jobs)."""

    name: str
    version: str
    spec: dict[str, Any]
    created_at: float
    sequence: int  # breaks created_at ties, so "latest" is the last one registered
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRequest:
    """One ARM request seen by the emulator (control requests are not logged)."""

    time: float
    method: str
    path: str
    api_version: str | None
    status: int
    duration_ms: float
    injected: bool
    query: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        """ARM counts PUT/PATCH/DELETE/POST against the write quota, GET/HEAD against reads."""
        return self.method in {"PUT", "PATCH", "DELETE", "POST"}


@dataclass
class FaultPlan:
    """Faults injected into ARM answers (after authentication, like ARM's throttling)."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    methods: frozenset[str] | None = None  # None = every method
    path_pattern: str | None = None  # regex searched in the path; None = every path
    retry_after_s: float = 1.0
    latency_ms: float = 0.0
    seed: int = 0
    fail_next: list[int] = field(default_factory=list)  # statuses to answer next, in order (matching requests)
    fail_next_retry_after: list[float | None] = field(default_factory=list)  # Retry-After of each fail_next entry

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_pattern is None or re.search(self.path_pattern, path, re.IGNORECASE) is not None


# ------------------------------------------------------------------------------------------ emulator


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class AmlEmulator:
    """ARM for one Azure ML workspace, over HTTPS, with LROs, AML's write rules, faults and a request log.

    Point azure-ai-ml at it with ``AZUREML_DEV_URL_MFE=`` :attr:`url` and the mgmt SDK with ``base_url=`` :attr:`url`.
    Everything is also controllable over HTTP under ``/_emulator/`` (see :meth:`_control`).
    """

    def __init__(
        self,
        ca: DevCertificateAuthority,
        *,
        subscription_id: str,
        resource_group: str,
        workspace_name: str,
        location: str = "eastus",
        issuer: TokenIssuer | None = None,
        operation_duration_s: float = DEFAULT_OPERATION_DURATION_S,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace_name
        self.location = location
        self.issuer = issuer
        self.default_operation_duration_s = operation_duration_s
        self.workspace_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_id.lower()))
        self._lock = threading.RLock()
        self._server = BackgroundServer("aml-emulator", self._handle, ca.server_context())
        self.url = self._server.url
        self.port = self._server.port
        self._routes: list[Route] = []
        self._register_routes()
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AmlEmulator:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
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

    # ------------------------------------------------------------------ Python control API

    def reset(self) -> None:
        """Forget all models, endpoints, deployments, jobs, faults and logged requests; restore defaults."""
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
            self._faults = FaultPlan()
            self._rng = random.Random(0)
            self._failing_deployments: set[str] = set()
            self._failing_jobs: set[str] = set()
            self.operation_duration_s = self.default_operation_duration_s
            self.poll_interval_s = DEFAULT_POLL_INTERVAL_S
            self.job_duration_s = DEFAULT_JOB_DURATION_S

    def seed_model(
        self,
        name: str,
        version: str | int,
        model_type: str = "mlflow_model",
        tags: Mapping[str, str] | None = None,
        created_at: str | float | datetime | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register a model version directly (no request is logged)."""
        model = ModelVersion(
            name=name,
            version=str(version),
            model_type=model_type,
            tags=dict(tags or {}),
            properties=dict(properties or {}),
            description=description,
            created_at=_parse_time(created_at),
        )
        with self._lock:
            self._store_model(model)
        return model

    def set_model_tags(self, name: str, version: str | int, tags: Mapping[str, str]) -> None:
        """Replace a model version's tags (AML raises no event for this)."""
        with self._lock:
            self._get_model(name, str(version)).tags = dict(tags)

    def inject_faults(
        self,
        *,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        methods: Iterable[str] | None = None,
        path_pattern: str | None = None,
        retry_after_s: float = 1.0,
        latency_ms: float | None = None,
        seed: int = 0,
    ) -> None:
        """Answer a seeded random share of matching ARM requests with 429 (``Retry-After``) or 500."""
        with self._lock:
            self._faults = FaultPlan(
                rate_429=rate_429,
                rate_500=rate_500,
                methods=frozenset(m.upper() for m in methods) if methods is not None else None,
                path_pattern=path_pattern,
                retry_after_s=retry_after_s,
                latency_ms=self._faults.latency_ms if latency_ms is None else latency_ms,
                seed=seed,
                fail_next=self._faults.fail_next,
                fail_next_retry_after=self._faults.fail_next_retry_after,
            )
            self._rng = random.Random(seed)

    def fail_next(self, count: int = 1, status: int = 429, retry_after_s: float | None = None) -> None:
        """Answer the next ``count`` ARM requests matching the fault filter with ``status`` (429, 500, 503...).

        ``retry_after_s`` sends a ``Retry-After`` (as ``retry-after-ms``) with each answer, whatever its status;
        azure-core honours it instead of its exponential back-off, which keeps tests of 5xx retries fast.
        """
        with self._lock:
            self._faults.fail_next.extend([status] * count)
            self._faults.fail_next_retry_after.extend([retry_after_s] * count)

    def clear_faults(self) -> None:
        """Remove every injected fault and the extra latency (failing deployments are kept)."""
        with self._lock:
            self._faults = FaultPlan()

    def set_latency(self, ms: float) -> None:
        """Delay every ARM answer by ``ms`` milliseconds."""
        with self._lock:
            self._faults.latency_ms = ms

    def fail_deployments(self, *names: str) -> None:
        """Make these deployments (by name, or ``endpoint/deployment``) end their next operation ``Failed``."""
        with self._lock:
            self._failing_deployments.update(n.lower() for n in names)

    def fail_jobs(self, *names: str) -> None:
        """Make these jobs end ``Failed`` instead of ``Completed``."""
        with self._lock:
            self._failing_jobs.update(n.lower() for n in names)

    def set_operation_duration(self, seconds: float) -> None:
        """How long endpoint/deployment operations stay Creating/Updating/Deleting (new operations only)."""
        with self._lock:
            self.operation_duration_s = seconds

    def set_poll_interval(self, seconds: float) -> None:
        """The ``Retry-After`` sent with LRO answers (how often SDK pollers come back)."""
        with self._lock:
            self.poll_interval_s = seconds

    def set_job_duration(self, seconds: float) -> None:
        """How long new jobs stay Starting/Running before they end Completed (or Failed)."""
        with self._lock:
            self.job_duration_s = seconds

    def seed_component(
        self,
        name: str,
        version: str | int,
        inputs: Mapping[str, str | Mapping[str, Any]] | Iterable[str] = (),
        *,
        outputs: Mapping[str, str | Mapping[str, Any]] | Iterable[str] = ("model",),
        component_type: str = "pipeline",
        created_at: str | float | datetime | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ComponentVersion:
        """Register a component version directly (no request is logged).

        ``inputs`` declares its inputs: names (type ``string``) or ``{name: type}`` or ``{name: {"type", "optional",
        "default"}}``. An input that is neither optional nor defaulted is required by a job PUT.
        """
        spec: dict[str, Any] = {
            "$schema": f"https://azuremlschemas.azureedge.net/latest/{component_type}Component.schema.json",
            "name": name,
            "version": str(version),
            "display_name": name,
            "type": component_type,
            "inputs": _io_spec(inputs, "string"),
            "outputs": _io_spec(outputs, "mlflow_model"),
        }
        if component_type == "pipeline":
            spec["jobs"] = {}
        if description:
            spec["description"] = description
        with self._lock:
            self._component_sequence += 1
            component = ComponentVersion(
                name=name,
                version=str(version),
                spec=spec,
                created_at=_parse_time(created_at),
                sequence=self._component_sequence,
                description=description,
                tags=dict(tags or {}),
            )
            self._components.setdefault(name.lower(), {})[component.version] = component
        return component

    def wait_jobs(self, timeout_s: float = 30.0) -> None:
        """Block until every job has ended (Completed, Failed or Canceled); raises TimeoutError."""
        deadline = _now() + timeout_s
        while True:
            with self._lock:
                self._advance()
                running = [j for j in self._jobs.values() if not j.canceled and j.ends_at > _now()]
                if not running:
                    return
                wait = min(j.ends_at for j in running) - _now()
            if _now() > deadline:
                raise TimeoutError(f"{len(running)} jobs still running")
            time.sleep(max(0.01, min(wait, 0.1)))

    def job_state(self, name: str) -> dict[str, Any] | None:
        """The job's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            job = self._jobs.get(name.lower())
            return self._job_body(job) if job else None

    def events(self) -> list[dict[str, Any]]:
        """The outbox: Event Grid-schema events AML would have published so far, oldest first (kept)."""
        with self._lock:
            self._advance()
            return copy.deepcopy(self._outbox)

    def take_events(self) -> list[dict[str, Any]]:
        """The outbox's events, oldest first, removed from it.

        ``ModelRegistered`` for each model version created through ARM, ``RunCompleted`` for each job that
        completed and ``RunStatusChanged`` (``runStatus`` Failed) for each job that failed, with the workspace
        as topic, as Azure ML publishes them through Event Grid. Deliver them with ``OfflineApp.deliver``.
        """
        with self._lock:
            self._advance()
            taken, self._outbox = self._outbox, []
        return taken

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
        """``{"reads": n, "writes": n, "total": n}`` of ARM requests (as ARM's quotas count them)."""
        log = self.requests(since=since)
        writes = sum(1 for r in log if r.is_write)
        return {"reads": len(log) - writes, "writes": writes, "total": len(log)}

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Block until no endpoint/deployment operation is in progress (raises TimeoutError)."""
        deadline = _now() + timeout_s
        while True:
            with self._lock:
                self._advance()
                busy = [op for op in self._operations.values() if not op.done]
                if not busy:
                    return
                wait = min(op.ends_at for op in busy) - _now()
            if _now() > deadline:
                raise TimeoutError(f"{len(busy)} operations still in progress")
            time.sleep(max(0.01, min(wait, 0.1)))

    def endpoint_state(self, name: str) -> dict[str, Any] | None:
        """The endpoint's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            res = self._endpoints.get(name.lower())
            return copy.deepcopy(self._render(res)) if res else None

    def deployment_state(self, endpoint: str, name: str) -> dict[str, Any] | None:
        """The deployment's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            res = self._deployments.get(endpoint.lower(), {}).get(name.lower())
            return copy.deepcopy(self._render(res)) if res else None

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
                "jobs": {j.name: self._job_status(j) for j in self._jobs.values()},
                "components": {
                    c.name: sorted(v.version for v in versions.values())
                    for versions in self._components.values()
                    for c in list(versions.values())[:1]
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
        started = _now()
        with self._lock:
            latency = self._faults.latency_ms
        if latency:
            time.sleep(latency / 1000.0)
        injected = False
        try:
            response = self._authorize(request)
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
        entry = LoggedRequest(
            time=started,
            method=request.method,
            path=request.path,
            api_version=request.query.get("api-version"),
            status=response.status,
            duration_ms=(_now() - started) * 1000.0,
            injected=injected,
            query=dict(request.query),
        )
        with self._lock:
            self._log.append(entry)
        logger.debug("ARM %s %s -> %d", request.method, request.path, response.status)
        return response

    def _authorize(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization")
        if not auth or not auth.lower().startswith("bearer "):
            err = ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            return err.response()
        if self.issuer is not None and not self.issuer.verify_authorization(auth, ARM_AUDIENCE):
            err = ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid: it was not issued by the devkit token endpoint for "
                f"audience {ARM_AUDIENCE}.",
            )
            return err.response()
        return None

    def _inject_fault(self, request: Request) -> Response | None:
        with self._lock:
            plan = self._faults
            if not plan.matches(request.method, request.path):
                return None
            retry_after: float | None = None
            if plan.fail_next:
                status = plan.fail_next.pop(0)
                if plan.fail_next_retry_after:
                    retry_after = plan.fail_next_retry_after.pop(0)
            else:
                roll = self._rng.random()
                if roll < plan.rate_429:
                    status = 429
                elif roll < plan.rate_429 + plan.rate_500:
                    status = 500
                else:
                    return None
        if status == 429:
            response = ArmError(
                429,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - "
                f"{'Write' if request.method != 'GET' else 'Read'}. (injected by the devkit)",
            ).response()
            response.headers["Retry-After"] = f"{plan.retry_after_s if retry_after is None else retry_after:g}"
            return response
        response = ArmError(
            status, "InternalServerError", "An unexpected error occurred (injected by the devkit)."
        ).response()
        if retry_after is not None:
            response.headers["retry-after-ms"] = str(max(1, round(retry_after * 1000)))
        return response

    def _route(self, request: Request) -> Response:
        op_match = _OPERATION_RE.match(request.path)
        if op_match:
            if request.method != "GET":
                raise ArmError(405, "MethodNotAllowed", "Only GET is supported on operation status.")
            self._check_subscription(op_match["sub"])
            return self._operation_status(op_match["kind"], op_match["op"], request)
        ws_match = _WORKSPACE_RE.match(request.path)
        if not ws_match:
            raise ArmError(404, "NotFound", f"No route for {request.path}")
        self._check_workspace(ws_match["sub"], ws_match["rg"], ws_match["ws"])
        rest = ws_match["rest"] or ""
        rest = rest.rstrip("/")
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

    # ------------------------------------------------------------------ models

    def _store_model(self, model: ModelVersion) -> None:
        self._models.setdefault(model.name.lower(), {})[model.version] = model
        container = self._model_containers.setdefault(
            model.name.lower(), {"name": model.name, "tags": {}, "description": None, "createdAt": model.created_at}
        )
        container.setdefault("createdAt", model.created_at)

    def _get_model(self, name: str, version: str) -> ModelVersion:
        model = self._models.get(name.lower(), {}).get(version)
        if model is None:
            raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
        return model

    def _model_container_body(self, name: str) -> dict[str, Any]:
        container = self._model_containers[name.lower()]
        versions = list(self._models.get(name.lower(), {}).values())
        latest = max(versions, key=lambda m: m.created_at).version if versions else None
        numeric = [int(m.version) for m in versions if m.version.isdigit()]
        return {
            "id": f"{self.workspace_id}/models/{container['name']}",
            "name": container["name"],
            "type": f"{PROVIDER}/workspaces/models",
            "properties": {
                "description": container.get("description"),
                "tags": container.get("tags", {}),
                "properties": {},
                "isArchived": False,
                "latestVersion": latest,
                "nextVersion": str(max(numeric, default=0) + 1),
                "provisioningState": "Succeeded",
            },
            "systemData": {"createdAt": _iso(container["createdAt"]), "createdByType": "Application"},
        }

    def _model_version_body(self, model: ModelVersion) -> dict[str, Any]:
        uri = model.model_uri or (
            f"azureml://subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}/workspaces/"
            f"{self.workspace_name}/datastores/workspaceblobstore/paths/models/{model.name}/{model.version}/"
        )
        properties: dict[str, Any] = {
            "description": model.description,
            "tags": model.tags,
            "properties": model.properties,
            "isArchived": False,
            "isAnonymous": False,
            "modelType": model.model_type,
            "modelUri": uri,
            "flavors": _DEFAULT_FLAVORS.get(model.model_type, {}),
            "provisioningState": "Succeeded",
        }
        properties.update(model.extra)
        return {
            "id": f"{self.workspace_id}/models/{model.name}/versions/{model.version}",
            "name": model.version,
            "type": f"{PROVIDER}/workspaces/models/versions",
            "properties": properties,
            "systemData": {
                "createdAt": _iso(model.created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(model.created_at),
            },
        }

    def _list_model_containers(self, request: Request) -> Response:
        items = [self._model_container_body(key) for key in sorted(self._model_containers)]
        return self._page(request, items)

    def _get_model_container(self, request: Request, name: str) -> Response:
        if name.lower() not in self._model_containers:
            raise ArmError(404, "UserError", f"Could not find asset with name {name}.")
        return Response(200, self._model_container_body(name))

    def _put_model_container(self, request: Request, name: str) -> Response:
        body = request.json() or {}
        props = body.get("properties", {})
        created = name.lower() not in self._model_containers
        container = self._model_containers.setdefault(name.lower(), {"name": name, "createdAt": _now()})
        container["tags"] = props.get("tags") or {}
        container["description"] = props.get("description")
        return Response(201 if created else 200, self._model_container_body(name))

    def _list_model_versions(self, request: Request, name: str) -> Response:
        versions = list(self._models.get(name.lower(), {}).values())
        if tag_filter := request.query.get("tags"):
            for clause in tag_filter.split(","):
                key, _, value = clause.partition("=")
                versions = [m for m in versions if key in m.tags and (not value or m.tags[key] == value)]
        if version := request.query.get("version"):
            versions = [m for m in versions if m.version == version]
        order = (request.query.get("$orderBy") or "createdtime desc").lower().split()
        key_name = order[0] if order else "createdtime"
        descending = len(order) > 1 and order[1] == "desc"
        if key_name in {"createdtime", "createdat", "properties/createdtime"}:
            versions.sort(key=lambda m: m.created_at, reverse=descending)
        else:
            versions.sort(key=lambda m: (len(m.version), m.version), reverse=descending)
        if top := request.query.get("$top"):
            versions = versions[: int(top)]
        return self._page(request, [self._model_version_body(m) for m in versions])

    def _get_model_version(self, request: Request, name: str, version: str) -> Response:
        return Response(200, self._model_version_body(self._get_model(name, version)))

    def _put_model_version(self, request: Request, name: str, version: str) -> Response:
        body = request.json() or {}
        props = dict(body.get("properties", {}))
        existing = self._models.get(name.lower(), {}).get(version)
        model = ModelVersion(
            name=existing.name if existing else name,
            version=version,
            model_type=props.pop("modelType", None) or (existing.model_type if existing else "custom_model"),
            tags=props.pop("tags", None) or {},
            properties=props.pop("properties", None) or {},
            description=props.pop("description", None),
            model_uri=props.pop("modelUri", None),
            created_at=existing.created_at if existing else _now(),
        )
        for server_owned in ("provisioningState", "isArchived", "isAnonymous"):
            props.pop(server_owned, None)
        model.extra = props
        self._store_model(model)
        if existing is None:
            self._emit(
                "ModelRegistered",
                f"models/{model.name}:{model.version}",
                {
                    "modelName": model.name,
                    "modelVersion": model.version,
                    "modelTags": dict(model.tags),
                    "modelProperties": dict(model.properties),
                },
                model.created_at,
            )
        return Response(200 if existing else 201, self._model_version_body(model))

    # ------------------------------------------------------------------ time-driven state

    def _advance(self) -> None:
        """Finish every operation whose time is up (state is evaluated lazily, no timers)."""
        now = _now()
        self._announce_ended_jobs()
        for op in sorted(self._operations.values(), key=lambda o: o.ends_at):
            if op.done or op.ends_at > now:
                continue
            op.done = True
            op.status = op.outcome
            ep_key = op.endpoint.lower()
            if op.deployment is None:
                endpoint = self._endpoints.get(ep_key)
                if endpoint is None:
                    continue
                endpoint.operation = None
                if op.action == "delete":
                    del self._endpoints[ep_key]
                    self._deployments.pop(ep_key, None)
                    self._keys.pop(ep_key, None)
                else:
                    endpoint.state = op.outcome
            else:
                deployment = self._deployments.get(ep_key, {}).get(op.deployment.lower())
                if deployment is None:
                    continue
                deployment.operation = None
                if op.action == "delete":
                    del self._deployments[ep_key][op.deployment.lower()]
                else:
                    deployment.state = op.outcome
                    deployment.logs_failed = op.outcome == "Failed"

    def _start_operation(self, action: str, endpoint: str, deployment: str | None, api_version: str) -> Operation:
        now = _now()
        outcome = "Succeeded"
        if deployment is not None and action != "delete":
            names = {deployment.lower(), f"{endpoint}/{deployment}".lower()}
            if names & self._failing_deployments:
                outcome = "Failed"
        op = Operation(
            id=str(uuid.uuid4()),
            action=action,
            endpoint=endpoint,
            deployment=deployment,
            started=now,
            ends_at=now + self.operation_duration_s,
            api_version=api_version,
            outcome=outcome,
        )
        self._operations[op.id] = op
        return op

    def _busy_operation(self, endpoint: str) -> tuple[str, Resource] | None:
        """The endpoint or deployment with an operation in progress on this endpoint, if any."""
        ep = self._endpoints.get(endpoint.lower())
        if ep is not None and ep.operation is not None:
            return "online endpoint", ep
        for dep in self._deployments.get(endpoint.lower(), {}).values():
            if dep.operation is not None:
                return "online deployment", dep
        return None

    def _check_not_busy(self, endpoint: str) -> None:
        busy = self._busy_operation(endpoint)
        if busy is not None:
            kind, res = busy
            raise ArmError(
                409,
                "Conflict",
                f"Conflict: another operation is in progress on endpoint '{endpoint}': {kind} '{res.name}' "
                f"is in {res.state} provisioning state. Wait for it to finish and retry.",
            )

    def _lro_response(self, status: int, op: Operation, body: Any = None) -> Response:
        base = f"{self.url}/subscriptions/{self.subscription_id}/providers/{PROVIDER}/locations/{self.location}"
        query = f"?api-version={op.api_version}" if op.api_version else ""
        headers = {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}{query}",
            "Location": f"{base}/mfeOperationResults/{op.id}{query}",
            **self._poll_delay_headers(),
        }
        return Response(status, body, headers)

    def _poll_delay_headers(self) -> dict[str, str]:
        # The generated clients parse Retry-After as an int, so sub-second poll delays use retry-after-ms,
        # which azure-core's pollers also honour.
        if self.poll_interval_s >= 1:
            return {"Retry-After": str(round(self.poll_interval_s))}
        return {"retry-after-ms": str(max(1, round(self.poll_interval_s * 1000)))}

    def _operation_status(self, kind: str, op_id: str, request: Request) -> Response:
        with self._lock:
            self._advance()
            op = self._operations.get(op_id)
            if op is None:
                raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
            if kind.lower() == "mfeoperationresults":
                if not op.done:
                    return self._lro_response(202, op)
                if op.action == "delete" or op.status == "Failed":
                    return Response(204 if op.status != "Failed" else 200, None)
                res = self._resource_for(op)
                return Response(200, self._render(res) if res else None)
            body: dict[str, Any] = {
                "id": request.path,
                "name": op.id,
                "status": op.status,
                "startTime": _iso(op.started),
            }
            if op.done:
                body["endTime"] = _iso(op.ends_at)
                body["percentComplete"] = 100.0
            if op.status == "Failed":
                body["error"] = {
                    "code": "DeploymentFailed",
                    "message": f"Deployment '{op.deployment}' failed: the inference server container crashed "
                    f"while loading the model. Run get_logs for details.",
                }
            headers = {} if op.done else self._poll_delay_headers()
            return Response(200, body, headers)

    def _resource_for(self, op: Operation) -> Resource | None:
        if op.deployment is None:
            return self._endpoints.get(op.endpoint.lower())
        return self._deployments.get(op.endpoint.lower(), {}).get(op.deployment.lower())

    def _render(self, res: Resource) -> dict[str, Any]:
        body = copy.deepcopy(res.body)
        body["properties"]["provisioningState"] = res.state
        return body

    # ------------------------------------------------------------------ online endpoints

    def _get_endpoint_resource(self, name: str) -> Resource:
        res = self._endpoints.get(name.lower())
        if res is None:
            raise ArmError(
                404,
                "UserError",
                f"Could not find online endpoint '{name}' in workspace '{self.workspace_name}'.",
            )
        return res

    def _endpoint_body(self, name: str, body: Mapping[str, Any], created_at: float) -> dict[str, Any]:
        props = dict(body.get("properties") or {})
        props.setdefault("authMode", "Key")
        props["traffic"] = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        props["mirrorTraffic"] = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        props.setdefault("publicNetworkAccess", "Enabled")
        props["scoringUri"] = f"https://{name}.{self.location}.inference.ml.azure.com/score"
        props["swaggerUri"] = f"https://{name}.{self.location}.inference.ml.azure.com/swagger.json"
        identity = dict(body.get("identity") or {"type": "SystemAssigned"})
        if "SystemAssigned" in str(identity.get("type", "")):
            identity.setdefault("principalId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_id}/{name}")))
            identity.setdefault("tenantId", "00000000-0000-0000-0000-00000000a7e1")
        return self._tracked_resource(
            f"onlineEndpoints/{name}", name, "onlineEndpoints", body, props, created_at, identity=identity
        )

    def _validate_traffic(self, endpoint: str, props: Mapping[str, Any]) -> None:
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        deployments = self._deployments.get(endpoint.lower(), {})
        for label, table in (("traffic", traffic), ("mirror traffic", mirror)):
            for name, pct in table.items():
                if pct < 0 or pct > 100:
                    raise ArmError(400, "BadArgument", f"Invalid {label} value {pct} for deployment '{name}'.")
                if pct == 0:
                    continue
                dep = deployments.get(name.lower())
                if dep is None:
                    raise ArmError(
                        400,
                        "BadArgument",
                        f"Deployment '{name}' named in the endpoint's {label} does not exist on endpoint '{endpoint}'.",
                    )
                if dep.state != "Succeeded":
                    raise ArmError(
                        400,
                        "BadArgument",
                        f"Deployment '{name}' named in the endpoint's {label} is in {dep.state} provisioning "
                        "state; traffic can only be set to a deployment that succeeded.",
                    )
        total = sum(traffic.values())
        if total not in (0, 100):
            raise ArmError(400, "BadArgument", f"Traffic values must sum to 100 (or 0); they sum to {total}.")
        for name, pct in mirror.items():
            if pct > 50:
                raise ArmError(400, "BadArgument", f"Mirror traffic to '{name}' is {pct}%; at most 50% is allowed.")
            if pct and traffic.get(name, 0) > 0:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"Deployment '{name}' cannot receive both live and mirrored traffic.",
                )

    def _list_endpoints(self, request: Request) -> Response:
        items = [self._render(r) for _, r in sorted(self._endpoints.items())]
        if name := request.query.get("name"):
            items = [i for i in items if i["name"].lower() == name.lower()]
        return self._page(request, items)

    def _get_endpoint(self, request: Request, endpoint: str) -> Response:
        return Response(200, self._render(self._get_endpoint_resource(endpoint)))

    def _put_endpoint(self, request: Request, endpoint: str) -> Response:
        validate_name(endpoint, "online endpoint")
        body = request.json() or {}
        existing = self._endpoints.get(endpoint.lower())
        self._check_not_busy(endpoint)
        props = body.get("properties") or {}
        if existing is None:
            self._validate_traffic(endpoint, props)
            op = self._start_operation("create", endpoint, None, request.query.get("api-version", ""))
            res = Resource(endpoint, self._endpoint_body(endpoint, body, _now()), "Creating", _now(), op)
            self._endpoints[endpoint.lower()] = res
            self._keys[endpoint.lower()] = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
            return self._lro_response(201, op, self._render(res))
        self._validate_traffic(endpoint, props)
        op = self._start_operation("update", endpoint, None, request.query.get("api-version", ""))
        existing.body = self._endpoint_body(existing.name, body, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(200, op, self._render(existing))

    def _patch_endpoint(self, request: Request, endpoint: str) -> Response:
        existing = self._get_endpoint_resource(endpoint)
        self._check_not_busy(endpoint)
        patch = request.json() or {}
        merged = copy.deepcopy(existing.body)
        if "tags" in patch:
            merged["tags"] = dict(patch["tags"] or {})
        if patch.get("identity"):
            merged["identity"] = patch["identity"]
        # ARM's PATCH schema carries tags/identity only; traffic is accepted too for convenience.
        for key, value in (patch.get("properties") or {}).items():
            merged["properties"][key] = value
        self._validate_traffic(endpoint, merged["properties"])
        op = self._start_operation("update", endpoint, None, request.query.get("api-version", ""))
        existing.body = self._endpoint_body(existing.name, merged, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(202, op)

    def _delete_endpoint(self, request: Request, endpoint: str) -> Response:
        existing = self._endpoints.get(endpoint.lower())
        if existing is None:
            return Response(204)
        self._check_not_busy(endpoint)
        op = self._start_operation("delete", endpoint, None, request.query.get("api-version", ""))
        existing.state, existing.operation = "Deleting", op
        for dep in self._deployments.get(endpoint.lower(), {}).values():
            dep.state = "Deleting"
        return self._lro_response(202, op)

    def _list_keys(self, request: Request, endpoint: str) -> Response:
        res = self._get_endpoint_resource(endpoint)
        if res.body["properties"].get("authMode", "Key").lower() != "key":
            raise ArmError(400, "BadArgument", f"Endpoint '{endpoint}' does not use key authentication.")
        primary, secondary = self._keys[endpoint.lower()]
        return Response(200, {"primaryKey": primary, "secondaryKey": secondary})

    def _endpoint_token(self, request: Request, endpoint: str) -> Response:
        self._get_endpoint_resource(endpoint)
        expiry = _now() + 3600
        return Response(
            200,
            {
                "accessToken": secrets.token_urlsafe(32),
                "expiryTimeUtc": int(expiry),
                "refreshAfterTimeUtc": int(expiry - 600),
                "tokenType": "Bearer",
            },
        )

    # ------------------------------------------------------------------ online deployments

    def _get_deployment_resource(self, endpoint: str, name: str) -> Resource:
        self._get_endpoint_resource(endpoint)
        res = self._deployments.get(endpoint.lower(), {}).get(name.lower())
        if res is None:
            raise ArmError(
                404,
                "UserError",
                f"Could not find online deployment '{name}' on endpoint '{endpoint}'.",
            )
        return res

    def _deployment_body(self, endpoint: str, name: str, body: Mapping[str, Any], created_at: float) -> dict[str, Any]:
        props = dict(body.get("properties") or {})
        props.setdefault("endpointComputeType", "Managed")
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        props.setdefault("appInsightsEnabled", False)
        props.setdefault("egressPublicNetworkAccess", "Enabled")
        sku = dict(body.get("sku") or {"name": "Default", "capacity": 1})
        return self._tracked_resource(
            f"onlineEndpoints/{endpoint}/deployments/{name}",
            name,
            "onlineEndpoints/deployments",
            body,
            props,
            created_at,
            sku=sku,
        )

    def _tracked_resource(
        self,
        path: str,
        name: str,
        kind: str,
        body: Mapping[str, Any],
        props: dict[str, Any],
        created_at: float,
        **extra: Any,
    ) -> dict[str, Any]:
        """ARM's envelope of a tracked workspace child resource (endpoint or deployment)."""
        return {
            "id": f"{self.workspace_id}/{path}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/{kind}",
            "location": body.get("location") or self.location,
            "kind": body.get("kind") or "Managed",
            "tags": dict(body.get("tags") or {}),
            **extra,
            "properties": props,
            "systemData": {
                "createdAt": _iso(created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(_now()),
            },
        }

    def _check_deployment_model(self, props: Mapping[str, Any]) -> None:
        model_ref = props.get("model")
        if not model_ref:
            raise ArmError(400, "BadArgument", "A model is required for an online deployment.")
        match = re.search(r"/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)$", str(model_ref), re.IGNORECASE)
        if match is None:
            return  # registry or other model references are not checked
        name, version = match[2], match[3]
        model = self._models.get(name.lower(), {}).get(version)
        if model is None:
            raise ArmError(404, "UserError", f"Could not find model {name} with version {version}.")
        if model.model_type not in NO_CODE_MODEL_TYPES and not (
            props.get("environmentId") and props.get("codeConfiguration")
        ):
            raise ArmError(
                400,
                "BadArgument",
                f"Model {name}:{version} is of type {model.model_type}; only mlflow_model and triton_model "
                "can be deployed without an environment and a scoring script.",
            )

    def _list_deployments(self, request: Request, endpoint: str) -> Response:
        self._get_endpoint_resource(endpoint)
        items = [self._render(r) for _, r in sorted(self._deployments.get(endpoint.lower(), {}).items())]
        return self._page(request, items)

    def _get_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        return Response(200, self._render(self._get_deployment_resource(endpoint, deployment)))

    def _put_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        validate_name(deployment, "online deployment")
        ep = self._get_endpoint_resource(endpoint)
        self._check_not_busy(endpoint)
        if ep.state != "Succeeded":
            raise ArmError(
                409 if ep.state in {"Creating", "Updating", "Deleting"} else 400,
                "Conflict" if ep.state in {"Creating", "Updating", "Deleting"} else "BadArgument",
                f"Online endpoint '{endpoint}' is in {ep.state} provisioning state; deployments can only be "
                "created on an endpoint that succeeded.",
            )
        body = request.json() or {}
        props = body.get("properties") or {}
        self._check_deployment_model(props)
        deployments = self._deployments.setdefault(endpoint.lower(), {})
        existing = deployments.get(deployment.lower())
        api_version = request.query.get("api-version", "")
        if existing is None:
            op = self._start_operation("create", ep.name, deployment, api_version)
            res = Resource(deployment, self._deployment_body(ep.name, deployment, body, _now()), "Creating", _now(), op)
            deployments[deployment.lower()] = res
            return self._lro_response(201, op, self._render(res))
        op = self._start_operation("update", ep.name, existing.name, api_version)
        existing.body = self._deployment_body(ep.name, existing.name, body, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(200, op, self._render(existing))

    def _patch_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        existing = self._get_deployment_resource(endpoint, deployment)
        self._check_not_busy(endpoint)
        patch = request.json() or {}
        merged = copy.deepcopy(existing.body)
        if "tags" in patch:
            merged["tags"] = dict(patch["tags"] or {})
        if patch.get("sku"):
            merged["sku"] = {**merged.get("sku", {}), **patch["sku"]}
        for key, value in (patch.get("properties") or {}).items():
            merged["properties"][key] = value
        op = self._start_operation("update", endpoint, existing.name, request.query.get("api-version", ""))
        existing.body = self._deployment_body(endpoint, existing.name, merged, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(202, op)

    def _delete_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        ep = self._get_endpoint_resource(endpoint)
        existing = self._deployments.get(endpoint.lower(), {}).get(deployment.lower())
        if existing is None:
            return Response(204)
        self._check_not_busy(endpoint)
        live = int(ep.body["properties"].get("traffic", {}).get(existing.name, 0))
        mirror = int(ep.body["properties"].get("mirrorTraffic", {}).get(existing.name, 0))
        if live or mirror:
            raise ArmError(
                400,
                "BadArgument",
                f"Deployment '{existing.name}' still receives traffic ({live}% live, {mirror}% mirror); "
                "set its traffic to 0 before deleting it.",
            )
        op = self._start_operation("delete", ep.name, existing.name, request.query.get("api-version", ""))
        existing.state, existing.operation = "Deleting", op
        return self._lro_response(202, op)

    def _get_logs(self, request: Request, endpoint: str, deployment: str) -> Response:
        res = self._get_deployment_resource(endpoint, deployment)
        body = request.json() or {}
        tail = int(body.get("tail") or 5000)
        container = body.get("containerType") or "InferenceServer"
        lines = self._container_logs(endpoint, res, container)
        return Response(200, {"content": "\n".join(lines[-tail:]) + "\n"})

    def _container_logs(self, endpoint: str, res: Resource, container: str) -> list[str]:
        model = str(res.body["properties"].get("model", "")).rsplit("/models/", 1)[-1].replace("/versions/", ":")
        started = _iso(res.created_at)
        if container.lower() == "storageinitializer":
            return [
                f"{started} | INFO | Downloading model {model} to /var/azureml-app/azureml-models",
                f"{started} | INFO | Model download complete",
            ]
        lines = [
            "Instance status:",
            "SystemSetup: Succeeded",
            "UserContainerImagePull: Succeeded",
            "ModelDownload: Succeeded",
            "UserContainerStart: InProgress"
            if res.state in {"Creating", "Updating"}
            else "UserContainerStart: Succeeded",
            "",
            "Container events:",
            "Kind: Pod, Name: Pulling, Type: Normal, Time: " + started + ", Message: Start pulling container image",
            "",
            "Container logs:",
            f"{started} | INFO | Starting gunicorn 20.1.0",
            f"{started} | INFO | Listening at: http://0.0.0.0:31311",
            f"{started} | INFO | Loading MLflow model {model} for deployment {res.name} on endpoint {endpoint}",
        ]
        if res.logs_failed or res.state == "Failed":
            lines += [
                f"{started} | ERROR | Worker exiting: exception while loading the model",
                "Traceback (most recent call last):",
                '  File "/var/azureml-server/aml_blueprint.py", line 91, in setup',
                "    self.user_module.init()",
                '  File "/var/mlflow_resources/mlflow_score_script.py", line 42, in init',
                "    model = load_model(model_path)",
                "ModuleNotFoundError: No module named 'sklearn'",
                f"{started} | ERROR | Container crashed: exit code 3 (CrashLoopBackOff). Deployment {res.name} Failed.",
            ]
        elif res.state == "Succeeded":
            lines += [
                f"{started} | INFO | Model loaded successfully",
                f"{started} | INFO | Scoring server ready: GET /, POST /score",
            ]
        return lines

    # ------------------------------------------------------------------ components

    def _get_component_entity(self, name: str, version: str) -> ComponentVersion:
        component = self._components.get(name.lower(), {}).get(version)
        if component is None:
            raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
        return component

    def _component_versions(self, name: str) -> list[ComponentVersion]:
        return sorted(self._components.get(name.lower(), {}).values(), key=lambda c: (c.created_at, c.sequence))

    def _component_version_body(self, component: ComponentVersion) -> dict[str, Any]:
        return {
            "id": f"{self.workspace_id}/components/{component.name}/versions/{component.version}",
            "name": component.version,
            "type": f"{PROVIDER}/workspaces/components/versions",
            "properties": {
                "componentSpec": copy.deepcopy(component.spec),
                "description": component.description,
                "tags": dict(component.tags),
                "properties": {},
                "isAnonymous": False,
                "isArchived": False,
                "provisioningState": "Succeeded",
            },
            "systemData": {
                "createdAt": _iso(component.created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(component.created_at),
            },
        }

    def _component_container_body(self, name: str) -> dict[str, Any]:
        versions = self._component_versions(name)
        numeric = [int(c.version) for c in versions if c.version.isdigit()]
        return {
            "id": f"{self.workspace_id}/components/{versions[0].name}",
            "name": versions[0].name,
            "type": f"{PROVIDER}/workspaces/components",
            "properties": {
                "description": versions[-1].description,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "latestVersion": versions[-1].version,
                "nextVersion": str(max(numeric, default=0) + 1),
                "provisioningState": "Succeeded",
            },
            "systemData": {"createdAt": _iso(versions[0].created_at), "createdByType": "Application"},
        }

    def _list_component_containers(self, request: Request) -> Response:
        names = sorted(key for key, versions in self._components.items() if versions)
        return self._page(request, [self._component_container_body(name) for name in names])

    def _get_component_container(self, request: Request, name: str) -> Response:
        if not self._components.get(name.lower()):
            raise ArmError(404, "UserError", f"Could not find asset with name {name}.")
        return Response(200, self._component_container_body(name))

    def _list_component_versions(self, request: Request, name: str) -> Response:
        """Newest first by default; ``$orderBy=createdtime desc&$top=1`` is how azure-ai-ml resolves ``@latest``."""
        versions = self._component_versions(name)
        order = (request.query.get("$orderBy") or "createdtime desc").lower().split()
        if order and order[0] in {"createdtime", "createdat", "properties/createdtime"}:
            versions.sort(key=lambda c: (c.created_at, c.sequence), reverse=len(order) > 1 and order[1] == "desc")
        else:
            versions.sort(key=lambda c: (len(c.version), c.version), reverse=len(order) > 1 and order[1] == "desc")
        if top := request.query.get("$top"):
            versions = versions[: int(top)]
        return self._page(request, [self._component_version_body(c) for c in versions])

    def _get_component_version(self, request: Request, name: str, version: str) -> Response:
        return Response(200, self._component_version_body(self._get_component_entity(name, version)))

    def _check_job_component(self, props: Mapping[str, Any]) -> None:
        """A job of a workspace component: the component exists and the inputs are ones it declares."""
        component_id = str(props.get("componentId") or "")
        match = re.search(r"/workspaces/([^/]+)/components/([^/]+)/versions/([^/]+)$", component_id, re.IGNORECASE)
        if match is None:
            return  # inline jobs, registry components and anonymous components are not checked
        component = self._get_component_entity(match[2], match[3])
        declared: Mapping[str, Any] = component.spec.get("inputs") or {}
        given = set(props.get("inputs") or {})
        unknown = sorted(given - set(declared))
        if unknown:
            raise ArmError(
                400,
                "UserError",
                f"Input(s) {', '.join(unknown)} are not declared by component {component.name}:{component.version} "
                f"(it declares: {', '.join(sorted(declared)) or 'none'}).",
            )
        missing = sorted(
            name
            for name, spec in declared.items()
            if name not in given and not spec.get("optional") and spec.get("default") is None
        )
        if missing:
            raise ArmError(
                400,
                "UserError",
                f"Required input(s) {', '.join(missing)} of component {component.name}:{component.version} "
                "are not provided.",
            )

    # ------------------------------------------------------------------ outbox

    def _emit(self, event_type: str, subject: str, data: Mapping[str, Any], at: float) -> None:
        """Queue one event as Azure ML publishes it through Event Grid (Event Grid schema)."""
        self._outbox.append(
            {
                "id": str(uuid.uuid4()),
                "topic": self.workspace_id,
                "subject": subject,
                "eventType": f"{EVENT_TYPE_PREFIX}{event_type}",
                "eventTime": _iso(at),
                "data": dict(data),
                "dataVersion": "2",
                "metadataVersion": "1",
            }
        )

    def _announce_ended_jobs(self) -> None:
        """RunCompleted for each newly completed job, RunStatusChanged for each newly failed one (AML's rule)."""
        for job in sorted(self._jobs.values(), key=lambda j: j.ends_at):
            if job.announced or job.canceled or _now() < job.ends_at:
                continue
            job.announced = True
            props = job.body["properties"]
            experiment = str(props.get("experimentName") or "Default")
            experiment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_guid}/experiments/{experiment}"))
            data: dict[str, Any] = {
                "experimentId": experiment_id,
                "experimentName": experiment,
                "runId": job.name,
                "runType": RUN_TYPES.get(str(props.get("jobType", "")).lower(), str(props.get("jobType", ""))),
                "runTags": dict(props.get("tags") or {}),
                "runProperties": dict(props.get("properties") or {}),
            }
            subject = f"experiments/{experiment_id}/runs/{job.name}"
            if job.outcome == "Completed":
                self._emit("RunCompleted", subject, data, job.ends_at)
            elif job.outcome == "Failed":
                self._emit("RunStatusChanged", subject, {**data, "runStatus": "Failed"}, job.ends_at)

    # ------------------------------------------------------------------ jobs

    def _job_status(self, job: Job) -> str:
        if job.canceled:
            return "Canceled"
        elapsed = _now() - job.created_at
        if _now() >= job.ends_at:
            return job.outcome
        return "Running" if elapsed > 0.05 else "Starting"

    def _job_body(self, job: Job) -> dict[str, Any]:
        body = copy.deepcopy(job.body)
        body["properties"]["status"] = self._job_status(job)
        return body

    def _get_job_entity(self, name: str) -> Job:
        job = self._jobs.get(name.lower())
        if job is None:
            raise ArmError(404, "UserError", f"Could not find job '{name}'.")
        return job

    def _list_jobs(self, request: Request) -> Response:
        jobs = sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)
        return self._page(request, [self._job_body(j) for j in jobs])

    def _get_job(self, request: Request, name: str) -> Response:
        return Response(200, self._job_body(self._get_job_entity(name)))

    def _put_job(self, request: Request, name: str) -> Response:
        body = request.json() or {}
        props = dict(body.get("properties") or {})
        existing = self._jobs.get(name.lower())
        if existing is not None:
            # AML updates a job's mutable fields in place; the run itself is neither resubmitted nor restarted.
            current = existing.body["properties"]
            for mutable in ("tags", "description", "displayName", "properties"):
                if mutable in props:
                    current[mutable] = props[mutable]
            return Response(200, self._job_body(existing))
        self._check_job_component(props)
        created = _now()
        props.setdefault("jobType", "Command")
        props.setdefault("experimentName", "Default")
        props.setdefault("displayName", name)
        props.setdefault(
            "services", {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}", "jobServiceType": "Studio"}}
        )
        job_body = {
            "id": f"{self.workspace_id}/jobs/{name}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/jobs",
            "properties": props,
            "systemData": {"createdAt": _iso(created), "createdBy": "devkit", "createdByType": "Application"},
        }
        outcome = "Failed" if name.lower() in self._failing_jobs else "Completed"
        job = Job(name, job_body, created, created + self.job_duration_s, outcome)
        self._jobs[name.lower()] = job
        return Response(201, self._job_body(job))

    def _cancel_job(self, request: Request, name: str) -> Response:
        job = self._get_job_entity(name)
        if _now() < job.ends_at:
            job.canceled = True
        return Response(202, None, {"Location": f"{self.url}{request.path}"})

    # ------------------------------------------------------------------ helpers

    def _page(self, request: Request, items: list[dict[str, Any]], page_size: int = 100) -> Response:
        skip = int(request.query.get("$skipToken") or 0)
        page = items[skip : skip + page_size]
        body: dict[str, Any] = {"value": page}
        if skip + page_size < len(items):
            query = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "$skipToken")
            body["nextLink"] = f"{self.url}{request.path}?{query}&$skipToken={skip + page_size}"
        return Response(200, body)

    # ------------------------------------------------------------------ HTTP control API

    def _control(self, request: Request) -> Response:
        """``/_emulator/...``: reset, requests, faults, models, components, events, state, config. Never logged,
        never authorized.

        - ``POST /_emulator/reset``
        - ``GET /_emulator/requests`` (``?method=&path_contains=&since=``), ``DELETE /_emulator/requests``
        - ``GET /_emulator/requests/counts``
        - ``PUT /_emulator/faults`` ``{"rate_429", "rate_500", "methods", "path_pattern", "retry_after_s",
          "latency_ms", "seed"}``; ``DELETE /_emulator/faults``; ``POST /_emulator/faults/next``
          ``{"count", "status", "retry_after_s"}``
        - ``PUT /_emulator/config`` ``{"operation_duration_s", "poll_interval_s", "job_duration_s",
          "failing_deployments": [...], "failing_jobs": [...]}``
        - ``POST /_emulator/models`` ``{"name", "version", "type", "tags", "created_at"}``
        - ``POST /_emulator/components`` ``{"name", "version", "inputs", "outputs", "type", "created_at",
          "description", "tags"}`` (``inputs``: a list of names or ``{name: type | {"type", "optional", "default"}}``)
        - ``GET /_emulator/events`` (the outbox, kept); ``POST /_emulator/events/take`` (returned and cleared)
        - ``GET /_emulator/state``
        """
        route = request.path[len(CONTROL_PREFIX) :].rstrip("/")
        body = request.json() if request.body else {}
        key = (request.method, route)
        if key == ("POST", "/reset"):
            self.reset()
            return Response(204)
        if key == ("GET", "/requests"):
            since = request.query.get("since")
            logged = self.requests(
                method=request.query.get("method"),
                path_contains=request.query.get("path_contains"),
                since=float(since) if since else None,
            )
            return Response(200, {"value": [asdict(r) | {"is_write": r.is_write} for r in logged]})
        if key == ("GET", "/requests/counts"):
            since = request.query.get("since")
            return Response(200, self.request_counts(float(since) if since else None))
        if key == ("DELETE", "/requests"):
            self.clear_requests()
            return Response(204)
        if key == ("PUT", "/faults"):
            self.inject_faults(**body)
            return Response(204)
        if key == ("DELETE", "/faults"):
            self.clear_faults()
            return Response(204)
        if key == ("POST", "/faults/next"):
            retry_after = body.get("retry_after_s")
            self.fail_next(
                int(body.get("count", 1)),
                int(body.get("status", 429)),
                float(retry_after) if retry_after is not None else None,
            )
            return Response(204)
        if key == ("PUT", "/config"):
            if "operation_duration_s" in body:
                self.set_operation_duration(float(body["operation_duration_s"]))
            if "poll_interval_s" in body:
                self.set_poll_interval(float(body["poll_interval_s"]))
            if "job_duration_s" in body:
                with self._lock:
                    self.job_duration_s = float(body["job_duration_s"])
            self.fail_deployments(*body.get("failing_deployments", []))
            self.fail_jobs(*body.get("failing_jobs", []))
            return Response(204)
        if key == ("POST", "/models"):
            model = self.seed_model(
                body["name"],
                body["version"],
                body.get("type", "mlflow_model"),
                body.get("tags"),
                body.get("created_at"),
                body.get("properties"),
                body.get("description"),
            )
            return Response(201, {"name": model.name, "version": model.version})
        if key == ("POST", "/components"):
            component = self.seed_component(
                body["name"],
                body["version"],
                body.get("inputs") or (),
                outputs=body.get("outputs") or ("model",),
                component_type=body.get("type", "pipeline"),
                created_at=body.get("created_at"),
                description=body.get("description"),
                tags=body.get("tags"),
            )
            return Response(201, {"name": component.name, "version": component.version})
        if key == ("GET", "/events"):
            return Response(200, {"value": self.events()})
        if key == ("POST", "/events/take"):
            return Response(200, {"value": self.take_events()})
        if key == ("GET", "/state"):
            return Response(200, self.snapshot())
        raise ArmError(404, "NotFound", f"Unknown control route {request.method} {request.path}")
