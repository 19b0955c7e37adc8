"""Emulated deployment health: error rate and latency per deployment, from the control API or model tags."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

#: Model tags that set a deployment's emulated health (the control API overrides them).
TAG_PREFIX = "emulator."
TAG_ERROR_RATE = "emulator.error_rate"  # percent of requests the model answers with ``error_status`` (0..100)
TAG_P50_MS = "emulator.p50_ms"  # median latency, milliseconds
TAG_P99_MS = "emulator.p99_ms"  # 99th percentile latency, milliseconds
TAG_SMOKE = "emulator.smoke"  # "fail": the model answers every request with ``fail_status``
TAG_FAIL_STATUS = "emulator.fail_status"  # what the model container answers when failing (default 500)
TAG_TIMEOUT_RATE = "emulator.timeout_rate"  # percent of requests answered 408: scoring took too long (0..100)
TAG_OVERLOAD_RATE = "emulator.overload_rate"  # percent of requests answered 429: too many pending (0..100)
#: Azure ML's default scoring timeout, ``request_settings.request_timeout_ms`` (reference-yaml-deployment-managed-
#: online, RequestSettings): a request answered 408 waited this long.
REQUEST_TIMEOUT_MS = 5000.0

#: z-score of the 99th percentile of a standard normal: sigma of the lognormal from (p50, p99).
_Z99 = 2.3263478740408408
_STANDARD_NORMAL = NormalDist()


class HealthError(ValueError):
    """A health setting (tag or control field) with a bad value; the message names it and the rule."""


@dataclass(frozen=True)
class Health:
    """How one deployment's model behaves: share of model errors and a lognormal latency (median, p99)."""

    error_rate: float = 0.0  # percent, 0..100
    p50_ms: float = 20.0
    p99_ms: float = 60.0
    fail_all: bool = False
    fail_status: int = 500
    timeout_rate: float = 0.0  # percent answered 408 by the endpoint (the model took longer than its timeout)
    overload_rate: float = 0.0  # percent answered 429 by the endpoint (too many requests pending)

    def __post_init__(self) -> None:
        for name, rate in (("error_rate", self.error_rate), ("timeout_rate", self.timeout_rate)):
            if not 0.0 <= rate <= 100.0:
                raise HealthError(f"{name} {rate} is a percent: it must be between 0 and 100")
        if not 0.0 <= self.overload_rate <= 100.0 - self.timeout_rate:
            raise HealthError(
                f"overload_rate {self.overload_rate} is a percent: at most 100 - timeout_rate ({self.timeout_rate})"
            )
        if self.p50_ms <= 0 or self.p99_ms < self.p50_ms:
            raise HealthError(f"latency p50_ms={self.p50_ms}, p99_ms={self.p99_ms}: need 0 < p50_ms <= p99_ms")
        if not 400 <= self.fail_status <= 599:
            raise HealthError(f"fail_status {self.fail_status} must be an HTTP error status (400..599)")

    def with_changes(self, changes: Mapping[str, Any]) -> Health:
        """A copy with some fields changed (unknown names raise :class:`HealthError`)."""
        known = {"error_rate", "p50_ms", "p99_ms", "fail_all", "fail_status", "timeout_rate", "overload_rate"}
        unknown = set(changes) - known
        if unknown:
            raise HealthError(f"unknown health field(s) {sorted(unknown)}; known: {sorted(known)}")
        typed: dict[str, Any] = {}
        for key, value in changes.items():
            typed[key] = bool(value) if key == "fail_all" else int(value) if key == "fail_status" else float(value)
        return replace(self, **typed)


def cached_tag_health(tags: Mapping[str, str]) -> Health:
    """``health_from_tags(tags)``, remembered per distinct set of ``emulator.*`` tags: synthetic load asks it for
    every request, and a model's tags change far less often than that."""
    return _tag_health(tuple(sorted((k, v) for k, v in tags.items() if k.startswith(TAG_PREFIX))))


@functools.lru_cache(maxsize=512)
def _tag_health(emulator_tags: tuple[tuple[str, str], ...]) -> Health:
    return health_from_tags(dict(emulator_tags))


def health_from_tags(tags: Mapping[str, str], base: Health | None = None) -> Health:
    """The health the ``emulator.*`` tags of a model ask for (other tags are ignored)."""
    health = base or Health()
    changes: dict[str, Any] = {}
    numbers = (
        (TAG_ERROR_RATE, "error_rate"),
        (TAG_P50_MS, "p50_ms"),
        (TAG_P99_MS, "p99_ms"),
        (TAG_TIMEOUT_RATE, "timeout_rate"),
        (TAG_OVERLOAD_RATE, "overload_rate"),
    )
    for tag, field in numbers:
        if tag in tags:
            try:
                changes[field] = float(tags[tag])
            except ValueError:
                raise HealthError(f"model tag {tag}={tags[tag]!r} must be a number") from None
    if TAG_FAIL_STATUS in tags:
        try:
            changes["fail_status"] = int(tags[TAG_FAIL_STATUS])
        except ValueError:
            raise HealthError(f"model tag {TAG_FAIL_STATUS}={tags[TAG_FAIL_STATUS]!r} must be an integer") from None
    if TAG_SMOKE in tags:
        value = tags[TAG_SMOKE].strip().lower()
        if value not in {"fail", "pass"}:
            raise HealthError(f"model tag {TAG_SMOKE}={tags[TAG_SMOKE]!r} must be 'fail' or 'pass'")
        changes["fail_all"] = value == "fail"
    if "p50_ms" in changes and "p99_ms" not in changes:
        changes["p99_ms"] = max(health.p99_ms, changes["p50_ms"])
    return health.with_changes(changes)


@dataclass(frozen=True)
class Outcome:
    """What the endpoint answered for one request to one deployment, as Azure Monitor would record it."""

    status: int  # what the client got
    model_status: int  # what the model container answered (0: the request never reached it)
    latency_ms: float


def model_outcome(health: Health, rng: random.Random, *, bad_input: bool = False) -> Outcome:
    """Draw one request's outcome from a serving deployment's health.

    A model container that answers non-200 makes the managed endpoint answer 424 with the model's status in
    ``ms-azureml-model-error-statuscode`` (and in the ``modelStatusCode`` metric dimension): Azure ML's
    troubleshooting guide, "HTTP status codes" (learn.microsoft.com/azure/machine-learning/
    how-to-troubleshoot-online-endpoints#http-status-codes).
    """
    if (refused := capacity_outcome(health, rng)) is not None:
        return refused
    latency = lognormal_ms(health, rng.random())
    failed = health.fail_all or rng.random() * 100.0 < health.error_rate
    if bad_input and not failed:
        return Outcome(424, 400, latency)
    if failed:
        return Outcome(424, health.fail_status, latency)
    return Outcome(200, 200, latency)


def capacity_outcome(health: Health, rng: random.Random) -> Outcome | None:
    """408 or 429 for a deployment that times out or is overloaded, drawn from its rates; None to serve the request.

    Azure ML's troubleshooting guide, "HTTP status codes" (learn.microsoft.com/azure/machine-learning/
    how-to-troubleshoot-online-endpoints#http-status-codes): 408 when "the model execution took longer than the
    timeout supplied in request_timeout_ms" (the caller waited that long), 429 "too many pending requests" beyond
    ``2 * max_concurrent_requests_per_instance * instance_count`` (refused at once). Neither answer comes from the
    model container, so the model status is 0. Healthy deployments draw nothing here, keeping seeded runs as they were.
    """
    if not (health.timeout_rate or health.overload_rate):
        return None
    roll = rng.random() * 100.0
    if roll < health.timeout_rate:
        return Outcome(408, 0, REQUEST_TIMEOUT_MS)
    if roll < health.timeout_rate + health.overload_rate:
        return Outcome(429, 0, 1.0)
    return None


def unavailable_outcome(state: str) -> Outcome:
    """A deployment whose container is not serving: 503 while it is still being created, 502 once Failed."""
    return Outcome(502 if state == "Failed" else 503, 0, 1.0)


def lognormal_ms(health: Health, u: float) -> float:
    """The latency at quantile ``u`` of the lognormal whose median and 99th percentile are the health's."""
    sigma = math.log(health.p99_ms / health.p50_ms) / _Z99
    u = min(max(u, 1e-12), 1 - 1e-12)
    return health.p50_ms * math.exp(sigma * _inverse_normal(u))


def _inverse_normal(p: float) -> float:
    # statistics.NormalDist is exact enough and in the standard library.
    return _STANDARD_NORMAL.inv_cdf(p)


def score_body(deployment: str, model: str, payload: Any) -> dict[str, Any]:
    """A deterministic answer echoing the input: its digest and one pseudo-prediction per input row."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()
    rows = 1
    if isinstance(payload, dict):
        data = (payload.get("input_data") or {}) if isinstance(payload.get("input_data"), dict) else {}
        candidates = data.get("data") or payload.get("data") or payload.get("inputs")
        if isinstance(candidates, list) and candidates:
            rows = len(candidates)
    rows = min(rows, 10_000)
    predictions = [int(digest[(2 * i) % 64 : (2 * i) % 64 + 2], 16) / 255 for i in range(rows)]
    return {"deployment": deployment, "model": model, "input_sha256": digest, "predictions": predictions}
