"""Azure ML registries: model containers and versions, shared from workspaces, on the registry data plane and on ARM.

A registry is served on two planes, from one state:

- the **registry data plane** that azure-ai-ml uses (``MLClient(registry_name=...)`` and ``models.share``): the host
  that registry discovery names (``primaryRegionResourceProviderUri``) plus ``/mferp/managementfrontend``, then the
  ARM-shaped path ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/registries/
  {registry}/...`` at api-version ``2021-10-01-dataplanepreview`` (azure-ai-ml 1.35.2, ``_utils/_registry_utils.py``);
- **ARM** (``management.azure.com``): the same path without the prefix, at api-version 2023-04-01 (azure-rest-api-specs,
  specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2023-04-01/
  registries.json: ``RegistryModelContainers_*``, ``RegistryModelVersions_*``), which azure-mgmt-machinelearningservices
  2.0.0b2 sends.

The rules taught here, each with its source:

- ``POST .../registries/{r}/import`` "performs a deep copy of the source asset given in the request into the registry
  ... If the destination resource exists, it will be overwritten" and answers 202 with ``Location`` and
  ``Retry-After``, polled to its end (the operation's description and responses in the 2021-10-01-dataplanepreview
  spec the SDK was generated from: azure-sdk-for-python, sdk/ml/azure-ai-ml/swagger/machinelearningservices/
  resource-manager/Microsoft.MachineLearningServices/preview/2021-10-01-dataplanepreview/mfe.json, and its generated
  ``ResourceManagementAssetReferenceOperations.begin_import_method``, final state via ``location``);
- a workspace can share into, and deploy from, a registry only in one of the registry's regions ("The Azure region
  (location) where you create your workspace must be in the list of supported regions for Azure Machine Learning
  registry", https://learn.microsoft.com/azure/machine-learning/how-to-share-models-pipelines-across-workspaces-with-
  registries);
- a shared version keeps its lineage to the training job (``jobName``; same page: "the model has a link to the job
  that trained the model");
- "For models, only ``description`` and ``tags`` can be updated. All other properties are immutable"
  (https://learn.microsoft.com/azure/machine-learning/how-to-manage-models, "Update"); ``stage`` is writable too
  (2023-04-01 ``ModelVersionProperties.stage`` is not read-only, and ``Model.stage`` is what azure-ai-ml sends).

What is the emulator's own choice, because Azure documents none: the ``Location`` URL of an import; that a failed
copy leaves no version behind (so a retry can share again); the error texts.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devkit._server import Response
from devkit.aml_emulator.state import PROVIDER, ArmError, ModelVersion, _now, _parse_time

REGISTRY_DATAPLANE_API_VERSION = "2021-10-01-dataplanepreview"
#: What the registry data plane's host carries before the ARM-shaped path (azure-ai-ml ``MFE_PATH_PREFIX``).
MFE_PREFIX = "/mferp/managementfrontend"
IMPORT_FAULTS = ("copy", "answer")
DEFAULT_IMPORT_DURATION_S = 0.3
DEFAULT_POLL_INTERVAL_S = 0.1


@dataclass
class RegistryModelVersion:
    """One model version in a registry."""

    name: str
    version: str
    model_type: str
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    stage: str | None = None
    job_name: str | None = None
    flavors: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=_now)
    modified_at: float = field(default_factory=_now)
    source: str | None = None  # the workspace asset id a share copied from (None: created in the registry)
    state: str = "Succeeded"  # Creating while an import copies it
    readable_at: float = 0.0  # a GET of this version answers 404 before then (read lag)
    hidden_reads: int = 0  # ... and for this many more GETs


@dataclass(frozen=True)
class SourceModel:
    """What a share copies: a workspace model version, with its workspace's id and region."""

    workspace_id: str
    location: str
    model: ModelVersion


@dataclass
class ImportOperation:
    """An import (a share) in progress: it copies ``source`` into ``name``/``version`` until ``ends_at``."""

    id: str
    name: str
    version: str
    ends_at: float
    fails: bool
    done: bool = False


#: Finds the workspace model an import's ``sourceAssetId`` names (None when there is none).
SourceResolver = Callable[[str], SourceModel | None]


class EmulatedRegistry:
    """One registry: its models, the imports that fill it, its faults, and its answers on both planes."""

    def __init__(
        self,
        name: str,
        *,
        subscription_id: str,
        resource_group: str,
        location: str,
        regions: tuple[str, ...],
        url: str,
        resolve_source: SourceResolver,
    ) -> None:
        self.name = name
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.location = location
        self.regions = regions
        self.url = url
        self._resolve_source = resolve_source
        self._lock = threading.RLock()
        self.reset()

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/registries/{self.name}"
        )

    # ------------------------------------------------------------------ control API

    def reset(self) -> None:
        """Forget every model, import, fault and lag."""
        with self._lock:
            self._models: dict[str, dict[str, RegistryModelVersion]] = {}
            self._containers: dict[str, tuple[str, float]] = {}  # name (lower) -> (name, created_at)
            self._imports: dict[str, ImportOperation] = {}
            self._import_faults: list[str] = []
            self._lag: tuple[float, int] = (0.0, 0)
            self.import_duration_s = DEFAULT_IMPORT_DURATION_S
            self.poll_interval_s = DEFAULT_POLL_INTERVAL_S

    def seed_model(
        self,
        name: str,
        version: str | int,
        *,
        model_type: str = "mlflow_model",
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        stage: str | None = None,
        job_name: str | None = None,
        created_at: str | float | datetime | None = None,
    ) -> RegistryModelVersion:
        """Create a version directly, as if made in the registry itself (no request is logged, no lag)."""
        at = _parse_time(created_at)
        model = RegistryModelVersion(
            name, str(version), model_type, dict(tags or {}), dict(properties or {}), description, stage, job_name,
            created_at=at, modified_at=at,
        )  # fmt: skip
        with self._lock:
            self._store(model, lag=False)
        return copy.deepcopy(model)

    def model(self, name: str, version: str | int) -> RegistryModelVersion | None:
        """A copy of the version as the registry holds it (lag and imports in progress included), or None."""
        with self._lock:
            self._advance()
            found = self._models.get(name.lower(), {}).get(str(version))
            return copy.deepcopy(found) if found else None

    def models(self) -> list[RegistryModelVersion]:
        """Every version, oldest first."""
        with self._lock:
            self._advance()
            return sorted(
                (copy.deepcopy(m) for v in self._models.values() for m in v.values()), key=lambda m: m.created_at
            )

    def set_read_lag(self, *, seconds: float = 0.0, reads: int = 0) -> None:
        """Versions created from now on answer 404 to a GET for ``seconds``, and to their first ``reads`` GETs.

        The lag a reader in another region can meet right after a share (registries replicate their assets to each
        of their regions: https://learn.microsoft.com/azure/machine-learning/how-to-manage-registries). Listing
        is not lagged. ``reads`` makes a test deterministic without waiting; both 0 turns the lag off.
        """
        with self._lock:
            self._lag = (float(seconds), int(reads))

    def fail_next_imports(self, count: int = 1, *, how: str = "copy") -> None:
        """Make the next ``count`` imports fail half-way.

        - ``copy``: the import is accepted (202) and the version is visible as ``Creating``; then the copy fails: the
          operation's ``Location`` answers 500 and the version is gone.
        - ``answer``: the import is applied and will complete, but its POST is answered 500 (the answer is lost;
          azure-core resends a POST that got a 500, and the resent import overwrites the same version).
        """
        if how not in IMPORT_FAULTS:
            raise ValueError(f"an import fails by one of {IMPORT_FAULTS}, not {how!r}")
        with self._lock:
            self._import_faults.extend([how] * count)

    def set_import_duration(self, seconds: float) -> None:
        """How long an import copies before it ends."""
        with self._lock:
            self.import_duration_s = float(seconds)

    def discovery(self) -> dict[str, Any]:
        """The registry discovery answer (``RegistryDiscoveryDto``: azure-rest-api-specs, specification/
        machinelearningservices/data-plane/Microsoft.MachineLearningServices.RegistryDiscovery/stable/v1.0/
        registry-discovery.json); the data plane is this emulator."""
        return {
            "registryName": self.name,
            "tenantId": "00000000-0000-0000-0000-00000000a7e1",
            "primaryRegion": self.location,
            "regions": list(self.regions),
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "primaryRegionResourceProviderUri": f"{self.url}/",
        }

    def serves_region(self, location: str) -> bool:
        wanted = location.replace(" ", "").lower()
        return any(region.replace(" ", "").lower() == wanted for region in self.regions)

    # ------------------------------------------------------------------ state

    def _store(self, model: RegistryModelVersion, *, lag: bool) -> None:
        seconds, reads = self._lag if lag else (0.0, 0)
        model.readable_at = _now() + seconds if seconds else 0.0
        model.hidden_reads = reads
        self._models.setdefault(model.name.lower(), {})[model.version] = model
        self._containers.setdefault(model.name.lower(), (model.name, model.created_at))

    def _remove(self, name: str, version: str) -> None:
        versions = self._models.get(name.lower(), {})
        versions.pop(version, None)
        if not versions:
            self._models.pop(name.lower(), None)
            self._containers.pop(name.lower(), None)

    def _advance(self) -> None:
        """End the imports whose time has come (state is evaluated lazily, on each request and control call)."""
        for op in self._imports.values():
            if op.done or _now() < op.ends_at:
                continue
            op.done = True
            model = self._models.get(op.name.lower(), {}).get(op.version)
            if model is None:
                continue
            if op.fails:
                self._remove(op.name, op.version)
            else:
                model.state = "Succeeded"
                model.modified_at = op.ends_at

    def find(self, name: str, version: str) -> RegistryModelVersion | None:
        """The version a deployment or a reader refers to (imports ended first), without lag."""
        with self._lock:
            self._advance()
            return self._models.get(name.lower(), {}).get(version)

    # ------------------------------------------------------------------ HTTP

    def start_import(self, body: Mapping[str, Any], api_version: str) -> Response:
        """Begin the import a POST asks for and answer it (500 when its answer is to be lost: a fault)."""
        props = body.get("properties") or {}
        source_id = str(props.get("sourceAssetId") or "")
        if str(props.get("referenceType", "")).lower() != "id" or not source_id:
            raise ArmError(400, "UserError", "The import needs properties.referenceType 'Id' and a sourceAssetId.")
        source = self._resolve_source(source_id)
        if source is None:
            raise ArmError(404, "UserError", f"Could not find the source asset {source_id}.")
        if not self.serves_region(source.location):
            raise ArmError(
                400,
                "UserError",
                f"The workspace's region {source.location} is not one of registry {self.name}'s regions "
                f"{list(self.regions)}: add the region to the registry or share from a workspace in one of them.",
            )
        name = str(props.get("destinationName") or source.model.name)
        version = str(props.get("destinationVersion") or source.model.version)
        fault = self._import_faults.pop(0) if self._import_faults else None
        now = _now()
        existing = self._models.get(name.lower(), {}).get(version)
        model = _copy_of(source, name, version, created_at=existing.created_at if existing else now)
        self._store(model, lag=True)
        op = ImportOperation(str(uuid.uuid4()), name, version, now + self.import_duration_s, fails=fault == "copy")
        self._imports[op.id] = op
        if fault == "answer":
            lost = ArmError(
                500, "InternalServerError", "The import was applied; its answer was lost (injected by the devkit)."
            ).response()
            lost.headers.update(self._fault_retry_headers())
            return lost
        location = f"{self.url}{MFE_PREFIX}{self.arm_id}/operationResults/{op.id}?api-version={api_version}"
        return Response(202, None, {"Location": location, **self._poll_delay_headers()})

    def _poll_delay_headers(self) -> dict[str, str]:
        # As operations.py: whole seconds in Retry-After (what the spec declares), sub-second ones in retry-after-ms,
        # which azure-core's pollers also honour.
        if self.poll_interval_s >= 1:
            return {"Retry-After": str(round(self.poll_interval_s))}
        return {"retry-after-ms": str(max(1, round(self.poll_interval_s * 1000)))}

    def import_result(self, op_id: str) -> Response:
        """What an import's ``Location`` answers: 202 while it copies, 204 when done, 500 when the copy failed."""
        op = self._imports.get(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
        if not op.done:
            return Response(202, None, self._poll_delay_headers())
        if op.fails:
            failed = ArmError(
                500,
                "InternalServerError",
                f"Copying model {op.name}:{op.version} into registry {self.name} failed; nothing was registered.",
            ).response()
            failed.headers.update(self._fault_retry_headers())
            return failed
        return Response(204)

    def _fault_retry_headers(self) -> dict[str, str]:
        # The dev kit's choice, as for fail_next in faults.py: a 500 it injects carries retry-after-ms, which azure-core
        # honours instead of its seconds-long back-off, so that a test of the path stays fast. models.share builds its
        # registry clients itself, without the caller's retry settings, so the test cannot shorten them.
        return {"retry-after-ms": str(max(1, round(self.poll_interval_s * 1000)))}


def _copy_of(source: SourceModel, name: str, version: str, *, created_at: float) -> RegistryModelVersion:
    """The registry's deep copy of a workspace model version: its content and its lineage, not its storage."""
    model = source.model
    extra = model.extra
    return RegistryModelVersion(
        name=name,
        version=version,
        model_type=model.model_type,
        tags=dict(model.tags),
        properties=dict(model.properties),
        description=model.description,
        stage=extra.get("stage"),
        job_name=extra.get("jobName"),
        flavors=copy.deepcopy(extra.get("flavors") or {}),
        created_at=created_at,
        modified_at=_now(),
        source=f"{source.workspace_id}/models/{model.name}/versions/{model.version}",
        state="Creating",
    )
