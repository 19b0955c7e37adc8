"""Where azure-ai-ml finds registries: a cloud's metadata, registry discovery, and the registries this emulator serves.

azure-ai-ml does not reach a registry through ``AZUREML_DEV_URL_MFE``: ``MLClient(registry_name=...)`` and
``models.share`` first ask the cloud's **registry discovery** endpoint (``https://eastus.api.azureml.ms/`` for Azure's
public cloud) ``GET /registrymanagement/v1.0/registries/{name}/discovery?api-version=v1.0``, and send every registry
request to the ``primaryRegionResourceProviderUri`` it answers (azure-ai-ml 1.35.2, ``_utils/_registry_utils.py``).
The SDK takes that endpoint from its cloud table, which a custom cloud extends without code
(``_azure_environments.py``): ``AZUREML_CURRENT_CLOUD`` names a cloud the SDK does not know,
``ARM_CLOUD_METADATA_URL`` is where it reads the cloud's endpoints (ARM's ``/metadata/endpoints`` format), and
``REGISTRY_DISCOVERY_ENDPOINT_URL`` is its registry discovery endpoint. :meth:`RegistriesArea.cloud_env` gives those
three, pointing here; the unchanged app then finds the emulated registries the way it finds Azure's. Only the
metadata reads are the dev kit's own (Azure's public cloud is built into the SDK); they are not authenticated and
not in the request log.

Discovery is specified in azure-rest-api-specs, specification/machinelearningservices/data-plane/
Microsoft.MachineLearningServices.RegistryDiscovery/stable/v1.0/registry-discovery.json, whose token scope is
``https://ml.azure.com/.default``; ``models.share`` asks with such a token, ``MLClient(registry_name=...)`` with an
ARM one (its cloud's scopes), so both audiences are accepted there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.registries import EmulatedRegistry, RegistryModelVersion, SourceModel
from devkit.aml_emulator.registry_routes import serve
from devkit.aml_emulator.state import ARM_AUDIENCE, PROVIDER, ArmError

if TYPE_CHECKING:
    from devkit.aml_emulator.server import AmlEmulator

CLOUD_NAME = "AzureDevkit"
METADATA_PATH = "/metadata/endpoints"
ML_AUDIENCE = "https://ml.azure.com"
_DISCOVERY = re.compile(r"^/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery$", re.IGNORECASE)
_REGISTRY_PATH = re.compile(
    r"^(?P<mfe>/mferp/managementfrontend)?/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    + re.escape(PROVIDER)
    + r"/registries/(?P<registry>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_SOURCE_ASSET = re.compile(
    r"^azureml://locations/(?P<loc>[^/]+)/workspaces/(?P<guid>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
#: A deployment's model in a registry: the asset id azure-ai-ml and the docs use, or its ARM form.
_REGISTRY_MODEL_REF = re.compile(
    r"^(?:azureml://registries/(?P<asset_registry>[^/]+)|/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    + re.escape(PROVIDER)
    + r"/registries/(?P<arm_registry>[^/]+))/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)


class RegistriesArea(AreaBase):
    """Registries served on this emulator's URL (host only), their discovery, and the cloud metadata that finds it."""

    _registries: dict[str, EmulatedRegistry]
    resource_group: str
    workspace_guid: str

    def add_registry(
        self,
        name: str,
        *,
        location: str | None = None,
        regions: tuple[str, ...] | list[str] | None = None,
        resource_group: str | None = None,
        subscription_id: str | None = None,
    ) -> EmulatedRegistry:
        """Serve a registry (by default in this workspace's region, subscription and resource group); returns it.

        Registry names are looked up without a subscription (discovery takes only the name), so they are unique
        here. ``regions`` (default: ``location`` alone) are where workspaces can share into and deploy from it.
        :meth:`reset` of the host forgets it.
        """
        host = self._host_emulator()
        if name.lower() in host._registries:
            raise ValueError(f"registry '{name}' is already served")
        where = location or host.location
        registry = EmulatedRegistry(
            name,
            subscription_id=subscription_id or host.subscription_id,
            resource_group=resource_group or host.resource_group,
            location=where,
            regions=tuple(regions or (where,)),
            url=host.url,
            resolve_source=host._resolve_source,
        )
        registry._lock = host._lock  # one lock: a deployment's check and an import never wait on each other
        with host._lock:
            host._registries[name.lower()] = registry
        return registry

    def registry(self, name: str) -> EmulatedRegistry:
        """A registry served here, by name."""
        found = self._host_emulator()._registries.get(name.lower())
        if found is None:
            raise KeyError(f"no registry '{name}' is served here")
        return found

    def cloud_env(self) -> dict[str, str]:
        """The variables that make azure-ai-ml discover registries here (see the module docstring)."""
        return {
            "AZUREML_CURRENT_CLOUD": CLOUD_NAME,
            "ARM_CLOUD_METADATA_URL": f"{self.url}{METADATA_PATH}?api-version=2022-09-01",
            "REGISTRY_DISCOVERY_ENDPOINT_URL": f"{self.url}/",
        }

    # ------------------------------------------------------------------ HTTP

    def _cloud_metadata(self, request: Request) -> Response:
        """ARM's ``/metadata/endpoints`` answer for the dev kit's cloud: Azure's public endpoints and audiences."""
        cloud = {
            "name": CLOUD_NAME,
            "portal": "https://portal.azure.com",
            "resourceManager": "https://management.azure.com/",
            "authentication": {
                "loginEndpoint": "https://login.microsoftonline.com",
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
            },
            "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net"},
        }
        return Response(200, [cloud])

    def _audiences(self, path: str) -> tuple[str, ...]:
        """The token audiences a path accepts: discovery takes an ML or an ARM token, everything else ARM's."""
        return (ML_AUDIENCE, ARM_AUDIENCE) if _DISCOVERY.match(path) else (ARM_AUDIENCE,)

    def _route_registries(self, request: Request) -> Response | None:
        """Serve discovery and registry paths (both planes); None for any other path."""
        if found := _DISCOVERY.match(request.path):
            if request.method != "GET":
                raise ArmError(405, "MethodNotAllowed", "Only GET is supported on registry discovery.")
            registry = self._host_emulator()._registries.get(found["registry"].lower())
            if registry is None:
                raise ArmError(404, "RegistryNotFound", f"Registry '{found['registry']}' was not found.")
            return Response(200, registry.discovery())
        found = _REGISTRY_PATH.match(request.path)
        if found is None:
            return None
        registry = self._host_emulator()._registries.get(found["registry"].lower())
        if (
            registry is None
            or registry.subscription_id.lower() != found["sub"].lower()
            or registry.resource_group.lower() != found["rg"].lower()
        ):
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/registries/{found['registry']}' under resource group '{found['rg']}' "
                "was not found.",
            )
        return serve(registry, request, found["rest"] or "", dataplane=bool(found["mfe"]))

    # ------------------------------------------------------------------ used by other areas

    def _resolve_source(self, asset_id: str) -> SourceModel | None:
        """The workspace model a share names (``azureml://locations/{loc}/workspaces/{guid}/models/{n}/versions/{v}``).

        Read without the workspace's lock (see ``add_registry``): a share copies a snapshot.
        """
        found = _SOURCE_ASSET.match(asset_id)
        if found is None:
            return None
        host = self._host_emulator()
        for ws in [host, *host._workspaces]:
            if ws.workspace_guid.lower() != found["guid"].lower():
                continue
            model = ws._models.get(found["name"].lower(), {}).get(found["version"])
            return SourceModel(ws.workspace_id, ws.location, model) if model is not None else None
        return None

    def _registry_model_for(self, ref: str) -> RegistryModelVersion | None:
        """The registry model a deployment names, checked as Azure ML would; None if ``ref`` names no registry.

        The version must exist (its import ended) and this workspace's region be one of the registry's ("You can
        choose to deploy any workspace ... provided the location of the workspace is one of the locations supported
        by the registry", https://learn.microsoft.com/azure/machine-learning/how-to-share-models-pipelines-across-
        workspaces-with-registries).
        """
        found = _REGISTRY_MODEL_REF.match(ref)
        if found is None:
            return None
        name = found["asset_registry"] or found["arm_registry"]
        registry = self._host_emulator()._registries.get(name.lower())
        model = registry.find(found["name"], found["version"]) if registry is not None else None
        if registry is None or model is None or model.state != "Succeeded":
            raise ArmError(
                404,
                "UserError",
                f"Could not find model {found['name']} with version {found['version']} in registry {name}.",
            )
        if not registry.serves_region(self.location):
            raise ArmError(
                400,
                "UserError",
                f"Registry {name} is not replicated to this workspace's region {self.location} (its regions: "
                f"{list(registry.regions)}): add the region to the registry or deploy from a workspace in one of them.",
            )
        return model

    def _host_emulator(self) -> AmlEmulator:
        host = getattr(self, "_host", None)
        return host if host is not None else self  # type: ignore[return-value]
