"""The metric gate (pure): a bake window's Azure Monitor data points and a policy → PASS, FAIL or INCONCLUSIVE.

Modelled on Argo Rollouts' AnalysisRun and Flagger's canary analysis: one evaluation is a value that carries
its inputs, its measurements and its outcome, with an explicit *inconclusive* outcome for "not enough data to
judge", so the caller can store it on the ledger row and in the notification as it is.

What counts as an error: the answers Azure ML documents as the deployment's own failures, 5xx, 408 and 429
by default, also behind a 424 in ``modelStatusCode`` (``gate_statuses.py``; ``GATE_ERROR_STATUS_CODES``).
Counting only ``statusCodeClass`` 5xx would pass a canary whose model crashes, times out or is overloaded on
every request. A 424 whose model status is 4xx (bad input) is the caller's error and does not count. The
gate's "server-error share" means exactly this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from app.platform.settings import DEFAULT_ERROR_STATUS_CODES
from app.rollout.decide.gate_statuses import NO_BASELINE_MAX_P99_MS, counts_as_failure

GRAIN = dt.timedelta(minutes=1)  # Azure Monitor's PT1M data points
INCONCLUSIVE_ACTIONS = ("hold", "promote", "rollback")


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 (an outcome, not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class NextAfterInconclusive(StrEnum):
    EXTEND = "extend"  # bake longer and judge again, over the whole (longer) window
    HOLD = "hold"  # stay at this step until an operator acts
    PROMOTE = "promote"  # treat the step as passed
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class RequestPoint:
    """One ``RequestsPerMinute`` data point (aggregation Total) of one series split by deployment, status code
    and class and model status. ``model_status`` is ``"0"`` when the request never reached the model, ``""`` if
    unknown; ``status_code`` is ``""`` when the series was not split by it."""

    deployment: str
    timestamp: dt.datetime
    status_class: str
    model_status: str
    count: float
    status_code: str = ""

    def failed(self, counted: frozenset[str] = DEFAULT_ERROR_STATUS_CODES) -> bool:
        """Was this answer one of the deployment's failures, counting the ``counted`` classes and codes?"""
        return counts_as_failure(self.status_class, self.model_status, self.status_code, counted)

    @property
    def server_error(self) -> bool:
        return self.failed()


@dataclass(frozen=True)
class LatencyPoint:
    """One ``RequestLatency_P99`` data point (aggregation Average) of one deployment's series."""

    deployment: str
    timestamp: dt.datetime
    p99_ms: float


@dataclass(frozen=True)
class MetricWindow:
    """What Azure Monitor returned for one endpoint and one time span (PT1M points, each stamped at its start)."""

    start: dt.datetime
    end: dt.datetime
    requests: tuple[RequestPoint, ...] = ()
    latency: tuple[LatencyPoint, ...] = ()
    grain: dt.timedelta = GRAIN


@dataclass(frozen=True)
class GatePolicy:
    """The platform's thresholds (settings ``GATE_*``), possibly tightened by a model's tags."""

    max_error_rate: float = 1.0  # percent of the new deployment's requests that may be server errors
    max_latency_ratio: float = 1.5  # new P99 ≤ ratio x stable P99, when there is a baseline
    max_p99_ms: float | None = None  # new P99 ≤ this, when set
    min_requests: int = 100  # fewer requests in the window: inconclusive
    metric_lag: dt.timedelta = dt.timedelta(minutes=2)  # points newer than now - lag are left out
    max_extensions: int = 2
    inconclusive: str = "hold"  # after the extensions: hold | promote | rollback
    #: Status classes and codes counted as the deployment's failures (GATE_ERROR_STATUS_CODES).
    error_status_codes: frozenset[str] = DEFAULT_ERROR_STATUS_CODES
    #: The P99 limit when ``max_p99_ms`` is unset and there is no baseline; None: no limit then.
    no_baseline_max_p99_ms: float | None = NO_BASELINE_MAX_P99_MS

    def __post_init__(self) -> None:
        if self.inconclusive not in INCONCLUSIVE_ACTIONS:
            raise ValueError(f"inconclusive={self.inconclusive!r} is not one of {', '.join(INCONCLUSIVE_ACTIONS)}")

    def tightened(self, max_error_rate: float | None, max_p99_ms: float | None) -> tuple[GatePolicy, tuple[str, ...]]:
        """This policy with the model's ``max_error_rate`` / ``max_p99_ms`` tags applied where they are stricter.

        Tags may only tighten: a looser tag is ignored and a note says so (plan time rejects such tags already;
        this covers the platform's settings being tightened after the plan was made).
        """
        notes: list[str] = []
        policy = self
        if max_error_rate is not None:
            if max_error_rate <= self.max_error_rate:
                policy = replace(policy, max_error_rate=max_error_rate)
            else:
                notes.append(
                    f"tag max_error_rate={max_error_rate:g} ignored: looser than GATE_MAX_ERROR_RATE="
                    f"{self.max_error_rate:g} (tags may only tighten)"
                )
        if max_p99_ms is not None:
            if self.max_p99_ms is None or max_p99_ms <= self.max_p99_ms:
                policy = replace(policy, max_p99_ms=max_p99_ms)
            else:
                notes.append(
                    f"tag max_p99_ms={max_p99_ms:g} ignored: looser than GATE_MAX_P99_MS={self.max_p99_ms:g} "
                    "(tags may only tighten)"
                )
        return policy, tuple(notes)


@dataclass(frozen=True)
class GateEvidence:
    """Everything the verdict was based on; ``as_dict`` is what the ledger row and the notification carry."""

    window_start: dt.datetime
    window_end: dt.datetime
    counted_until: dt.datetime  # min(window end, now - lag): later points are not complete in Azure Monitor yet
    new_deployment: str
    stable_deployments: tuple[str, ...]
    new_requests: float
    new_errors: float
    error_share_pct: float | None
    new_p99_ms: float | None
    stable_requests: float
    stable_p99_ms: float | None
    latency_ratio: float | None
    baseline: bool
    max_error_rate: float
    max_latency_ratio: float
    max_p99_ms: float | None
    min_requests: int
    points_used: int
    points_outside_window: int
    points_dropped_for_lag: int
    notes: tuple[str, ...] = ()
    counted_statuses: frozenset[str] = DEFAULT_ERROR_STATUS_CODES

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": {
                "start": self.window_start.isoformat(),
                "end": self.window_end.isoformat(),
                "countedUntil": self.counted_until.isoformat(),
            },
            "newDeployment": self.new_deployment,
            "stableDeployments": list(self.stable_deployments),
            "requests": {"new": self.new_requests, "stable": self.stable_requests},
            "serverErrors": self.new_errors,
            "errorSharePct": _round(self.error_share_pct),
            "p99Ms": {"new": _round(self.new_p99_ms), "stable": _round(self.stable_p99_ms)},
            "latencyRatio": _round(self.latency_ratio),
            "baseline": self.baseline,
            "thresholds": {
                "maxErrorRatePct": self.max_error_rate,
                "maxLatencyRatio": self.max_latency_ratio,
                "maxP99Ms": self.max_p99_ms,
                "minRequests": self.min_requests,
                "countedStatuses": sorted(self.counted_statuses),
            },
            "points": {
                "used": self.points_used,
                "outsideWindow": self.points_outside_window,
                "droppedForLag": self.points_dropped_for_lag,
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class GateResult:
    outcome: Outcome
    reasons: tuple[str, ...]
    evidence: GateEvidence

    @property
    def summary(self) -> str:
        return f"gate {self.outcome.value}: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "reasons": list(self.reasons), "evidence": self.evidence.as_dict()}


@dataclass
class _Tally:
    requests: float = 0.0
    errors: float = 0.0
    per_minute: dict[tuple[str, dt.datetime], float] = field(default_factory=dict)  # (deployment, minute)


def evaluate_gate(
    window: MetricWindow,
    new: str,
    stable: Sequence[str],
    policy: GatePolicy,
    now: dt.datetime,
    notes: Iterable[str] = (),
) -> GateResult:
    """Judge the new deployment ``new`` against ``policy`` and, when there is one, the ``stable`` baseline.

    Only points that lie wholly inside the window and end no later than ``now - policy.metric_lag`` count.
    Rules, all must hold for PASS: server-error share ≤ ``max_error_rate``; P99 ≤ ``max_p99_ms`` (when set);
    P99 ≤ ``max_latency_ratio`` x the stable P99 (when a stable deployment served requests in the window and
    has P99 data; else absolute thresholds only). Fewer than ``min_requests`` requests: INCONCLUSIVE, unless
    the errors already exceed what the whole minimum sample may hold (then FAIL: more traffic cannot help it
    pass at ``min_requests``). Latency data missing where a latency rule applies: INCONCLUSIVE. Any FAIL wins.
    """
    counted = _count(window, new, stable, policy, now)
    evidence = _evidence(window, new, stable, policy, counted, notes)
    return _judge(new, policy, evidence)


@dataclass
class _Counted:
    """What the window's points add up to for the new deployment and the stable ones."""

    counted_until: dt.datetime
    new: _Tally = field(default_factory=lambda: _Tally())
    stable: _Tally = field(default_factory=lambda: _Tally())
    new_latency: list[LatencyPoint] = field(default_factory=list)
    stable_latency: list[LatencyPoint] = field(default_factory=list)
    used: int = 0
    outside: int = 0
    lagged: int = 0

    def keep(self, window: MetricWindow, timestamp: dt.datetime) -> bool:
        """Does a point stamped ``timestamp`` lie wholly inside the window and end before the lag?"""
        if timestamp < window.start or timestamp + window.grain > window.end:
            self.outside += 1
            return False
        if timestamp + window.grain > self.counted_until:
            self.lagged += 1
            return False
        self.used += 1
        return True


def _count(window: MetricWindow, new: str, stable: Sequence[str], policy: GatePolicy, now: dt.datetime) -> _Counted:
    counted = _Counted(min(window.end, now - policy.metric_lag))
    new_key, stable_keys = new.lower(), {name.lower() for name in stable}
    for point in window.requests:
        if not counted.keep(window, point.timestamp):
            continue
        key = point.deployment.lower()
        tally = counted.new if key == new_key else counted.stable if key in stable_keys else None
        if tally is None:
            continue
        tally.requests += point.count
        slot = (key, point.timestamp)
        tally.per_minute[slot] = tally.per_minute.get(slot, 0.0) + point.count
        if point.failed(policy.error_status_codes):
            tally.errors += point.count
    for lat in window.latency:
        if not counted.keep(window, lat.timestamp):
            continue
        key = lat.deployment.lower()
        if key == new_key:
            counted.new_latency.append(lat)
        elif key in stable_keys:
            counted.stable_latency.append(lat)
    return counted


def _evidence(
    window: MetricWindow,
    new: str,
    stable: Sequence[str],
    policy: GatePolicy,
    counted: _Counted,
    notes: Iterable[str],
) -> GateEvidence:
    new_tally, stable_tally = counted.new, counted.stable
    new_p99 = _weighted_p99(counted.new_latency, new_tally.per_minute)
    stable_p99 = _weighted_p99(counted.stable_latency, stable_tally.per_minute)
    baseline = stable_tally.requests > 0 and stable_p99 is not None and stable_p99 > 0
    share = 100.0 * new_tally.errors / new_tally.requests if new_tally.requests else None
    ratio = new_p99 / stable_p99 if baseline and new_p99 is not None and stable_p99 else None
    all_notes = list(notes)
    if not stable:
        all_notes.append("no stable deployment: absolute thresholds only")
    elif not baseline:
        all_notes.append(
            "the stable deployment served no requests with latency data in the window: absolute thresholds only"
        )
    max_p99 = policy.max_p99_ms
    if max_p99 is None and not baseline and new_p99 is not None and policy.no_baseline_max_p99_ms is not None:
        # Nothing to compare with and no limit set: the tail must at least stay clear of the scoring timeout.
        max_p99 = policy.no_baseline_max_p99_ms
        all_notes.append(f"no baseline and no GATE_MAX_P99_MS: P99 limit {max_p99:g} ms")
    return GateEvidence(
        window_start=window.start,
        window_end=window.end,
        counted_until=counted.counted_until,
        new_deployment=new,
        stable_deployments=tuple(stable),
        new_requests=new_tally.requests,
        new_errors=new_tally.errors,
        error_share_pct=share,
        new_p99_ms=new_p99,
        stable_requests=stable_tally.requests,
        stable_p99_ms=stable_p99,
        latency_ratio=ratio,
        baseline=baseline,
        max_error_rate=policy.max_error_rate,
        max_latency_ratio=policy.max_latency_ratio,
        max_p99_ms=max_p99,
        min_requests=policy.min_requests,
        points_used=counted.used,
        points_outside_window=counted.outside,
        points_dropped_for_lag=counted.lagged,
        notes=tuple(all_notes),
        counted_statuses=policy.error_status_codes,
    )


def _judge(new: str, policy: GatePolicy, evidence: GateEvidence) -> GateResult:
    """The rules, on the evidence: a failure wins, then an unknown, else a pass."""
    failures: list[str] = []
    unknowns: list[str] = []
    requests, errors = evidence.new_requests, evidence.new_errors
    budget = policy.max_error_rate / 100.0 * policy.min_requests
    if requests < policy.min_requests:
        if errors > budget:
            failures.append(
                f"{errors:g} server errors in {requests:g} requests already exceed the "
                f"{policy.max_error_rate:g}% allowed in the minimum sample of {policy.min_requests}"
            )
        else:
            unknowns.append(f"{new} served {requests:g} requests, fewer than GATE_MIN_REQUESTS={policy.min_requests}")
        return _result(failures, unknowns, evidence)

    share, new_p99, ratio = evidence.error_share_pct, evidence.new_p99_ms, evidence.latency_ratio
    assert share is not None  # requests >= min_requests >= 1
    if share > policy.max_error_rate:
        failures.append(
            f"server-error share {share:.2f}% ({errors:g}/{requests:g}) is above {policy.max_error_rate:g}%"
        )
    max_p99 = evidence.max_p99_ms
    needs_latency = policy.max_p99_ms is not None or evidence.baseline
    if needs_latency and new_p99 is None:
        unknowns.append(f"no RequestLatency_P99 data for {new} in the window")
    if new_p99 is not None and max_p99 is not None and new_p99 > max_p99:
        failures.append(f"P99 {new_p99:.1f} ms is above the limit of {max_p99:g} ms")
    if ratio is not None and ratio > policy.max_latency_ratio:
        failures.append(
            f"P99 {new_p99:.1f} ms is {ratio:.2f}x the stable P99 {evidence.stable_p99_ms:.1f} ms, above "
            f"{policy.max_latency_ratio:g}x"
        )
    return _result(failures, unknowns, evidence)


def after_inconclusive(extensions_used: int, policy: GatePolicy) -> NextAfterInconclusive:
    """What an inconclusive gate leads to: extend the bake while extensions remain, then ``GATE_INCONCLUSIVE``."""
    if extensions_used < policy.max_extensions:
        return NextAfterInconclusive.EXTEND
    return NextAfterInconclusive(policy.inconclusive)


def _result(failures: list[str], unknowns: list[str], evidence: GateEvidence) -> GateResult:
    if failures:
        return GateResult(Outcome.FAIL, tuple(failures), evidence)
    if unknowns:
        return GateResult(Outcome.INCONCLUSIVE, tuple(unknowns), evidence)
    parts = [f"{evidence.new_requests:g} requests, server-error share {evidence.error_share_pct:.2f}%"]
    if evidence.new_p99_ms is not None:
        parts.append(f"P99 {evidence.new_p99_ms:.1f} ms")
    if evidence.latency_ratio is not None:
        parts.append(f"{evidence.latency_ratio:.2f}x the stable P99")
    return GateResult(Outcome.PASS, ("within thresholds: " + ", ".join(parts),), evidence)


def _weighted_p99(
    points: Sequence[LatencyPoint], requests_per_minute: Mapping[tuple[str, dt.datetime], float]
) -> float | None:
    """One P99 for the window: the mean of the per-minute P99s weighted by that minute's requests.

    Azure Monitor's P99 is per minute and per deployment; percentiles do not add up, so this is an estimate.
    Weighting keeps a minute with two requests from counting as much as one with two thousand (and, for
    several stable deployments, each by its own traffic); points whose request count is unknown weigh 1.
    """
    if not points:
        return None
    weights = [requests_per_minute.get((point.deployment.lower(), point.timestamp), 0.0) or 1.0 for point in points]
    return sum(w * p.p99_ms for w, p in zip(weights, points, strict=True)) / sum(weights)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
