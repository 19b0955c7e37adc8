"""An in-memory Azure ML workspace behind ``AmlGateway``'s interface, enforcing Azure ML's online-endpoint rules.

The rules, as Azure ML documents them (they match the dev kit's HTTPS emulator, which the real SDKs are tested
against):

- live traffic sums to 0 or 100; mirror traffic goes to one deployment only, at most 50%; a deployment gets live
  or mirrored traffic, not both; traffic only to deployments that exist and succeeded ("Safe rollout for online
  endpoints", https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints, and the
  2023-04-01 ``OnlineEndpointProperties`` in azure-rest-api-specs, specification/machinelearningservices/
  resource-manager/Microsoft.MachineLearningServices/stable/2023-04-01/mfe.json);
- one operation at a time per endpoint: a write while the endpoint or one of its deployments is creating,
  updating, scaling or deleting answers 409; a deployment can't be created while its endpoint is creating, nor on
  a Failed endpoint ("Troubleshooting online endpoints deployment and scoring",
  https://learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints);
- a deployment with live or mirrored traffic can't be deleted (the safe-rollout page: set its traffic to 0 first);
- endpoint and deployment names: 3-32 letters, digits and hyphens, starting with a letter (the SDK's own rule,
  azure.ai.ml ``EndpointConfigurations.NAME_REGEX_PATTERN``, which ``app.rollout.decide.naming`` applies); endpoint
  names unique in the region ("It must be unique in the Azure region",
  https://learn.microsoft.com/azure/machine-learning/how-to-deploy-online-endpoints);
- writes are long-running operations: the resource shows ``Creating``/``Updating``/``Deleting`` until the
  operation ends on the fake clock, then ``Succeeded`` (or ``Failed``/``Canceled`` when told to).

Faults are injectable on any call (``tests/fakes/aml_faults.py``): an ARM 4xx/5xx, no answer (landed or not),
a traffic write held on the wire that lands after newer ones, a deployment going Failed. Every call is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.workspace import WorkspaceRef
from app.ports import ModelNotFound
from app.rollout.decide.model import (
    APP_TAG,
    APP_TAG_VALUE,
    DeploymentView,
    EndpointView,
    ModelInfo,
    RolloutPlan,
    covers_split,
)
from app.rollout.decide.naming import EndpointNameTaken, is_valid_name
from tests.fakes.aml_faults import ArmCall, Fault, FaultsMixin, HeldWrite
from tests.fakes.aml_state import DURATIONS, Deployment, Endpoint, Operation, StateMixin
from tests.fakes.arm import arm_error

if TYPE_CHECKING:
    from tests.fakes.clock import FakeClock

__all__ = ["DURATIONS", "ArmCall", "FakeAzureML", "Fault", "HeldWrite"]


class FakeAzureML(StateMixin, FaultsMixin):
    """One workspace's Azure ML; ``Deps.aml`` (it is its own gateway: ``fake(workspace)`` returns it)."""

    def __init__(
        self, clock: FakeClock, workspace: WorkspaceRef, *, durations: Mapping[str, float] | None = None
    ) -> None:
        self.clock = clock
        self.workspace = workspace
        self.durations = {**DURATIONS, **(durations or {})}
        self.endpoints: dict[str, Endpoint] = {}
        self.models: dict[tuple[str, str], ModelInfo] = {}
        self.calls: list[ArmCall] = []
        self.faults: list[Fault] = []
        self.held: list[HeldWrite] = []
        self.taken_names: set[str] = set()
        #: (endpoint, deployment or "") -> how its next create/update operations end ("" endpoint: any endpoint).
        self.failing: dict[tuple[str, str], list[str]] = {}
        #: The registry versions a deployment may name (registry, model, version) -> the model, or None.
        self.registry_models: Callable[[str, str, str], ModelInfo | None] = lambda *_: None
        #: Every accepted traffic write: (time, endpoint, live, mirror), as the metrics fake routes requests by it.
        self.traffic_log: list[tuple[dt.datetime, str, dict[str, int], dict[str, int]]] = []
        #: Who set each split of ``traffic_log``: "app" (an answered write), "late" (one landing late), "hand".
        self.traffic_by: list[str] = []
        self.writer = "app"
        #: The endpoints observed without listing their deployments (the app knew them: only traffic was written).
        self.lists_skipped: list[str] = []
        #: Runs before each write the app sends (a test checks who may write then); see ``interleave``.
        self.write_guard: Callable[[ArmCall], None] | None = None
        self.interleaved: list[tuple[str, Callable[[], object]]] = []

    def __call__(self, workspace: WorkspaceRef) -> FakeAzureML:
        if workspace.key != self.workspace.key:
            raise arm_error(404, "ResourceNotFound", f"workspace {workspace.workspace_name} was not found")
        return self

    # ------------------------------------------------------------------------------------ the gateway's reads

    def location(self) -> str:
        return "eastus"

    def canonical_id(self) -> str:
        """The workspace's ARM id as ARM spells it."""
        self._call("canonical_id", "")
        return self.workspace.arm_id

    def get_model(self, name: str, version: str) -> ModelInfo:
        self._call("get_model", "", name)
        model = self.models.get((name.lower(), str(version)))
        if model is None:
            raise ModelNotFound(f"model {name}:{version} does not exist in {self.workspace.workspace_name}")
        return model

    def observe(self, endpoint: str, known: Sequence[DeploymentView] | None = None) -> EndpointView | None:
        self._call("observe", endpoint)
        found = self.endpoints.get(endpoint.lower())
        if found is None:
            return None
        view = found.view()
        if known is not None and covers_split(known, view.traffic, view.mirror_traffic):
            # As the gateway does: the list is not read, and the app sees the deployments it knew.
            self.lists_skipped.append(endpoint)
            return replace(view, deployments=tuple(known))
        return view

    def get_logs(self, endpoint: str, deployment: str, lines: int = 50) -> str:
        self._call("get_logs", endpoint, deployment)
        found = self._deployment(endpoint, deployment, "POST")
        text = [f"Loading model {found.model} for deployment {found.name} on endpoint {endpoint}"]
        if found.logs_failed:
            text += ["ERROR | Worker exiting: exception while loading the model", f"Deployment {found.name} Failed."]
        return "\n".join(text[-lines:])

    # ------------------------------------------------------------------------------------ the gateway's writes

    def create_endpoint(self, name: str) -> None:
        self._call("create_endpoint", name, apply=lambda: self._put_endpoint(name))

    def create_deployment(self, plan: RolloutPlan, now: dt.datetime) -> None:
        tags = {
            APP_TAG: APP_TAG_VALUE,
            "model-name": plan.model_name,
            "model-version": plan.model_version,
            "model-created-at": plan.model_created_at,
            "created-at": now.isoformat(),
        }
        model = (
            plan.model_ref
            if plan.source is not None
            else f"{self.workspace.arm_id}/models/{plan.model_name}/versions/{plan.model_version}"
        )
        self._call(
            "create_deployment",
            plan.endpoint,
            plan.deployment,
            apply=lambda: self._put_deployment(plan.endpoint, plan.deployment, model, tags),
        )

    def set_traffic(self, endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> None:
        wanted, mirrored = dict(traffic), dict(mirror)
        self._call("set_traffic", endpoint, apply=lambda: self._put_traffic(endpoint, wanted, mirrored))

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        self._call("delete_deployment", endpoint, deployment, apply=lambda: self._delete(endpoint, deployment))

    # ------------------------------------------------------------------------------------ Azure ML's rules

    def _put_endpoint(self, name: str) -> None:
        path = self._path(name)
        if not is_valid_name(name):
            raise arm_error(400, "BadArgument", f"Invalid online endpoint name '{name}'.", method="PUT", path=path)
        existing = self.endpoints.get(name.lower())
        self._check_idle(name, "PUT")
        if existing is None and name.lower() in self.taken_names:
            raise EndpointNameTaken(name)
        if existing is None:
            self.endpoints[name.lower()] = existing = Endpoint(name, "Creating", tags={APP_TAG: APP_TAG_VALUE})
            existing.operation = self._operation("endpoint", "create", name)
            return
        # A re-PUT replaces the endpoint's properties: the app's body carries no traffic.
        existing.state, existing.traffic, existing.mirror = "Updating", {}, {}
        existing.operation = self._operation("endpoint", "update", name)

    def _put_deployment(self, endpoint: str, name: str, model: str, tags: dict[str, str]) -> None:
        path = self._path(endpoint, name)
        if not is_valid_name(name):
            raise arm_error(400, "BadArgument", f"Invalid online deployment name '{name}'.", method="PUT", path=path)
        ep = self._endpoint(endpoint, "PUT")
        self._check_idle(endpoint, "PUT")
        if ep.state != "Succeeded":
            busy = ep.state in {"Creating", "Updating", "Deleting"}
            raise arm_error(
                409 if busy else 400,
                "Conflict" if busy else "BadArgument",
                f"Online endpoint '{endpoint}' is in {ep.state} provisioning state; deployments can only be "
                "created on an endpoint that succeeded.",
                method="PUT",
                path=path,
            )
        name_version = model.rsplit("/models/", 1)[-1].replace("/versions/", ":")
        model_name, _, version = name_version.partition(":")
        if model.lower().startswith("azureml://registries/"):  # a registry's version, read from there
            known = self.registry_models(model.split("/")[3], model_name, version)
        else:
            known = self.models.get((model_name.lower(), version))
        if known is None:
            raise arm_error(404, "UserError", f"Could not find model {name_version}.", method="PUT", path=path)
        if known.type not in ("mlflow_model", "triton_model"):
            message = f"Model {name_version} is a {known.type}: it needs an environment and a scoring script."
            raise arm_error(400, "BadArgument", message, method="PUT", path=path)
        existing = ep.deployments.get(name.lower())
        if existing is None:
            ep.deployments[name.lower()] = existing = Deployment(name, "Creating", model, tags)
            existing.operation = self._operation("deployment", "create", endpoint, name)
            return
        existing.state, existing.model, existing.tags = "Updating", model, tags
        existing.operation = self._operation("deployment", "update", endpoint, name)

    def _put_traffic(self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        ep = self._endpoint(endpoint, "PUT")
        self._check_idle(endpoint, "PUT")
        self._check_traffic(ep, traffic, mirror)
        ep.traffic, ep.mirror, ep.state = traffic, mirror, "Updating"
        ep.operation = self._operation("endpoint", "update", ep.name)
        self.traffic_log.append((self.clock(), ep.name.lower(), dict(traffic), dict(mirror)))
        self.traffic_by.append(self.writer)

    def _check_traffic(self, ep: Endpoint, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> None:
        def refuse(message: str) -> Exception:
            return arm_error(400, "BadArgument", message, method="PUT", path=self._path(ep.name))

        for label, table in (("traffic", traffic), ("mirror traffic", mirror)):
            for name, pct in table.items():
                if not 0 <= pct <= 100:
                    raise refuse(f"Invalid {label} value {pct} for deployment '{name}'.")
                found = ep.deployments.get(name.lower())
                if pct and found is None:
                    raise refuse(f"Deployment '{name}' named in the endpoint's {label} does not exist.")
                if pct and found is not None and found.state != "Succeeded":
                    raise refuse(f"Deployment '{name}' is in {found.state} provisioning state.")
        if len([name for name, pct in mirror.items() if pct]) > 1:
            raise refuse("Mirror traffic can go to one deployment only.")
        if sum(traffic.values()) not in (0, 100):
            raise refuse(f"Traffic values must sum to 100 (or 0); they sum to {sum(traffic.values())}.")
        for name, pct in mirror.items():
            if pct > 50:
                raise refuse(f"Mirror traffic to '{name}' is {pct}%; at most 50% is allowed.")
            if pct and traffic.get(name, 0):
                raise refuse(f"Deployment '{name}' cannot receive both live and mirrored traffic.")

    def _delete(self, endpoint: str, name: str) -> None:
        ep = self._endpoint(endpoint, "DELETE")
        found = ep.deployments.get(name.lower())
        if found is None:
            return  # ARM answers 204: nothing to delete
        self._check_idle(endpoint, "DELETE")
        if ep.traffic.get(found.name) or ep.mirror.get(found.name):
            raise arm_error(
                400,
                "BadArgument",
                f"Deployment '{found.name}' still receives traffic; set its traffic to 0 before deleting it.",
                method="DELETE",
                path=self._path(endpoint, name),
            )
        found.state, found.operation = "Deleting", self._operation("deployment", "delete", endpoint, found.name)

    def _check_idle(self, endpoint: str, method: str) -> None:
        busy = self.busy(endpoint)
        if busy:
            raise arm_error(
                409,
                "Conflict",
                f"Conflict: another operation is in progress on endpoint '{endpoint}': {busy}.",
                method=method,
                path=self._path(endpoint),
            )

    def _operation(self, kind: str, action: str, endpoint: str, deployment: str | None = None) -> Operation:
        outcome = "Succeeded"
        for key in ((endpoint.lower(), (deployment or "").lower()), ("", (deployment or "").lower())):
            if action in {"create", "update"} and self.failing.get(key):
                outcome = self.failing[key].pop(0)
                break
        ends = self.clock() + dt.timedelta(seconds=self.durations[f"{kind}:{action}"])
        return Operation(action, ends, outcome)

    def _endpoint(self, endpoint: str, method: str) -> Endpoint:
        found = self.endpoints.get(endpoint.lower())
        if found is None:
            message = f"Could not find online endpoint '{endpoint}' in workspace '{self.workspace.workspace_name}'."
            raise arm_error(404, "UserError", message, method=method, path=self._path(endpoint))
        return found

    def _deployment(self, endpoint: str, name: str, method: str) -> Deployment:
        found = self._endpoint(endpoint, method).deployments.get(name.lower())
        if found is None:
            message = f"Could not find online deployment '{name}' on endpoint '{endpoint}'."
            raise arm_error(404, "UserError", message, method=method, path=self._path(endpoint, name))
        return found

    def _path(self, endpoint: str, deployment: str = "") -> str:
        tail = f"/deployments/{deployment}" if deployment else ""
        return f"{self.workspace.arm_id}/onlineEndpoints/{endpoint}{tail}"
