"""The app's settings as one frozen value (pure data). ``settings_reader`` builds it from the environment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.platform import budgets
from app.platform.workspace import WorkspaceRef

DEPLOY_MODES = ("plan", "apply", "hold")
#: Azure ML job statuses (``JobStatus`` in the 2023-04-01 API, compared case-insensitively).
RUN_STATUSES = (
    "notstarted",
    "starting",
    "provisioning",
    "preparing",
    "queued",
    "running",
    "finalizing",
    "cancelrequested",
    "completed",
    "failed",
    "canceled",
    "notresponding",
    "paused",
    "unknown",
)
DEFAULT_NOTIFY_RUN_STATUSES = frozenset({"failed", "canceled"})
#: At most this many model versions are read per resync run (RESYNC_MAX_MODELS).
DEFAULT_RESYNC_MAX_MODELS = 200
GATE_INCONCLUSIVE_CHOICES = ("hold", "promote", "rollback")
#: What the gate's error rule counts (GATE_ERROR_STATUS_CODES): server errors, and the timeouts (408) and overload
#: (429) Azure ML documents as the deployment's own (app/rollout/decide/gate_statuses.py).
DEFAULT_ERROR_STATUS_CODES = frozenset({"5xx", "408", "429"})
#: What each write usually takes in Azure ML, in seconds: the follow-up is due then (FOLLOWUP_DELAYS overrides).
#: Endpoint creation is typically 1-2 minutes, a managed deployment 5-15 minutes (VM allocation and image pull),
#: a traffic update well under a minute. ``recheck``: a follow-up that found the operation still running looks
#: again this much later (at most MAX_RECHECKS times; then the timer carries on).
DEFAULT_DELAYS: Mapping[str, float] = {
    "endpoint": 90.0,
    "deployment": 300.0,
    "traffic": 30.0,
    "delete": 60.0,
    "recheck": 30.0,
}
#: A queue message can stay invisible for at most 7 days (Put Message, visibilitytimeout).
MAX_VISIBILITY_S = 7 * 24 * 3600
#: How long a rollout waits for an approval before it expires (APPROVAL_TIMEOUT).
DEFAULT_APPROVAL_TIMEOUT = dt.timedelta(days=7)


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment. See the configuration table in docs/configuration.md."""

    allowed_workspaces: frozenset[str] = frozenset()
    deploy_mode: str = "plan"
    deploy_stage: str = ""
    default_instance_type: str = "Standard_DS3_v2"
    allowed_instance_types: frozenset[str] = frozenset()
    max_instance_count: int = 3
    keep_deployments: int = 2
    keep_failed_deployments: bool = False
    #: Endpoints the app did not create that it may deploy into (lower-cased names; ``*`` for all).
    adopt_endpoints: frozenset[str] = frozenset()
    rollout_timeout_minutes: int = 60
    rollout_max_attempts: int = 10
    permission_retry_minutes: int = 30
    rollout_retention_days: int = 90
    rollout_table: str = "rollouts"
    idempotency_table: str = "idempotency"
    reconcile_budget_seconds: float = 45.0
    reconcile_concurrency: int = 4
    event_budget_seconds: float = 10.0
    endpoint_lease_seconds: float = budgets.DEFAULT_LEASE_SECONDS
    arm_read_timeout_seconds: float = budgets.DEFAULT_ARM_READ_TIMEOUT_SECONDS
    notify_topic_endpoint: str = ""
    notify_topic_key: str = field(default="", repr=False)
    notify_webhook_url: str = field(default="", repr=False)
    #: The dev kit's marker for its plain-HTTP local receivers; in Azure a webhook URL must be https://.
    allow_http_webhook: bool = False
    drift_threshold: float = 0.5
    retrain_pipeline_component: str = ""
    retrain_experiment: str = "drift-retraining"
    retrain_cooldown_minutes: int = 360
    retrain_compute: str = ""
    retrain_job_tags: tuple[tuple[str, str], ...] = ()
    notify_run_statuses: frozenset[str] = DEFAULT_NOTIFY_RUN_STATUSES
    resync_max_models: int = DEFAULT_RESYNC_MAX_MODELS
    #: The resync timer's schedule as the host sees it; empty means the resync is off.
    resync_schedule: str = ""
    storage_connection_string: str = field(default="", repr=False)
    storage_account_name: str = ""
    storage_table_uri: str = ""
    storage_queue_uri: str = ""
    #: The queue of follow-up checks after each AML write, in the same storage account.
    rollout_queue: str = "rollout-followups"
    #: Seconds after a write of each kind (endpoint, deployment, traffic, delete, recheck) when its follow-up is
    #: due; empty: follow-ups are off and the timer alone advances rollouts.
    followup_delays: tuple[tuple[str, float], ...] = ()
    #: The tick leaves an endpoint whose every moving rollout waits for its last write's follow-up to that follow-up
    #: (no look, no ARM read) until the follow-up is overdue. Off: the tick looks at every active endpoint.
    tick_waits_for_followups: bool = True
    #: The Function App's host name. Azure sets ``WEBSITE_HOSTNAME`` itself (a platform variable, never an
    #: app setting to fill in); rollout notifications link to the status API on it when it is set.
    status_host: str = ""
    #: App Service authentication is on (``WEBSITE_AUTH_ENABLED``, set by the platform): only then is the
    #: ``X-MS-CLIENT-PRINCIPAL`` header the platform's, not the caller's (app/api/caller.py).
    easy_auth_enabled: bool = False
    smoke_required: bool = False
    #: Refuse every model tag key that is not a tag of the contract (else only keys close to one).
    strict_tags: bool = False
    smoke_timeout_seconds: float = 30.0
    bake_default: dt.timedelta = dt.timedelta(0)
    gate_max_error_rate: float = 1.0
    gate_max_latency_ratio: float = 1.5
    gate_max_p99_ms: float | None = None
    gate_min_requests: int = 100
    gate_metric_lag: dt.timedelta = dt.timedelta(minutes=2)
    gate_max_extensions: int = 2
    gate_inconclusive: str = "hold"
    gate_error_status_codes: frozenset[str] = DEFAULT_ERROR_STATUS_CODES
    #: Azure Monitor's regional batch metrics endpoint, ``{region}`` standing for the endpoints' region.
    metrics_batch_endpoint: str = "https://{region}.metrics.monitor.azure.com"
    #: Where traces, metrics and logs go in Azure; empty sends them nowhere (app/platform/telemetry.py).
    appinsights_connection_string: str = field(default="", repr=False)
    #: Local runs: print the spans and metrics on the console.
    telemetry_console: bool = False
    #: Promotion, staging side (docs/promotion.md): the registry proven models are shared into; empty: none.
    promote_to_registry: str = ""
    #: Promote every proven rollout, not only models tagged ``promote=true``.
    promote_all: bool = False
    #: Promotion, production side: the workspaces (keys, as ``allowed_workspaces``) whose ``AmlEvents.Model.Promoted``
    #: events are taken; empty takes none (fail closed).
    promotion_sources: frozenset[str] = frozenset()
    #: The registries (lower-cased names) promoted versions are read from and rolled out; empty: none.
    promotion_registries: frozenset[str] = frozenset()
    #: The workspace (its key) promoted versions are rolled out into: ``PROMOTION_WORKSPACE``, else the only one
    #: ``AML_ALLOWED_WORKSPACES`` lists.
    promotion_workspace: str = ""
    #: Every rollout waits for an operator's approval before live traffic (the tag ``approval=required`` asks too).
    require_approval: bool = False
    approval_timeout: dt.timedelta = DEFAULT_APPROVAL_TIMEOUT

    @property
    def applies_changes(self) -> bool:
        """True when the app may write to Azure ML (``DEPLOY_MODE=apply``)."""
        return self.deploy_mode == "apply"

    @property
    def records_rollouts(self) -> bool:
        """True when tagged models become rollouts to carry out (``apply``, or ``hold``: the kill switch records
        them and the engine reads and notifies, but sends no write until the mode is ``apply`` again)."""
        return self.deploy_mode in ("apply", "hold")

    def followup_delay(self, kind: str) -> float | None:
        """Seconds until the follow-up of a write of ``kind`` is due; None when follow-ups are off."""
        return dict(self.followup_delays).get(kind)

    def promotes_from(self, workspace: WorkspaceRef) -> bool:
        """Is ``workspace`` one whose promotions this app takes (``PROMOTION_SOURCES``)? Empty allows none."""
        return workspace.key in self.promotion_sources

    def reads_registry(self, registry: str) -> bool:
        """Is ``registry`` one this app rolls promoted versions out from (``PROMOTION_REGISTRIES``)? Empty: none."""
        return registry.lower() in self.promotion_registries

    def allows(self, workspace: WorkspaceRef) -> bool:
        """Is ``workspace`` on the allowlist? Compared case-insensitively; empty allows nothing."""
        return workspace.key in self.allowed_workspaces
