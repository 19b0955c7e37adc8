"""Reads the app's ``Settings`` from the environment, once, at first use; every problem is reported together."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from app.platform import budgets
from app.platform.durations import parse_duration
from app.platform.errors import SettingsError
from app.platform.names import is_valid_name
from app.platform.settings import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_DELAYS,
    DEFAULT_ERROR_STATUS_CODES,
    DEFAULT_NOTIFY_RUN_STATUSES,
    DEFAULT_RESYNC_MAX_MODELS,
    DEPLOY_MODES,
    GATE_INCONCLUSIVE_CHOICES,
    MAX_VISIBILITY_S,
    RUN_STATUSES,
    Settings,
)
from app.platform.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
#: Azure ML registry names (the 2023-04-01 spec's ``registryName`` pattern, azure-rest-api-specs
#: specification/machinelearningservices/resource-manager/.../stable/2023-04-01/registries.json).
REGISTRY_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]{2,32}")
MIN_APPROVAL_TIMEOUT = dt.timedelta(minutes=1)
MAX_APPROVAL_TIMEOUT = dt.timedelta(days=90)
#: An HTTP error status class (4xx, 5xx) or code (400-599).
STATUS_CODE = re.compile(r"[45](?:xx|[0-9]{2})")


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Build settings from ``env``; raise ``SettingsError`` listing every problem at once."""
    reader = _Reader(env)
    allow_http_webhook = reader.boolean("ALLOW_HTTP_WEBHOOK", False)
    settings = Settings(
        allowed_workspaces=reader.workspaces("AML_ALLOWED_WORKSPACES"),
        deploy_mode=reader.choice("DEPLOY_MODE", DEPLOY_MODES, "plan"),
        deploy_stage=reader.text("DEPLOY_STAGE", "").lower(),
        default_instance_type=reader.text("DEFAULT_INSTANCE_TYPE", "Standard_DS3_v2"),
        allowed_instance_types=frozenset(item.lower() for item in reader.items("ALLOWED_INSTANCE_TYPES")),
        max_instance_count=reader.integer("MAX_INSTANCE_COUNT", 3, low=1, high=100),
        keep_deployments=reader.integer("KEEP_DEPLOYMENTS", 2, low=1, high=20),
        keep_failed_deployments=reader.boolean("KEEP_FAILED_DEPLOYMENTS", False),
        adopt_endpoints=reader.endpoints("ADOPT_ENDPOINTS"),
        rollout_timeout_minutes=reader.integer("ROLLOUT_TIMEOUT_MINUTES", 60, low=1, high=24 * 60),
        rollout_max_attempts=reader.integer("ROLLOUT_MAX_ATTEMPTS", 10, low=1, high=1000),
        permission_retry_minutes=reader.integer("PERMISSION_RETRY_MINUTES", 30, low=1, high=24 * 60),
        rollout_retention_days=reader.integer("ROLLOUT_RETENTION_DAYS", 90, low=2, high=3650),
        rollout_table=reader.table("ROLLOUT_TABLE", "rollouts"),
        idempotency_table=reader.table("IDEMPOTENCY_TABLE", "idempotency"),
        reconcile_budget_seconds=reader.number("RECONCILE_BUDGET_SECONDS", 45.0, low=1, high=600),
        reconcile_concurrency=reader.integer("RECONCILE_CONCURRENCY", 4, low=1, high=64),
        event_budget_seconds=reader.number("EVENT_BUDGET_SECONDS", 10.0, low=1, high=25),
        endpoint_lease_seconds=reader.number(
            "ENDPOINT_LEASE_SECONDS", budgets.DEFAULT_LEASE_SECONDS, low=60, high=3600
        ),
        arm_read_timeout_seconds=reader.number(
            "ARM_READ_TIMEOUT_SECONDS", budgets.DEFAULT_ARM_READ_TIMEOUT_SECONDS, low=1, high=300
        ),
        notify_topic_endpoint=reader.url("NOTIFY_TOPIC_ENDPOINT"),
        notify_topic_key=reader.text("NOTIFY_TOPIC_KEY", ""),
        notify_webhook_url=reader.url("NOTIFY_WEBHOOK_URL", https_only=not allow_http_webhook),
        allow_http_webhook=allow_http_webhook,
        drift_threshold=reader.number("DRIFT_THRESHOLD", 0.5, low=0.0, high=1.0),
        retrain_pipeline_component=reader.component("RETRAIN_PIPELINE_COMPONENT"),
        retrain_experiment=reader.text("RETRAIN_EXPERIMENT", "drift-retraining"),
        retrain_cooldown_minutes=reader.integer("RETRAIN_COOLDOWN_MINUTES", 360, low=0, high=100000),
        retrain_compute=reader.text("RETRAIN_COMPUTE", ""),
        retrain_job_tags=reader.pairs("RETRAIN_JOB_TAGS"),
        notify_run_statuses=reader.statuses("NOTIFY_RUN_STATUSES", DEFAULT_NOTIFY_RUN_STATUSES),
        resync_schedule=reader.text("RESYNC_SCHEDULE", ""),
        resync_max_models=reader.integer("RESYNC_MAX_MODELS", DEFAULT_RESYNC_MAX_MODELS, low=1, high=5000),
        storage_connection_string=reader.text("AzureWebJobsStorage", ""),
        storage_account_name=reader.text("AzureWebJobsStorage__accountName", ""),
        storage_table_uri=reader.url("AzureWebJobsStorage__tableServiceUri"),
        storage_queue_uri=reader.url("AzureWebJobsStorage__queueServiceUri"),
        rollout_queue=reader.queue("ROLLOUT_QUEUE", "rollout-followups"),
        followup_delays=reader.followup_delays("FOLLOWUP_DELAYS"),
        tick_waits_for_followups=reader.boolean("TICK_WAITS_FOR_FOLLOWUPS", True),
        status_host=reader.text("WEBSITE_HOSTNAME", ""),
        # The platform writes "True"; read it as the Functions host does (bool.TryParse: anything else is off).
        easy_auth_enabled=reader.text("WEBSITE_AUTH_ENABLED", "").lower() == "true",
        **_delivery(reader),
        appinsights_connection_string=reader.text("APPLICATIONINSIGHTS_CONNECTION_STRING", ""),
        telemetry_console=reader.boolean("TELEMETRY_CONSOLE", False),
        **_promotion(reader),
    )
    return _checked(replace(settings, promotion_workspace=reader.promotion_workspace(settings)), reader)


def _delivery(reader: _Reader) -> dict[str, Any]:
    """Progressive delivery's settings: the smoke test, tag strictness, the default bake and the metric gate."""
    return {
        "smoke_required": reader.boolean("SMOKE_REQUIRED", False),
        "strict_tags": reader.boolean("STRICT_TAGS", False),
        "smoke_timeout_seconds": reader.number("SMOKE_TIMEOUT_SECONDS", 30.0, low=1, high=300),
        "bake_default": reader.duration("BAKE_DEFAULT", dt.timedelta(0), high=dt.timedelta(hours=24)),
        "gate_max_error_rate": reader.number("GATE_MAX_ERROR_RATE", 1.0, low=0.0, high=100.0),
        "gate_max_latency_ratio": reader.number("GATE_MAX_LATENCY_RATIO", 1.5, low=1.0, high=100.0),
        "gate_max_p99_ms": reader.optional_number("GATE_MAX_P99_MS", low=1.0, high=600_000.0),
        "gate_min_requests": reader.integer("GATE_MIN_REQUESTS", 100, low=1, high=10_000_000),
        "gate_metric_lag": reader.duration("GATE_METRIC_LAG", dt.timedelta(minutes=2), high=dt.timedelta(hours=1)),
        "gate_max_extensions": reader.integer("GATE_MAX_EXTENSIONS", 2, low=0, high=100),
        "gate_inconclusive": reader.choice("GATE_INCONCLUSIVE", GATE_INCONCLUSIVE_CHOICES, "hold"),
        "gate_error_status_codes": reader.status_codes("GATE_ERROR_STATUS_CODES", DEFAULT_ERROR_STATUS_CODES),
        "metrics_batch_endpoint": reader.region_url(
            "METRICS_BATCH_ENDPOINT", "https://{region}.metrics.monitor.azure.com"
        ),
    }


def _promotion(reader: _Reader) -> dict[str, Any]:
    """Promotion's settings: the registry a proven version goes to, what production trusts, and approvals."""
    return {
        "promote_to_registry": reader.registry("PROMOTE_TO_REGISTRY"),
        "promote_all": reader.boolean("PROMOTE_ALL", False),
        "promotion_sources": reader.workspaces("PROMOTION_SOURCES"),
        "promotion_registries": reader.registries("PROMOTION_REGISTRIES"),
        "require_approval": reader.boolean("REQUIRE_APPROVAL", False),
        "approval_timeout": reader.duration(
            "APPROVAL_TIMEOUT", DEFAULT_APPROVAL_TIMEOUT, high=MAX_APPROVAL_TIMEOUT, low=MIN_APPROVAL_TIMEOUT
        ),
    }


def _checked(settings: Settings, reader: _Reader) -> Settings:
    """Every problem at once (the retry budgets too, when the rest is sound); what fails closed said loudly."""
    if not reader.problems:
        reader.problems.extend(
            budgets.budget_problems(settings.endpoint_lease_seconds, settings.arm_read_timeout_seconds)
        )
    if reader.problems:
        raise SettingsError(reader.problems)
    if not settings.allowed_workspaces:
        logger.error(
            "AML_ALLOWED_WORKSPACES is empty: failing closed, NO workspace's events will be honoured. "
            "Set it to a comma-separated list of workspace ARM ids."
        )
    if settings.promotion_sources and not settings.promotion_registries:
        logger.error(
            "PROMOTION_SOURCES is set and PROMOTION_REGISTRIES is empty: failing closed, NO promoted version will be "
            "rolled out. Set PROMOTION_REGISTRIES to the registries promoted versions are read from."
        )
    return settings


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, built on first use (not at import)."""
    return settings_from_env(os.environ)


class _Reader:
    """Reads typed values from an environment mapping and collects every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str:
        return (self._env.get(name) or "").strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def items(self, name: str) -> list[str]:
        return [item.strip() for item in self._raw(name).split(",") if item.strip()]

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self._raw(name).lower() or default
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        return int(self._ranged(name, default, low, high, int, "a whole number"))

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        return self._ranged(name, default, low, high, float, "a number")

    def _ranged(
        self, name: str, default: float, low: float, high: float, convert: Callable[[str], float], kind: str
    ) -> float:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = convert(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {kind} (expected {low}..{high})")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={value} is out of range (expected {low}..{high})")
            return default
        return value

    def optional_number(self, name: str, *, low: float, high: float) -> float | None:
        if not self._raw(name):
            return None
        return self._ranged(name, 0.0, low, high, float, "a number")

    def duration(
        self, name: str, default: dt.timedelta, *, high: dt.timedelta, low: dt.timedelta = dt.timedelta(0)
    ) -> dt.timedelta:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = parse_duration(raw)
        except ValueError as err:
            self.problems.append(f"{name}: {err}")
            return default
        if value > high:
            self.problems.append(f"{name}={raw!r} is longer than the maximum of {high}")
            return default
        if value < low:
            self.problems.append(f"{name}={raw!r} is shorter than the minimum of {low}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name).lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (use true or false)")
        return default

    def url(self, name: str, *, https_only: bool = False) -> str:
        raw = self._raw(name)
        if raw and not raw.lower().startswith(("https://", "http://")):
            # The value may be a secret URL (a webhook); name the variable, never echo it.
            self.problems.append(f"{name} must be an http(s) URL")
            return ""
        if https_only and raw.lower().startswith("http://"):
            self.problems.append(
                f"{name} must be an https:// URL (plain http:// would send the notification and any token in the "
                "URL in clear text); only the dev kit's local receivers may use http://, with ALLOW_HTTP_WEBHOOK=true"
            )
            return ""
        return raw

    def region_url(self, name: str, default: str) -> str:
        """An https:// URL template with ``{region}`` where the Azure region goes."""
        raw = self._raw(name) or default
        if not raw.lower().startswith("https://") or "{region}" not in raw or raw.count("{") != 1:
            self.problems.append(
                f"{name}={raw!r} must be an https:// URL with {{region}} where the region goes, e.g. {default}"
            )
            return default
        return raw

    def table(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not (3 <= len(value) <= 63 and value[0].isalpha() and value.isalnum()):
            self.problems.append(
                f"{name}={value!r} is not a valid table name (3-63 letters or digits, starting with a letter)"
            )
            return default
        return value

    def queue(self, name: str, default: str) -> str:
        value = self.text(name, default)
        # Storage queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter
        # or digit (learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata).
        if not (QUEUE_NAME.fullmatch(value) and "--" not in value):
            self.problems.append(
                f"{name}={value!r} is not a valid queue name (3-63 lowercase letters, digits and single hyphens, "
                "starting and ending with a letter or digit)"
            )
            return default
        return value

    def followup_delays(self, name: str) -> tuple[tuple[str, float], ...]:
        delays, problems = parse_delays(self._raw(name))
        self.problems.extend(problems)
        return tuple(sorted(delays.items()))

    def component(self, name: str) -> str:
        raw = self._raw(name)
        if raw and not (":" in raw or raw.endswith("@latest")):
            self.problems.append(f"{name}={raw!r} must be 'name:version' or 'name@latest'")
            return ""
        return raw

    def pairs(self, name: str) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.items(name):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                self.problems.append(
                    f"{name}: {item!r} is not key=value (e.g. register_model=credit,model.deploy=true)"
                )
                continue
            pairs.append((key.strip(), value.strip()))
        return tuple(pairs)

    def endpoints(self, name: str) -> frozenset[str]:
        names = set()
        for item in self.items(name):
            if item != "*" and not is_valid_name(item):
                self.problems.append(
                    f"{name}: {item!r} is not an online endpoint name (3-32 letters, digits and hyphens, starting "
                    "with a letter); list endpoint names separated by commas, or * for every endpoint"
                )
                continue
            names.add(item.lower())
        return frozenset(names)

    def statuses(self, name: str, default: frozenset[str]) -> frozenset[str]:
        if not self._raw(name):
            return default
        values = {item.lower() for item in self.items(name)}
        unknown = sorted(values - set(RUN_STATUSES))
        if unknown:
            self.problems.append(
                f"{name}: {', '.join(unknown)} is not an Azure ML run status (use e.g. Failed,Canceled; known: "
                "NotStarted, Starting, Provisioning, Preparing, Queued, Running, Finalizing, CancelRequested, "
                "Completed, Failed, Canceled, NotResponding, Paused, Unknown)"
            )
            return default
        return frozenset(values)

    def registry(self, name: str, raw: str | None = None) -> str:
        value = self._raw(name) if raw is None else raw
        if value and not REGISTRY_NAME.fullmatch(value):
            self.problems.append(
                f"{name}: {value!r} is not an Azure ML registry name (3-33 letters, digits, hyphens and underscores, "
                "starting with a letter or digit)"
            )
            return ""
        return value

    def registries(self, name: str) -> frozenset[str]:
        return frozenset(value.lower() for value in (self.registry(name, item) for item in self.items(name)) if value)

    def promotion_workspace(self, settings: Settings) -> str:
        """``PROMOTION_WORKSPACE`` (an allowed workspace), else the only allowed one when promotions are taken."""
        name = "PROMOTION_WORKSPACE"
        chosen = self.workspaces(name)
        allowed = settings.allowed_workspaces
        if chosen:
            key = next(iter(chosen))
            if len(chosen) > 1 or key not in allowed:
                self.problems.append(
                    f"{name}: name one workspace of AML_ALLOWED_WORKSPACES, the one promoted versions roll out into"
                )
                return ""
            return key
        if settings.promotion_registries and len(allowed) > 1:
            self.problems.append(
                f"{name} is empty and AML_ALLOWED_WORKSPACES lists {len(allowed)} workspaces: set it to the ARM id of "
                "the one that PROMOTION_REGISTRIES' versions roll out into"
            )
        return next(iter(allowed)) if len(allowed) == 1 else ""

    def status_codes(self, name: str, default: frozenset[str]) -> frozenset[str]:
        values = {item.lower() for item in self.items(name)}
        if not values:
            return default
        bad = sorted(v for v in values if not STATUS_CODE.fullmatch(v))
        if bad:
            self.problems.append(
                f"{name}: {', '.join(bad)} is not an HTTP error status class or code (use classes 4xx and 5xx and "
                "codes 400-599, comma-separated, e.g. 5xx,408,429)"
            )
            return default
        return frozenset(values)

    def workspaces(self, name: str) -> frozenset[str]:
        keys = set()
        for item in self.items(name):
            try:
                keys.add(WorkspaceRef.from_arm_id(item).key)
            except ValueError as err:
                self.problems.append(f"{name}: {err}")
        return frozenset(keys)


def parse_delays(raw: str) -> tuple[dict[str, float], list[str]]:
    """``FOLLOWUP_DELAYS``: ``kind=seconds`` pairs over the defaults; (delays, problems). ``off`` disables them."""
    delays, problems = dict(DEFAULT_DELAYS), []
    if raw.strip().lower() == "off":
        return {}, []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        kind, _, value = item.partition("=")
        kind = kind.strip().lower()
        if kind not in DEFAULT_DELAYS:
            problems.append(
                f"FOLLOWUP_DELAYS: {kind!r} is not one of {', '.join(DEFAULT_DELAYS)} (e.g. deployment=300,traffic=30)"
            )
            continue
        try:
            seconds = float(value)
        except ValueError:
            problems.append(f"FOLLOWUP_DELAYS: {item!r} is not kind=seconds (e.g. deployment=300)")
            continue
        if not 0 <= seconds <= MAX_VISIBILITY_S:
            problems.append(f"FOLLOWUP_DELAYS: {kind}={value} is out of range (0..{MAX_VISIBILITY_S} s, 7 days)")
            continue
        delays[kind] = seconds
    return delays, problems
