"""Request limits, as an option: ARM's token buckets per principal (429) and the metrics batch API's (529).

Azure Resource Manager throttles with a token bucket per subscription, per service principal and per operation type
in each region: reads 250 tokens refilled at 25 a second, writes and deletes 200 refilled at 10 a second, and every
principal of the subscription together 15 times that ("Understand how Azure Resource Manager throttles requests",
learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling, "Regional throttling and
token bucket algorithm"). Each answer carries ``x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`` (and
the ``-global-`` variants); past the limit ARM answers 429 with ``Retry-After``. Metric reads through ARM
(``.../providers/Microsoft.Insights/metrics``) are ARM reads like any other.

Azure Monitor's ``metrics:getBatch`` (a data-plane API on ``{region}.metrics.monitor.azure.com``) publishes no request
rate; its documented throttling answer is 529 ("How to migrate from the metrics API to the getBatch API",
learn.microsoft.com/azure/azure-monitor/essentials/migrate-to-batch-api, "529 throttling errors"). A bucket for it is
the caller's to choose.

Buckets refill on the emulated clock, so a time-lapsed benchmark sees the limits in emulated seconds; ``Retry-After``
is sent in wall-clock seconds (what the client sleeps), with ``retry-after-ms`` for the sub-second part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import ArmError

#: The ARM token buckets of the page above: operation kind -> (bucket size, tokens refilled per second).
ARM_LIMITS: Mapping[str, tuple[float, float]] = {"reads": (250, 25), "writes": (200, 10), "deletes": (200, 10)}
#: All the subscription's principals together may spend this many times one principal's bucket.
GLOBAL_FACTOR = 15
ARM_API = "arm"
BATCH_API = "metrics-batch"


def operation_kind(method: str) -> str:
    """ARM's operation type for a method: GET/HEAD are reads, DELETE deletes, everything else writes."""
    method = method.upper()
    return "reads" if method in {"GET", "HEAD"} else "deletes" if method == "DELETE" else "writes"


@dataclass
class TokenBucket:
    """``size`` tokens at most, ``refill`` more each (emulated) second; one token per request."""

    size: float
    refill: float
    tokens: float
    at: float

    def take(self, now: float) -> tuple[bool, float]:
        """Spend a token if there is one: (taken, seconds until the next token when not)."""
        self.tokens = min(self.size, self.tokens + max(0.0, now - self.at) * self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.refill


class LimitsArea(AreaBase):
    """The optional request limits, checked before a request reaches its route (as ARM checks before the RP)."""

    _arm_limits: Mapping[str, tuple[float, float]] | None
    _batch_limit: tuple[float, float] | None
    _buckets: dict[tuple[str, ...], TokenBucket]

    def _reset_limits(self) -> None:
        self._arm_limits = None
        self._batch_limit = None
        self._buckets = {}

    def set_request_limits(
        self,
        arm: Mapping[str, tuple[float, float]] | None = ARM_LIMITS,
        *,
        metrics_batch: tuple[float, float] | None = None,
    ) -> None:
        """Throttle ARM per principal with ``arm`` (kind -> (bucket size, refill per second); ``None``: no limit)
        and ``metrics:getBatch`` per principal with ``metrics_batch`` (same shape; ``None``: no limit)."""
        for kind, (size, refill) in (arm or {}).items():
            if kind not in ARM_LIMITS or size < 1 or refill <= 0:
                raise ValueError(f"ARM limit {kind}={size}/{refill}: kinds are {', '.join(ARM_LIMITS)}, size >= 1")
        if metrics_batch is not None and (metrics_batch[0] < 1 or metrics_batch[1] <= 0):
            raise ValueError(f"metrics_batch={metrics_batch}: (bucket size >= 1, refill per second > 0)")
        with self._lock:
            self._arm_limits = dict(arm) if arm else None
            self._batch_limit = metrics_batch
            self._buckets = {}

    def _limits_control(self, method: str, route: str, body: Mapping[str, Any]) -> Response | None:
        """``PUT /_emulator/limits`` ``{"arm": {"reads": [size, refill], ...} | "documented" | null,
        "metrics_batch": [size, refill] | null}``; ``DELETE /_emulator/limits`` (``None``: not a limits route)."""
        if route != "/limits" or method not in {"PUT", "DELETE"}:
            return None
        if method == "DELETE":
            self.set_request_limits(None)
            return Response(204)
        arm = body.get("arm", "documented")
        limits = ARM_LIMITS if arm == "documented" else {k: (float(v[0]), float(v[1])) for k, v in (arm or {}).items()}
        batch = body.get("metrics_batch")
        self.set_request_limits(limits or None, metrics_batch=(float(batch[0]), float(batch[1])) if batch else None)
        return Response(204)

    def _principal(self, request: Request) -> str:
        """The caller's principal: the token's ``oid`` (the devkit's tokens are checked by the issuer)."""
        auth = request.headers.get("authorization") or ""
        claims = self.issuer.verify(auth[7:].strip()) if self.issuer is not None and len(auth) > 7 else None
        return str((claims or {}).get("oid") or "")

    def _throttle(self, request: Request, api: str, principal: str) -> tuple[Response | None, dict[str, str]]:
        """(the throttled answer or None, the headers to add to the answer). Spends a token when limits are set."""
        with self._lock:
            now = self._clock.now()
            if api == BATCH_API:
                if self._batch_limit is None:
                    return None, {}
                taken, wait = self._bucket(("batch", principal), self._batch_limit, now).take(now)
                return (None, {}) if taken else (self._throttled(529, wait), {})
            if self._arm_limits is None:
                return None, {}
            kind = operation_kind(request.method)
            limit = self._arm_limits.get(kind)
            if limit is None:
                return None, {}
            mine = self._bucket((kind, self.subscription_id, principal), limit, now)
            shared = (limit[0] * GLOBAL_FACTOR, limit[1] * GLOBAL_FACTOR)
            everyone = self._bucket((kind, self.subscription_id), shared, now)
            taken, wait = mine.take(now)
            if taken:
                taken, wait = everyone.take(now)
                if not taken:
                    mine.tokens += 1  # refused: the principal's token is not spent
            headers = {
                f"x-ms-ratelimit-remaining-subscription-{kind}": str(int(mine.tokens)),
                f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(int(everyone.tokens)),
            }
            return (None, headers) if taken else (self._throttled(429, wait, headers), headers)

    def _bucket(self, key: tuple[str, ...], limit: tuple[float, float], now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(limit[0], limit[1], limit[0], now)
        return bucket

    def _throttled(self, status: int, wait_s: float, headers: Mapping[str, Any] | None = None) -> Response:
        wall = wait_s / max(self._clock.rate, 1e-9)
        message = (
            "The request was throttled: too many requests for this subscription and principal; retry after the "
            "time in Retry-After."
        )
        response = ArmError(status, "TooManyRequests" if status == 429 else "Throttled", message).response()
        response.headers.update(dict(headers or {}))
        response.headers["Retry-After"] = str(max(1, math.ceil(wall)))
        response.headers["retry-after-ms"] = str(max(1, math.ceil(wall * 1000)))
        return response
