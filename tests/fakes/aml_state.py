"""What the Azure ML fake holds (endpoints, deployments, operations in flight) and how a test looks at or moves it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.rollout.decide.model import DeploymentView, EndpointView, ModelInfo

if TYPE_CHECKING:
    from tests.fakes.aml import FakeAzureML

#: How long each kind of operation takes, in seconds of the fake clock: Azure's usual figures (endpoint creation
#: 1-2 minutes, a managed deployment 5-15 minutes, a traffic update well under a minute).
DURATIONS: Mapping[str, float] = {
    "endpoint:create": 90.0,
    "endpoint:update": 30.0,
    "deployment:create": 300.0,
    "deployment:update": 300.0,
    "deployment:delete": 60.0,
    "deployment:scale": 60.0,
}
#: ``provisioningState`` values an operation can end in (2023-04-01 ``DeploymentProvisioningState``).
TERMINAL = ("Succeeded", "Failed", "Canceled")


@dataclass
class Operation:
    """A long-running operation in flight: it ends when the fake clock reaches ``ends_at``."""

    action: str  # create | update | delete | scale
    ends_at: dt.datetime
    outcome: str = "Succeeded"


@dataclass
class Deployment:
    name: str
    state: str
    model: str  # the model's ARM id
    tags: dict[str, str] = field(default_factory=dict)
    operation: Operation | None = None
    logs_failed: bool = False

    def view(self) -> DeploymentView:
        return DeploymentView(self.name, self.state, dict(self.tags), self.model)


@dataclass
class Endpoint:
    name: str
    state: str
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    operation: Operation | None = None
    deployments: dict[str, Deployment] = field(default_factory=dict)

    def view(self) -> EndpointView:
        return EndpointView(
            name=self.name,
            provisioning_state=self.state,
            traffic=dict(self.traffic),
            mirror_traffic=dict(self.mirror),
            deployments=tuple(d.view() for _, d in sorted(self.deployments.items())),
            tags=dict(self.tags),
        )


class StateMixin:
    """The fake's state as time passes, and what a test sees and changes of it outside the app."""

    def settle(self: FakeAzureML) -> None:
        """End every operation whose time is up on the fake clock (state is evaluated lazily, as in the emulator)."""
        now = self.clock()
        for ep in self.endpoints.values():
            if ep.operation is not None and ep.operation.ends_at <= now:
                ep.state, ep.operation = ep.operation.outcome, None
            for key, dep in list(ep.deployments.items()):
                if dep.operation is None or dep.operation.ends_at > now:
                    continue
                if dep.operation.action == "delete":
                    del ep.deployments[key]
                    continue
                dep.state, dep.operation = dep.operation.outcome, None
                dep.logs_failed = dep.state == "Failed"

    def busy(self: FakeAzureML, endpoint: str) -> str:
        """What holds the endpoint (an operation in flight on it or a deployment), or "" when it is idle."""
        ep = self.endpoints.get(endpoint.lower())
        if ep is None:
            return ""
        if ep.operation is not None:
            return f"online endpoint '{ep.name}' is in {ep.state} provisioning state"
        for dep in ep.deployments.values():
            if dep.operation is not None:
                return f"online deployment '{dep.name}' is in {dep.state} provisioning state"
        return ""

    def seconds_to_idle(self: FakeAzureML) -> float:
        """How far the clock must move for every operation in flight to end (0 when none is)."""
        self.settle()
        ends = [ep.operation.ends_at for ep in self.endpoints.values() if ep.operation is not None]
        ends += [d.operation.ends_at for ep in self.endpoints.values() for d in ep.deployments.values() if d.operation]
        return max(0.0, max((end - self.clock()).total_seconds() for end in ends)) if ends else 0.0

    # ------------------------------------------------------------------------------------ a test's view

    def register_model(
        self: FakeAzureML,
        name: str,
        version: str | int,
        tags: Mapping[str, str] | None = None,
        *,
        model_type: str = "mlflow_model",
    ) -> ModelInfo:
        """Register a model version (AML assigns its creation time from the clock)."""
        model = ModelInfo(name, str(version), model_type, dict(tags or {}), created_at=self.clock())
        self.models[(name.lower(), str(version))] = model
        return model

    def traffic(self: FakeAzureML, endpoint: str) -> dict[str, int]:
        """The endpoint's non-zero live traffic ({} when it does not exist)."""
        self.settle()
        ep = self.endpoints.get(endpoint.lower())
        return {k: v for k, v in ep.traffic.items() if v} if ep else {}

    def mirror(self: FakeAzureML, endpoint: str) -> dict[str, int]:
        self.settle()
        ep = self.endpoints.get(endpoint.lower())
        return {k: v for k, v in ep.mirror.items() if v} if ep else {}

    def deployments(self: FakeAzureML, endpoint: str) -> dict[str, str]:
        """Deployment name -> provisioning state."""
        self.settle()
        ep = self.endpoints.get(endpoint.lower())
        return {d.name: d.state for d in ep.deployments.values()} if ep else {}

    def state(self: FakeAzureML, endpoint: str, deployment: str | None = None) -> str | None:
        """The endpoint's (or a deployment's) provisioning state, None if it does not exist."""
        self.settle()
        ep = self.endpoints.get(endpoint.lower())
        if ep is None or deployment is None:
            return ep.state if ep else None
        found = ep.deployments.get(deployment.lower())
        return found.state if found else None

    # ------------------------------------------------------------------------------------ outside the app

    def set_state(
        self: FakeAzureML, endpoint: str, deployment: str | None = None, *, state: str, seconds: float = 0.0
    ) -> None:
        """An idle endpoint or deployment shows ``state`` now, as after an event in Azure ML itself.

        ``Failed``/``Canceled``/``Succeeded`` stay until the next write; ``Scaling`` (deployments only) lasts
        ``seconds`` and holds the endpoint like any operation.
        """
        self.settle()
        ep = self.endpoints[endpoint.lower()]
        target = ep if deployment is None else ep.deployments[deployment.lower()]
        if target.operation is not None:
            raise ValueError(f"{target.name} has an operation in flight; end it by moving the clock first")
        if state == "Scaling":
            if deployment is None or seconds <= 0:
                raise ValueError("only a deployment scales, and it needs seconds > 0")
            target.operation = Operation("scale", self.clock() + dt.timedelta(seconds=seconds))
        elif state not in TERMINAL:
            raise ValueError(f"state {state!r} is not one of {TERMINAL} or Scaling")
        target.state = state
        if isinstance(target, Deployment):
            target.logs_failed = state == "Failed"

    def fail_deployment(self: FakeAzureML, name: str, *, state: str = "Failed", count: int = 1) -> None:
        """The next ``count`` create/update operations of deployment ``name`` (on any endpoint) end in ``state``."""
        self.end_next_operations("", name, state=state, count=count)

    def end_next_operations(
        self: FakeAzureML, endpoint: str, deployment: str | None = None, *, state: str = "Failed", count: int = 1
    ) -> None:
        """The next ``count`` create/update operations on the endpoint (or its deployment) end in ``state``."""
        if state not in TERMINAL:
            raise ValueError(f"an operation ends in one of {TERMINAL}, not {state!r}")
        self.failing.setdefault((endpoint.lower(), (deployment or "").lower()), []).extend([state] * count)

    def set_traffic_by_hand(
        self: FakeAzureML, endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int] | None = None
    ) -> None:
        """Someone changes the split outside the app (the portal, the CLI): Azure ML's rules apply, no call is
        recorded as the app's."""
        self.settle()
        self._put_traffic(endpoint, dict(traffic), dict(mirror or {}))
