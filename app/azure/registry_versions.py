"""The SDKs' answers about registry versions, converted to the promotion's own frozen types (which live with its
decisions, ``app/rollout/decide/registry_model.py``, and are re-exported here for the adapter's users)."""

from __future__ import annotations

from typing import Any

from app.azure.registry_evidence import read_evidence
from app.rollout.decide.registry_model import (
    PromotedVersions,
    RegistryModelVersion,
    SharedVersion,
    WorkspaceModelRef,
)

__all__ = ["PromotedVersions", "RegistryModelVersion", "SharedVersion", "WorkspaceModelRef", "from_arm", "from_asset"]


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
