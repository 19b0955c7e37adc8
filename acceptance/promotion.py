"""The production side of the ``promotion`` scenario: a second workspace, its app, and the registry between them.

The scenario's target is the staging side (its workspace and app). ``ProductionSide`` adds what production needs:
its app's status API, ARM on its workspace, the registry's versions (read with the app's own registry adapter), and
cleanup of what the run made there. Offline it is the dev kit's second workspace and the same app with production's
settings (``devkit/promotion.py``); live, a workspace and a deployed app named by ``ACCEPTANCE_PROD_*`` variables and
a registry named by ``ACCEPTANCE_REGISTRY``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from acceptance.target import PROGRESSIVE_STATES, Timeout
from app.azure.aml import arm_endpoint
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.naming import endpoint_name

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    from app.azure.registry import ModelRegistry
    from app.rollout.decide.registry_model import RegistryModelVersion

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The live variables of the production side: all of them, or none (the scenario is then skipped, saying so).
PRODUCTION_VARIABLES = (
    ("ACCEPTANCE_REGISTRY", "the Azure ML registry the staging app promotes into (its PROMOTE_TO_REGISTRY)"),
    ("ACCEPTANCE_PROD_SUBSCRIPTION_ID", "the production workspace's subscription id"),
    ("ACCEPTANCE_PROD_RESOURCE_GROUP", "the production workspace's resource group"),
    ("ACCEPTANCE_PROD_WORKSPACE", "the production workspace (its app's AML_ALLOWED_WORKSPACES)"),
    ("ACCEPTANCE_PROD_APP_URL", "the production Function App's base URL"),
    ("ACCEPTANCE_PROD_FUNCTION_KEY", "a host key of the production Function App"),
)


@dataclass
class ProductionCreated:
    """What the run may have made on the production side: endpoints in its workspace, versions in the registry."""

    endpoints: list[str] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)


class ProductionSide(ABC):
    """Production's workspace and app, and the registry: what the ``promotion`` scenario looks at there."""

    #: How long the scenario waits for each thing production does (set to the target's settle timeout).
    timeout_s = 60.0

    def __init__(self, registry: str, workspace: WorkspaceRef, credential: TokenCredential) -> None:
        self.registry_name = registry
        self.workspace = workspace
        self.created = ProductionCreated()
        self._credential = credential
        self._mgmt: MachineLearningServicesMgmtClient | None = None
        self._registry: ModelRegistry | None = None

    @abstractmethod
    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """The production app's ``GET /api/rollouts``."""

    @abstractmethod
    def pass_time(self) -> None:
        """Let both apps and Azure ML make progress (offline: the staging app's follow-ups, Event Grid's delivery
        of its ``AmlEvents.Model.Promoted`` to production, a tick of each app)."""

    @abstractmethod
    def decide(self, row: Mapping[str, Any], action: str, reason: str) -> tuple[int, dict[str, Any]]:
        """An operator's ``approve`` or ``reject`` of production's rollout ``row``: (HTTP status, JSON body)."""

    def awaiting_or_settled(self, model: str, version: str) -> dict[str, Any] | None:
        """Production's rollout of the version once it awaits an approval or stopped moving (None before)."""
        row = self.rollout(model, version)
        if row is None or (row["state"] != "awaiting_approval" and row["state"] in PROGRESSIVE_STATES):
            return None
        return row

    def endpoint(self, model: str) -> str:
        """The endpoint production's app names for ``model`` when its tags name none (its own workspace's suffix)."""
        return endpoint_name(model, self.workspace.arm_id)

    def track(self, model: str, version: str) -> None:
        """Record, before it exists, what the scenario will make production and the registry hold."""
        self.created.endpoints.append(self.endpoint(model))
        self.created.versions.append((model, version))

    @property
    def mgmt(self) -> MachineLearningServicesMgmtClient:
        if self._mgmt is None:
            from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

            self._mgmt = MachineLearningServicesMgmtClient(
                self._credential, self.workspace.subscription_id, base_url=arm_endpoint()
            )
        return self._mgmt

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            from app.azure.registry import ModelRegistry

            self._registry = ModelRegistry(self._credential, self.registry_name)
        return self._registry

    def registry_version(self, model: str, version: str) -> RegistryModelVersion | None:
        """The registry's version, as production's app reads it (None while it is not there)."""
        from app.ports import RegistryVersionNotFound

        try:
            return self.registry.get(model, version)
        except RegistryVersionNotFound:
            return None

    def rollout(self, model: str, version: str) -> dict[str, Any] | None:
        return next((r for r in self.status({"model": model}) if r["version"] == version), None)

    def evidenced_version(self, model: str, version: str) -> RegistryModelVersion | None:
        """The registry's version once its evidence is written (the copy lands first, the tags just after)."""
        found = self.registry_version(model, version)
        return found if found is not None and found.evidence is not None else None

    def settled_rollout(self, model: str, version: str) -> dict[str, Any] | None:
        """Production's rollout of the version once it stopped moving (None before)."""
        row = self.rollout(model, version)
        return row if row is not None and row["state"] not in PROGRESSIVE_STATES else None

    def wait_for(self, look: Callable[[], T | None], what: str) -> T:
        """Look until ``look`` gives something, letting both apps make progress between looks."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            found = look()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise Timeout(f"waited {self.timeout_s:.0f} s for {what}")
            self.pass_time()

    def traffic(self, endpoint: str) -> dict[str, int]:
        scope = self.workspace.resource_group, self.workspace.workspace_name
        raw = self.mgmt.online_endpoints.get(*scope, endpoint)
        return {str(k).lower(): int(v) for k, v in (raw.properties.traffic or {}).items() if int(v)}

    def deployment_model(self, endpoint: str, deployment: str) -> str:
        """The model a production deployment names, as ARM reports it."""
        scope = self.workspace.resource_group, self.workspace.workspace_name
        return str(self.mgmt.online_deployments.get(*scope, endpoint, deployment).properties.model)

    def cleanup(self) -> list[str]:
        """Delete the run's production endpoints and registry versions; what could not be deleted."""
        from azure.core.exceptions import ResourceNotFoundError

        leftovers: list[str] = []
        scope = self.workspace.resource_group, self.workspace.workspace_name
        for endpoint in list(self.created.endpoints):
            try:
                with contextlib.suppress(ResourceNotFoundError):
                    self.mgmt.online_endpoints.begin_delete(*scope, endpoint).result()
                self.created.endpoints.remove(endpoint)
            except Exception as err:
                leftovers.append(f"production endpoint {endpoint}: {type(err).__name__}: {err}")
        for model, version in list(self.created.versions):
            try:
                with contextlib.suppress(ResourceNotFoundError):
                    registry = self.registry.registry_client
                    self.registry.mgmt.registry_model_versions.begin_delete(
                        registry.resource_group_name, self.registry_name, model, version
                    ).result()
                self.created.versions.remove((model, version))
            except Exception as err:
                leftovers.append(
                    f"registry {self.registry_name} version {model}:{version}: {type(err).__name__}: {err}"
                )
        return leftovers

    def leftover_commands(self) -> list[str]:
        ws = self.workspace
        commands = [
            f"az ml online-endpoint delete -n {e} -g {ws.resource_group} -w {ws.workspace_name} --yes"
            for e in self.created.endpoints
        ]
        scope = "/subscriptions/<registry subscription>/resourceGroups/<registry resource group>"
        commands += [
            f"az rest --method delete --url 'https://management.azure.com{scope}/providers/"
            f"Microsoft.MachineLearningServices/registries/{self.registry_name}/models/{m}/versions/{v}"
            "?api-version=2023-04-01'"
            for m, v in self.created.versions
        ]
        return commands


def production_settings(env: Mapping[str, str]) -> dict[str, str] | None:
    """The ``ACCEPTANCE_PROD_*`` and ``ACCEPTANCE_REGISTRY`` values; None when none is set; ``ValueError`` naming
    the missing ones when only some are."""
    values = {name: (env.get(name) or "").strip() for name, _ in PRODUCTION_VARIABLES}
    if not any(values.values()):
        return None
    missing = [f"{name}: {what}" for name, what in PRODUCTION_VARIABLES if not values[name]]
    if missing:
        raise ValueError("the promotion scenario needs all of these, or none: " + "; ".join(missing))
    return values
