"""What the registry adapter takes and returns: frozen types of its own, and the SDKs' answers converted to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.azure.registry_evidence import RecordedEvidence, read_evidence


@dataclass(frozen=True)
class WorkspaceModelRef:
    """A model version in a workspace."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    name: str
    version: str

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    @property
    def model_id(self) -> str:
        return f"{self.workspace_id}/models/{self.name}/versions/{self.version}"


@dataclass(frozen=True)
class RegistryModelVersion:
    """A model version in a registry, as the registry reports it."""

    registry: str
    name: str
    version: str
    model_type: str
    tags: Mapping[str, str]
    properties: Mapping[str, str]
    stage: str | None
    job_name: str | None
    created_at: datetime | None
    evidence: RecordedEvidence | None

    @property
    def asset_id(self) -> str:
        """What a deployment in any workspace names: ``azureml://registries/{r}/models/{n}/versions/{v}``."""
        return f"azureml://registries/{self.registry}/models/{self.name}/versions/{self.version}"


@dataclass(frozen=True)
class SharedVersion:
    """The registry version a share left; ``shared`` says whether this call copied it (False: it was there)."""

    version: RegistryModelVersion
    shared: bool


@dataclass(frozen=True)
class PromotedVersions:
    """Versions created at or after a cursor, oldest first, and the cursor to pass next time.

    ``complete`` is False when a bound stopped the scan; the cursor then stays where the scan is sure of.
    """

    versions: tuple[RegistryModelVersion, ...]
    cursor: datetime | None
    complete: bool


def from_arm(registry: str, found: Any) -> RegistryModelVersion:
    """A registry version as ARM answers it (azure-mgmt-machinelearningservices ``ModelVersion``)."""
    props = found.properties
    name = str(found.id).rstrip("/").split("/models/", 1)[1].split("/versions/", 1)[0]
    return RegistryModelVersion(
        registry=registry,
        name=name,
        version=str(found.name),
        model_type=str(props.model_type),
        tags=dict(props.tags or {}),
        properties=dict(props.properties or {}),
        stage=props.stage,
        job_name=props.job_name,
        created_at=getattr(found.system_data, "created_at", None),
        evidence=read_evidence(props.tags or {}),
    )


def from_asset(registry: str, found: Any) -> RegistryModelVersion:
    """A registry version as azure-ai-ml reads it from the registry's data plane (its ``Model`` entity)."""
    return RegistryModelVersion(
        registry=registry,
        name=str(found.name),
        version=str(found.version),
        model_type=str(found.type),
        tags=dict(found.tags or {}),
        properties=dict(found.properties or {}),
        stage=found.stage,
        job_name=found.job_name,
        created_at=getattr(getattr(found, "creation_context", None), "created_at", None),
        evidence=read_evidence(found.tags or {}),
    )
