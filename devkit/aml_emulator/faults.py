"""Fault injection: seeded 429/500 rates, scripted next failures, latency, and failing deployments and jobs."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from devkit._server import Request, Response
from devkit.aml_emulator.state import ArmError


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


class FaultsArea:
    """The emulator's fault controls and the check every authorized ARM request goes through."""

    _lock: threading.RLock
    _faults: FaultPlan
    _rng: random.Random
    _failing_deployments: set[str]
    _failing_jobs: set[str]

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
