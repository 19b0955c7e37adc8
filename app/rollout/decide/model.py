"""The rollout's data: the model as registered, the plan, what AML shows, and the ledger's record."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from app.rollout.decide.registry_model import PromotionSource, promotion_fields, registry_asset_id

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
    BAKING = "baking"  # the new deployment has a step's traffic and is watched
    ROLLED_BACK = "rolled_back"  # traffic went back to the split recorded when it took the write turn
    ABORTED = "aborted"  # an operator stopped it where it was; no further writes
    AWAITING_APPROVAL = "awaiting_approval"  # smoke-tested and warm, no traffic: waits for an operator's decision
    EXPIRED = "expired"  # nobody approved or rejected it within APPROVAL_TIMEOUT

    @property
    def terminal(self) -> bool:
        return self not in (State.PENDING, State.DEPLOYING, State.BAKING, State.AWAITING_APPROVAL)


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
    # Progressive delivery. Defaults keep ledger rows written before these fields decodable.
    traffic_steps: tuple[int, ...] = ()  # empty: one step, straight to ``traffic``
    bake_seconds: int = 0  # 0: no bake and no gates
    smoke_request: str = ""  # inline JSON from the ``smoke_request`` tag
    max_error_rate: float | None = None  # tighten-only tags; None: the settings' thresholds
    max_p99_ms: float | None = None
    # Promotion and approval (docs/promotion.md).
    promote: bool = False  # tag promote=true: share into PROMOTE_TO_REGISTRY once proven
    promote_tags: tuple[str, ...] | None = None  # tag promote_tags: the model tags the registry version keeps
    approval_requested: bool = False  # tag approval=required (REQUIRE_APPROVAL asks for every rollout)
    source: PromotionSource | None = None  # set when the model is a registry's version: where it was proven

    @property
    def steps(self) -> tuple[int, ...]:
        """The new deployment's traffic share at each step; the last one is ``traffic``."""
        return self.traffic_steps or (self.traffic,)

    @property
    def bakes(self) -> bool:
        """Is each step watched before the next? Only with a bake, and only with live traffic: a dark rollout (traffic
        0, mirrored or not) has nothing to judge, so it holds no write turn waiting for a gate it cannot pass."""
        return self.bake_seconds > 0 and self.traffic > 0

    @property
    def model_ref(self) -> str:
        """What the deployment names: the registry version's asset id, or the workspace's model."""
        if self.source is not None:
            return registry_asset_id(self.source.registry, self.model_name, self.model_version)
        return f"azureml:{self.model_name}:{self.model_version}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RolloutPlan:
        """Tolerant: unknown fields are ignored and optional ones defaulted; a missing required field is a
        ``KeyError``, a wrong type a ``ValueError``/``TypeError``."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return cls(
            workspace_id=_text(data["workspace_id"]),
            endpoint=_text(data["endpoint"]),
            deployment=_text(data["deployment"]),
            model_name=_text(data["model_name"]),
            model_version=_text(data["model_version"]),
            model_type=_text(data.get("model_type", "")),
            model_created_at=_text(data.get("model_created_at", "")),
            instance_type=_text(data["instance_type"]),
            instance_count=_whole(data.get("instance_count", 1), "instance_count"),
            traffic=_whole(data.get("traffic", 100), "traffic"),
            mirror=_whole(data.get("mirror", 0), "mirror"),
            traffic_steps=tuple(_whole(step, "traffic_steps") for step in data.get("traffic_steps") or ()),
            bake_seconds=_whole(data.get("bake_seconds", 0), "bake_seconds"),
            smoke_request=_text(data.get("smoke_request", "")),
            max_error_rate=_number(data.get("max_error_rate"), "max_error_rate"),
            max_p99_ms=_number(data.get("max_p99_ms"), "max_p99_ms"),
            **promotion_fields(data),
        )


def _text(value: Any) -> str:
    if not isinstance(value, str | int):
        raise TypeError(f"{value!r} is not text")
    return str(value)


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"{name}={value!r} is not a whole number")
    return int(value)


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r} is not a number")
    return float(value)


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


def covers_split(known: Sequence[DeploymentView], traffic: Mapping[str, int], mirror: Mapping[str, int]) -> bool:
    """Do the deployments ``known`` (as last listed) name every deployment the endpoint's split names, at any
    percentage? If not, the list is out of date: someone created a deployment since, and it must be listed again."""
    names = {d.name.lower() for d in known}
    return all(name.lower() in names for name in (*traffic, *mirror))


@dataclass(frozen=True)
class EndpointView:
    """An online endpoint and its deployments as observed in AML."""

    name: str
    provisioning_state: str
    traffic: Mapping[str, int] = field(default_factory=dict)
    mirror_traffic: Mapping[str, int] = field(default_factory=dict)
    deployments: tuple[DeploymentView, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        """Did this app create the endpoint? (It tags what it creates ``managed-by=aml-event-handler``.)"""
        return self.tags.get(APP_TAG) == APP_TAG_VALUE

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
class Cleanup:
    """Cleanup owed after a rollout ended: deleting surplus idle deployments, retried with back-off."""

    attempts: int = 0  # consecutive failed deletes
    next_attempt_at: dt.datetime | None = None
    last_error: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "attempts": self.attempts,
                "nextAttemptAt": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
                "lastError": self.last_error,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Cleanup:
        data = json.loads(text)
        next_at = data.get("nextAttemptAt")
        return cls(
            attempts=int(data.get("attempts") or 0),
            next_attempt_at=dt.datetime.fromisoformat(next_at) if next_at else None,
            last_error=str(data.get("lastError") or ""),
        )


@dataclass(frozen=True)
class Progress:
    """Progressive delivery on one rollout: its step, bake, gate and smoke evidence, operator controls."""

    step: int | None = None  # index into ``plan.steps`` of the traffic last sent; None before any
    bake_started_at: dt.datetime | None = None  # when the step's traffic was seen in place; None while it is not
    extensions: int = 0  # inconclusive gates that extended this step's bake
    paused: bool = False
    requested: str = ""  # "promote" / "rollback" asked by an operator, carried out by the next move
    before_traffic: Mapping[str, int] | None = None  # the live split when the rollout took its write turn
    before_mirror: Mapping[str, int] = field(default_factory=dict)
    smoke: Mapping[str, Any] | None = None  # the smoke test's result (``SmokeResult.as_dict`` + sample source)
    gate: Mapping[str, Any] | None = None  # the last gate's result with its evidence (``GateResult.as_dict``)
    history: tuple[Mapping[str, Any], ...] = ()  # operator actions: time, action, reason, caller, effect
    held: bool = False  # an inconclusive gate (GATE_INCONCLUSIVE=hold): no more reads, it waits for an operator
    reads_failing_since: dt.datetime | None = None  # the first of an unbroken run of failed metric reads
    retired: tuple[str, ...] = ()  # earlier canaries and mirrors this rollout's traffic writes retired
    gates: tuple[Mapping[str, Any], ...] = ()  # every gate's verdict and figures, oldest first (``gate_trail``)
    approval_asked_at: dt.datetime | None = None  # when it began to await approval (APPROVAL_TIMEOUT counts from it)

    def to_json(self) -> str:
        return json.dumps(
            {
                "step": self.step,
                "bakeStartedAt": self.bake_started_at.isoformat() if self.bake_started_at else None,
                "extensions": self.extensions,
                "paused": self.paused,
                "requested": self.requested,
                "beforeTraffic": dict(self.before_traffic) if self.before_traffic is not None else None,
                "beforeMirror": dict(self.before_mirror),
                "smoke": self.smoke,
                "gate": self.gate,
                "history": list(self.history),
                "held": self.held,
                "readsFailingSince": self.reads_failing_since.isoformat() if self.reads_failing_since else None,
                "retired": list(self.retired),
                "gates": list(self.gates),
                "approvalAskedAt": self.approval_asked_at.isoformat() if self.approval_asked_at else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Progress:
        """Tolerant: missing keys take their defaults; a wrong type raises ``ValueError``/``TypeError``."""
        data = json.loads(text or "{}")
        if not isinstance(data, dict):
            raise ValueError(f"Progress is not a JSON object: {text[:80]!r}")
        started, before = data.get("bakeStartedAt"), data.get("beforeTraffic")
        failing, asked = data.get("readsFailingSince"), data.get("approvalAskedAt")
        step = data.get("step")
        return cls(
            step=None if step is None else _whole(step, "step"),
            bake_started_at=dt.datetime.fromisoformat(started) if started else None,
            extensions=_whole(data.get("extensions", 0), "extensions"),
            paused=bool(data.get("paused", False)),
            requested=str(data.get("requested") or ""),
            before_traffic={str(k): int(v) for k, v in before.items()} if isinstance(before, dict) else None,
            before_mirror={str(k): int(v) for k, v in (data.get("beforeMirror") or {}).items()},
            smoke=data.get("smoke") if isinstance(data.get("smoke"), dict) else None,
            gate=data.get("gate") if isinstance(data.get("gate"), dict) else None,
            history=tuple(h for h in data.get("history") or () if isinstance(h, dict)),
            held=bool(data.get("held", False)),
            reads_failing_since=dt.datetime.fromisoformat(failing) if failing else None,
            retired=tuple(str(name) for name in data.get("retired") or ()),
            gates=tuple(g for g in data.get("gates") or () if isinstance(g, dict)),
            approval_asked_at=dt.datetime.fromisoformat(asked) if asked else None,
        )

    def as_status(self, plan: RolloutPlan) -> dict[str, Any]:
        return {
            "steps": list(plan.steps),
            "step": None if self.step is None else self.step + 1,
            "bakeSeconds": plan.bake_seconds,
            "bakeStartedAt": self.bake_started_at.isoformat() if self.bake_started_at else None,
            "extensions": self.extensions,
            "paused": self.paused,
            "requested": self.requested or None,
            "beforeTraffic": dict(self.before_traffic) if self.before_traffic is not None else None,
            "smoke": self.smoke,
            "gate": self.gate,
            "history": list(self.history),
            "held": self.held,
            "readsFailingSince": self.reads_failing_since.isoformat() if self.reads_failing_since else None,
            "gates": list(self.gates),
            "approvalAskedAt": self.approval_asked_at.isoformat() if self.approval_asked_at else None,
        }


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
    turn_taken_at: dt.datetime | None = None  # when it took the endpoint's write turn; the timeout counts from here
    retries: tuple[str, ...] = ()  # one-time recoveries already tried ("endpoint", "deployment")
    error_source: str = ""  # where last_error came from: azureml, storage, permission, network, internal
    denied_since: dt.datetime | None = None  # first of an unbroken run of permission errors (bounded wait)
    cleanup: Cleanup | None = None  # best-effort cleanup still owed on the endpoint after this rollout ended
    progress: Progress = field(default_factory=Progress)
    etag: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        """Does the endpoint need the engine: a step to take, an operator's request, or cleanup owed?"""
        return not self.state.terminal or self.cleanup is not None or bool(self.progress.requested)

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
            "errorSource": self.error_source or None,
            "turnTakenAt": self.turn_taken_at.isoformat() if self.turn_taken_at else None,
            "cleanup": json.loads(self.cleanup.to_json()) if self.cleanup else None,
            "logs": self.logs,
            "actions": list(self.actions),
            "eventIds": list(self.event_ids),
            "progress": self.progress.as_status(self.plan),
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
