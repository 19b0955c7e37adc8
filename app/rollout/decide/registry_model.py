"""What promotion through an Azure ML registry deals in (pure data): a workspace model version, a registry version, the
evidence a staging rollout carries to it, and what a share or a listing of the registry answers.

The registry adapter (``app/azure/registry.py``) takes and returns these; the promotion's decisions build and read
them. How the evidence is written as registry tags is the adapter's business (``app/azure/registry_evidence.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.platform.workspace import WorkspaceRef

#: The registry version's tags that record the promotion's evidence (``app/azure/registry_evidence.py``).
EVIDENCE_PREFIX = "promotion."


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


@dataclass(frozen=True)
class PromotionSource:
    """Where a production rollout's model was proven: the registry it is read from, and the staging rollout.

    ``source_workspace`` and ``staging_rollout`` are empty for a version promoted by hand (no evidence).
    """

    registry: str
    source_workspace: str = ""
    staging_rollout: str = ""  # ``{endpoint}/{deployment}`` in the staging app
    status_link: str = ""  # the staging rollout in the staging app's status API, when it recorded one
    digest: str = ""  # of the evidence, as the registry version records it
    promoted_at: str = ""  # ISO 8601, when the staging app promoted it
    gates: Mapping[str, str] = field(default_factory=dict)  # the staging gates' verdicts (and figures when recorded)
    smoke: str = ""  # the staging smoke test, as recorded

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PromotionSource:
        """Tolerant: unknown keys are ignored; a missing registry is a ``KeyError``."""
        gates = data.get("gates")
        return cls(
            registry=str(data["registry"]),
            gates={str(k): str(v) for k, v in gates.items()} if isinstance(gates, Mapping) else {},
            **{key: str(data.get(key) or "") for key in _SOURCE_TEXT},
        )


_SOURCE_TEXT = ("source_workspace", "staging_rollout", "status_link", "digest", "promoted_at", "smoke")


def promotion_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A rollout plan's promotion and approval fields as its JSON stores them (absent in rows written before them)."""
    tags = data.get("promote_tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(item, str) for item in tags)):
        raise ValueError(f"promote_tags={tags!r} is not a list of tag names")
    source = data.get("source")
    return {
        "promote": bool(data.get("promote", False)),
        "promote_tags": None if tags is None else tuple(tags),
        "approval_requested": bool(data.get("approval_requested", False)),
        "source": PromotionSource.from_mapping(source) if isinstance(source, Mapping) else None,
    }
