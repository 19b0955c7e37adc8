"""The rollout's data: the model as registered, the plan, what AML shows, and the ledger's record."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

APP_TAG = "managed-by"
APP_TAG_VALUE = "aml-event-handler"
NO_CODE_TYPES = ("mlflow_model", "triton_model")
BUSY_STATES = frozenset({"creating", "updating", "deleting", "scaling"})
FAILED_STATES = frozenset({"failed", "canceled"})


class State(StrEnum):
    """Where a rollout is. The state diagram is in docs/rollout.md."""

    PLANNED = "planned"  # DEPLOY_MODE=plan: recorded, never applied
    PENDING = "pending"  # accepted, waiting for its turn on the endpoint
    DEPLOYING = "deploying"  # holds the endpoint's write turn
    LIVE = "live"
    CANARY = "canary"
    DARK = "dark"  # deployed with 0% live traffic (mirror traffic maybe)
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer version of the model got there first
    REJECTED = "rejected"  # invalid tags; nothing was written to Azure ML

    @property
    def terminal(self) -> bool:
        return self not in (State.PENDING, State.DEPLOYING)


@dataclass(frozen=True)
class ModelInfo:
    """A model version as ``ml_client.models.get`` reports it (the authoritative tags and type)."""

    name: str
    version: str
    type: str
    tags: Mapping[str, str]
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class RolloutPlan:
    """What to deploy where, decided from the model's tags and the settings."""

    workspace_id: str
    endpoint: str
    deployment: str
    model_name: str
    model_version: str
    model_type: str
    model_created_at: str  # ISO 8601, "" when unknown; orders non-numeric versions
    instance_type: str
    instance_count: int
    traffic: int
    mirror: int
    # Progressive delivery (issue 11). Defaults keep ledger rows written before these fields decodable.
    traffic_steps: tuple[int, ...] = ()  # empty: one step, straight to ``traffic``
    bake_seconds: int = 0  # 0: no bake and no gates
    smoke_request: str = ""  # inline JSON from the ``smoke_request`` tag
    max_error_rate: float | None = None  # tighten-only tags; None: the settings' thresholds
    max_p99_ms: float | None = None

    @property
    def steps(self) -> tuple[int, ...]:
        """The new deployment's traffic share at each step; the last one is ``traffic``."""
        return self.traffic_steps or (self.traffic,)

    @property
    def model_ref(self) -> str:
        return f"azureml:{self.model_name}:{self.model_version}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RolloutPlan:
        """Decode a ledger row's plan: fields it lacks take their defaults, fields this version lacks are dropped."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if "traffic_steps" in values:
            values["traffic_steps"] = tuple(values["traffic_steps"] or ())
        return cls(**values)


@dataclass(frozen=True)
class Skip:
    """The model is not for this app (not opted in, other stage, not a no-code type)."""

    reason: str


@dataclass(frozen=True)
class Reject:
    """The model opted in but its tags break the contract. Each problem names tag, value and rule.

    ``plan`` is what would have been deployed with the invalid values replaced by defaults; it only
    gives the ledger row its keys.
    """

    problems: tuple[str, ...]
    plan: RolloutPlan

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


@dataclass(frozen=True)
class DeploymentView:
    """One deployment as observed in AML."""

    name: str
    provisioning_state: str
    tags: Mapping[str, str] = field(default_factory=dict)
    model: str = ""  # the model reference/ARM id the deployment serves

    @property
    def owned(self) -> bool:
        return self.tags.get(APP_TAG) == APP_TAG_VALUE

    @property
    def busy(self) -> bool:
        return self.provisioning_state.lower() in BUSY_STATES

    @property
    def failed(self) -> bool:
        return self.provisioning_state.lower() in FAILED_STATES

    @property
    def succeeded(self) -> bool:
        return self.provisioning_state.lower() == "succeeded"

    def serves(self, model_name: str, model_version: str) -> bool:
        """Does this deployment serve that model version? Judged by our tags, else by its model id."""
        if self.owned:
            return (self.tags.get("model-name"), self.tags.get("model-version")) == (model_name, model_version)
        tail = self.model.rstrip("/").lower()
        return tail.endswith(f"/models/{model_name}/versions/{model_version}".lower()) or tail.endswith(
            f"{model_name}:{model_version}".lower()
        )


@dataclass(frozen=True)
class EndpointView:
    """An online endpoint and its deployments as observed in AML."""

    name: str
    provisioning_state: str
    traffic: Mapping[str, int] = field(default_factory=dict)
    mirror_traffic: Mapping[str, int] = field(default_factory=dict)
    deployments: tuple[DeploymentView, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def deployment(self, name: str) -> DeploymentView | None:
        for deployment in self.deployments:
            if deployment.name.lower() == name.lower():
                return deployment
        return None

    @property
    def busy_reason(self) -> str | None:
        """Why a write now would get 409, or None when the endpoint is idle."""
        if self.provisioning_state.lower() in BUSY_STATES:
            return f"endpoint {self.name} is {self.provisioning_state}"
        for deployment in self.deployments:
            if deployment.busy:
                return f"deployment {deployment.name} is {deployment.provisioning_state}"
        return None

    def live_traffic(self) -> dict[str, int]:
        """Non-zero live traffic, keyed by lower-cased deployment name."""
        return {name.lower(): pct for name, pct in self.traffic.items() if pct}

    def live_mirror(self) -> dict[str, int]:
        return {name.lower(): pct for name, pct in self.mirror_traffic.items() if pct}


@dataclass(frozen=True)
class Rollout:
    """One ledger row, decoded: a plan and its progress."""

    plan: RolloutPlan
    state: State
    created_at: dt.datetime
    updated_at: dt.datetime
    event_ids: tuple[str, ...] = ()
    attempts: int = 0  # consecutive failed attempts
    next_attempt_at: dt.datetime | None = None
    last_error: str = ""
    reason: str = ""  # why it is in its state / what it last did
    logs: str = ""
    actions: tuple[str, ...] = ()  # every write sent to AML, in order, for the operator
    etag: str = field(default="", compare=False)

    def as_status(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/rollouts``."""
        return {
            "workspace": self.plan.workspace_id,
            "endpoint": self.plan.endpoint,
            "deployment": self.plan.deployment,
            "model": self.plan.model_name,
            "version": self.plan.model_version,
            "state": self.state.value,
            "reason": self.reason,
            "traffic": self.plan.traffic,
            "mirror": self.plan.mirror,
            "instanceType": self.plan.instance_type,
            "instanceCount": self.plan.instance_count,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "lastError": self.last_error,
            "logs": self.logs,
            "actions": list(self.actions),
            "eventIds": list(self.event_ids),
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
