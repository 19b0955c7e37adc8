"""What promotion through an Azure ML registry deals in (pure data): a workspace model version, a registry version, the
evidence a staging rollout carries to it, and what a share or a listing of the registry answers.

The registry adapter (``app/azure/registry.py``) takes and returns these; the promotion's decisions build and read
them. How the evidence is written as registry tags is the adapter's business (``app/azure/registry_evidence.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from app.platform.workspace import WorkspaceRef


@dataclass(frozen=True)
class GateEvidence:
    """One gate's verdict and the figures it judged (e.g. ``{"p99_ms": 412.0, "error_rate": 0.2}``)."""

    name: str
    verdict: str
    figures: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmokeEvidence:
    """The smoke test's result before any traffic."""

    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class PromotionEvidence:
    """What the staging rollout proved, recorded on the registry version it promotes.

    ``rollout_id`` names the staging rollout as its app's operator and status APIs do (``{endpoint}/{deployment}``);
    ``status_link`` is that rollout in the staging app's status API, when the staging app knows its own host name.
    """

    source_workspace: str  # the staging workspace's ARM id
    rollout_id: str
    time: datetime
    gates: tuple[GateEvidence, ...] = ()
    smoke: SmokeEvidence | None = None
    status_link: str = ""


@dataclass(frozen=True)
class RecordedEvidence:
    """The evidence as a registry version's tags show it (gate figures only when they fitted)."""

    rollout_id: str
    source_workspace: str
    source_model: str
    time: datetime | None
    smoke: str
    gates: Mapping[str, str]
    digest: str
    status_link: str = ""


@dataclass(frozen=True)
class WorkspaceModelRef:
    """A model version in a workspace."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    name: str
    version: str

    @classmethod
    def of(cls, workspace: WorkspaceRef, name: str, version: str) -> WorkspaceModelRef:
        return cls(workspace.subscription_id, workspace.resource_group, workspace.workspace_name, name, version)

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    @property
    def model_id(self) -> str:
        return f"{self.workspace_id}/models/{self.name}/versions/{self.version}"


def registry_asset_id(registry: str, name: str, version: str) -> str:
    """What a deployment in any workspace names: ``azureml://registries/{r}/models/{n}/versions/{v}``."""
    return f"azureml://registries/{registry}/models/{name}/versions/{version}"


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
        return registry_asset_id(self.registry, self.name, self.version)


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
