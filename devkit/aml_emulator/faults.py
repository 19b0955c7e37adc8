"""Fault injection: 429/500 rates, scripted failures, stalls, 401/403 windows, failing deletes, deployments and jobs."""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import ArmError
from devkit.identity import DEVKIT_CLIENT_ID, DEVKIT_PRINCIPAL_ID, DEVKIT_TENANT_ID

STALL_APPLY_MODES = ("end", "start")


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


@dataclass
class RequestRule:
    """One scripted answer to chosen ARM requests: ``stall`` them, ``deny`` them (401/403) or ``fail`` them.

    A request matches when its method is in ``methods`` (None = any) and ``path_pattern`` (a regex searched in the
    path, case-insensitively; None = any) is found. The rule acts on the ``nth`` matching request (1 = the first)
    and the ``count - 1`` matching ones after it (``count`` None = every one), while its window lasts (``until``, a
    time of the emulator's clock; None = no window). The first active rule that matches a request, in the order
    added, wins.
    """

    id: str
    kind: str  # stall | deny | fail
    methods: frozenset[str] | None = None
    path_pattern: str | None = None
    nth: int = 1
    count: int | None = 1
    until: float | None = None
    status: int = 0  # deny/fail: the status answered
    code: str | None = None  # fail: the ARM error code (default: one per status)
    message: str | None = None  # fail: the ARM error message (default: one per status)
    seconds: float = 0.0  # stall: how long
    apply: str = "end"  # stall: "end" = applied when the stall ends; "start" = applied at once, answered late
    seen: int = 0  # matching requests so far
    hits: int = 0  # requests it acted on

    def active(self, now: float) -> bool:
        return (self.count is None or self.hits < self.count) and (self.until is None or now < self.until)

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_pattern is None or re.search(self.path_pattern, path, re.IGNORECASE) is not None

    def describe(self, now: float) -> dict[str, Any]:
        """A JSON-able view, with ``active`` (at ``now``, the emulator's clock) and the methods as a sorted list."""
        view = asdict(self)
        view["methods"] = sorted(self.methods) if self.methods is not None else None
        view["active"] = self.active(now)
        return view


def arm_action(method: str, path: str) -> str:
    """The RBAC action ARM checks for ``method`` on ``path``: ``{namespace}/{types...}/{read|write|delete|action}``.

    E.g. PUT of an endpoint is ``Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write`` and POST
    ``.../onlineEndpoints/{name}/listKeys`` is ``Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/
    action`` (Azure resource provider operations:
    https://learn.microsoft.com/azure/role-based-access-control/resource-provider-operations#microsoftmachinelearningservices).
    """
    _, _, tail = path.partition("/providers/")
    parts = [p for p in tail.split("/") if p]
    if not parts:
        return "Microsoft.Resources/subscriptions/resourceGroups/" + ("read" if method == "GET" else "write")
    namespace, rest = parts[0], parts[1:]
    types = rest[0::2]
    if len(rest) % 2 == 1 and method == "POST":
        return "/".join([namespace, *types, "action"])
    verb = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "action")
    return "/".join([namespace, *types, verb])


#: Default ARM error code and message of a ``fail`` rule, by status.
_FAIL_ANSWERS = {
    400: ("BadRequest", "The request is invalid."),
    404: ("NotFound", "The specified resource was not found."),
    409: ("Conflict", "The request conflicts with an operation in progress on the resource. Retry later."),
    429: ("TooManyRequests", "The request is being throttled."),
    500: ("InternalServerError", "An unexpected error occurred."),
    502: ("BadGateway", "The gateway did not receive a response from the resource provider."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}


class FaultsArea(AreaBase):
    """The emulator's fault controls and the check every authorized ARM request goes through."""

    _faults: FaultPlan
    _rng: random.Random
    _rules: list[RequestRule]
    _releases: dict[str, threading.Event]  # a stall rule's id -> set to end its stalls early

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
        """Remove every injected fault, request rule and the extra latency (failing deployments are kept)."""
        with self._lock:
            self._faults = FaultPlan()
            self._rules = []
            self.release_stalls()

    # ------------------------------------------------------------------ request rules: stall, deny, fail

    def stall_requests(
        self,
        seconds: float,
        *,
        methods: Iterable[str] | None = None,
        path_pattern: str | None = None,
        apply: str = "end",
        nth: int = 1,
        count: int | None = 1,
    ) -> str:
        """Hold chosen ARM requests for ``seconds`` of real time (:meth:`release_stalls` ends it early), serving every
        other request meanwhile; returns the rule id. ``apply="end"`` (the default) applies the request when the
        stall ends: a traffic PUT stalled this way takes effect *after* the requests served during the stall, as a
        write that was slow on the wire lands late. It lands even if the client gave up waiting, as ARM would.
        ``apply="start"`` applies it at once and only answers late (the write is visible before the caller hears
        back). Matching: see :class:`RequestRule`."""
        if apply not in STALL_APPLY_MODES:
            raise ValueError(f"apply must be one of {STALL_APPLY_MODES}, not {apply!r}")
        return self._add_rule("stall", methods, path_pattern, nth, count, None, seconds=seconds, apply=apply)

    def deny_requests(
        self,
        status: int = 403,
        *,
        methods: Iterable[str] | None = None,
        path_pattern: str | None = None,
        seconds: float | None = None,
        count: int | None = None,
        nth: int = 1,
    ) -> str:
        """Refuse chosen ARM requests as ARM does while a role assignment propagates; returns the rule id.

        403 answers ``AuthorizationFailed`` with ARM's text, naming the caller (the token's ``appid``/``oid``), the
        action derived from the method and resource type (:func:`arm_action`) and the scope (the request path).
        401 answers ``InvalidAuthenticationToken`` with a ``WWW-Authenticate`` challenge. The window lasts
        ``seconds`` from now on the emulator's clock (wall time unless a test or the host's time lapse moves it, as
        for the metrics room: ``advance_clock`` past it ends it) and/or ``count`` matching requests (both None: until
        cleared).
        ARM's text: "Troubleshoot Azure RBAC", https://learn.microsoft.com/azure/role-based-access-control/
        troubleshooting (symptom "does not have authorization ... or the scope is invalid. If access was recently
        granted, please refresh your credentials."); role assignments take up to 10 minutes to take effect (same page).
        """
        if status not in (401, 403):
            raise ValueError(f"deny_requests answers 401 or 403, not {status}; use fail_requests for other statuses")
        return self._add_rule("deny", methods, path_pattern, nth, count, seconds, status=status)

    def fail_requests(
        self,
        status: int,
        *,
        methods: Iterable[str] | None = None,
        path_pattern: str | None = None,
        count: int | None = None,
        nth: int = 1,
        seconds: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> str:
        """Answer chosen ARM requests with ``status`` (and ARM's error body) instead of serving them; returns the id.

        401 and 403 get :meth:`deny_requests`' bodies. ``count`` None fails every matching request (until cleared or
        ``seconds`` of the emulator's clock pass). Nothing is applied: the resource is untouched.
        """
        return self._add_rule(
            "fail", methods, path_pattern, nth, count, seconds, status=status, code=code, message=message
        )

    def fail_deletes(
        self, endpoint: str, deployment: str | None = None, *, status: int = 409, count: int | None = None
    ) -> str:
        """Answer DELETE of this endpoint (or of its ``deployment``) with ``status`` (403, 409, 500...); returns the id.

        ``count`` None refuses every DELETE until the rule is cleared; otherwise the next ``count``.
        """
        path = f"/onlineEndpoints/{re.escape(endpoint)}"
        if deployment is not None:
            path += f"/deployments/{re.escape(deployment)}"
        return self.fail_requests(status, methods=["DELETE"], path_pattern=path + "$", count=count)

    def release_stalls(self) -> None:
        """End the stalls in progress now (clearing the faults or a reset does too): no waiting out their rest."""
        with self._lock:
            for released in getattr(self, "_releases", {}).values():
                released.set()
            self._releases = {}

    def request_rules(self) -> list[dict[str, Any]]:
        """Every rule added since the last clear, with how many requests each matched (``seen``) and hit."""
        with self._lock:
            now = self._clock.now()
            return [rule.describe(now) for rule in self._rules]

    def clear_rule(self, rule_id: str) -> None:
        """Remove one rule (unknown ids are ignored)."""
        with self._lock:
            self._rules = [rule for rule in self._rules if rule.id != rule_id]

    def _add_rule(
        self,
        kind: str,
        methods: Iterable[str] | None,
        path_pattern: str | None,
        nth: int,
        count: int | None,
        window_s: float | None,
        **extra: Any,
    ) -> str:
        """Add a rule; its window (``window_s``, None: none) starts now on the emulator's clock."""
        if nth < 1 or (count is not None and count < 1):
            raise ValueError("nth and count must be at least 1 (count None = every matching request)")
        if path_pattern is not None:
            re.compile(path_pattern)
        with self._lock:
            rule = RequestRule(
                id=uuid.uuid4().hex[:8],
                kind=kind,
                methods=frozenset(m.upper() for m in methods) if methods is not None else None,
                path_pattern=path_pattern,
                nth=nth,
                count=count,
                until=self._clock.now() + window_s if window_s is not None else None,
                **extra,
            )
            self._rules.append(rule)
        return rule.id

    def _apply_rules(
        self, request: Request, route: Callable[[Request], Response]
    ) -> tuple[Response | None, RequestRule | None]:
        """Apply the first active rule matching ``request``: its answer (or ``route``'s, stalled) and the rule."""
        with self._lock:
            now = self._clock.now()
            hit: RequestRule | None = None
            for rule in self._rules:
                if not rule.active(now) or not rule.matches(request.method, request.path):
                    continue
                rule.seen += 1
                if rule.seen >= rule.nth:
                    rule.hits += 1
                    hit = rule
                    break
        if hit is None:
            return None, None
        if hit.kind == "stall":
            with self._lock:
                released = self._releases.setdefault(hit.id, threading.Event())
            if hit.apply == "start":
                response = route(request)
                released.wait(hit.seconds)
                return response, hit
            released.wait(hit.seconds)
            return route(request), hit
        if hit.status in (401, 403):
            return self._denied(request, hit.status), hit
        code, message = _FAIL_ANSWERS.get(hit.status, ("Error", "The request failed."))
        response = ArmError(
            hit.status, hit.code or code, hit.message or f"{message} (injected by the devkit)"
        ).response()
        if hit.status in (429, 503):
            response.headers["Retry-After"] = "1"
        return response, hit

    def _denied(self, request: Request, status: int) -> Response:
        if status == 401:
            response = ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.").response()
            response.headers["WWW-Authenticate"] = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{DEVKIT_TENANT_ID}", '
                'error="invalid_token", error_description="The access token is invalid."'
            )
            return response
        client, object_id = self._caller(request)
        return ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{client}' with object id '{object_id}' does not have authorization to perform action "
            f"'{arm_action(request.method, request.path)}' over scope '{request.path}' or the scope is invalid. "
            "If access was recently granted, please refresh your credentials.",
        ).response()

    def _caller(self, request: Request) -> tuple[str, str]:
        """The ``appid`` and ``oid`` of the request's token (the devkit's own identity when unreadable)."""
        auth = request.headers.get("authorization", "")
        claims = self.issuer.verify(auth[7:].strip()) if self.issuer is not None and len(auth) > 7 else None
        claims = claims or {}
        return str(claims.get("appid", DEVKIT_CLIENT_ID)), str(claims.get("oid", DEVKIT_PRINCIPAL_ID))

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
