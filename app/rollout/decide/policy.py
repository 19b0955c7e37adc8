"""The settings the rollout's transitions depend on, as one value: mode, timeouts, budgets, adoption, gates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app.platform.settings import Settings
from app.rollout.decide.gate import GatePolicy
from app.rollout.decide.model import EndpointView, RolloutPlan


@dataclass(frozen=True)
class Policy:
    """What the transition function reads of the settings."""

    timeout: dt.timedelta = dt.timedelta(minutes=60)
    keep_deployments: int = 2
    keep_failed_deployments: bool = False
    #: Endpoints the app did not create that it may deploy into (lower case; ``*`` adopts every one).
    adopt_endpoints: frozenset[str] = frozenset()
    #: The platform's gate policy (``GATE_*``); the step uses its extensions and ``GATE_INCONCLUSIVE``.
    gate: GatePolicy = field(default_factory=GatePolicy)
    #: ``DEPLOY_MODE``: ``apply`` writes; ``hold`` (the kill switch) reads, decides and notifies but writes nothing.
    mode: str = "apply"
    #: Failed attempts in a row before a rollout gives up (``ROLLOUT_MAX_ATTEMPTS``).
    max_attempts: int = 10
    #: How long a missing permission is waited for (``PERMISSION_RETRY_MINUTES``).
    permission_wait: dt.timedelta = dt.timedelta(minutes=30)
    #: ``SMOKE_REQUIRED``: a rollout without a sample request fails its smoke test.
    smoke_required: bool = False
    #: ``REQUIRE_APPROVAL``: every rollout waits for an operator's approval before live traffic (a tag asks too).
    require_approval: bool = False
    #: ``APPROVAL_TIMEOUT``: how long a rollout awaits approval before it expires.
    approval_timeout: dt.timedelta = dt.timedelta(days=7)

    def may_change(self, endpoint: EndpointView) -> bool:
        """The app changes the endpoints it created, and those ``ADOPT_ENDPOINTS`` lists."""
        return endpoint.owned or "*" in self.adopt_endpoints or endpoint.name.lower() in self.adopt_endpoints

    def needs_approval(self, plan: RolloutPlan) -> bool:
        """Does this rollout wait for an approval? The setting or the tag ``approval=required``; neither waives the
        other (``promotion.requires_approval``)."""
        return self.require_approval or plan.approval_requested

    @property
    def writes(self) -> bool:
        """May the app write to Azure ML now? Not under the kill switch (``DEPLOY_MODE=hold``)."""
        return self.mode != "hold"


def step_policy(settings: Settings) -> Policy:
    """The policy from the settings."""
    return Policy(
        timeout=dt.timedelta(minutes=settings.rollout_timeout_minutes),
        keep_deployments=settings.keep_deployments,
        keep_failed_deployments=settings.keep_failed_deployments,
        adopt_endpoints=settings.adopt_endpoints,
        gate=policy_from_settings(settings),
        mode=settings.deploy_mode,
        max_attempts=settings.rollout_max_attempts,
        permission_wait=dt.timedelta(minutes=settings.permission_retry_minutes),
        smoke_required=settings.smoke_required,
        require_approval=settings.require_approval,
        approval_timeout=settings.approval_timeout,
    )


def policy_from_settings(settings: Settings) -> GatePolicy:
    """The platform's gate policy, from the ``GATE_*`` settings."""
    return GatePolicy(
        max_error_rate=settings.gate_max_error_rate,
        max_latency_ratio=settings.gate_max_latency_ratio,
        max_p99_ms=settings.gate_max_p99_ms,
        min_requests=settings.gate_min_requests,
        metric_lag=settings.gate_metric_lag,
        max_extensions=settings.gate_max_extensions,
        inconclusive=settings.gate_inconclusive,
        error_status_codes=settings.gate_error_status_codes,
    )
