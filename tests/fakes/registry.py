"""An Azure ML registry (the ``Registry`` port) in memory, with the rules the real adapter keeps and its faults.

Shares copy a workspace model version (read from the fake workspace that holds it) under the same name and version,
write the evidence once as the real adapter does (``app/azure/registry_evidence.py``: the same tags, within the
same limits), and are idempotent; other content under the same name and version is a permanent conflict. Faults:
the next shares fail (retryably, as a copy cut short, or permanently), and reads lag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from app.azure.registry_evidence import promotion_tags, read_evidence
from app.platform.errors import RetryableError
from app.ports import RegistryConflict, RegistryVersionNotFound, SourceModelNotFound
from app.rollout.decide.model import ModelInfo
from app.rollout.decide.registry_model import (
    PromotedVersions,
    PromotionEvidence,
    RegistryModelVersion,
    SharedVersion,
    WorkspaceModelRef,
)

#: Finds the workspace model a share copies (None: there is none).
SourceModels = Callable[[WorkspaceModelRef], ModelInfo | None]


@dataclass
class Stored:
    """One version as the registry holds it."""

    name: str
    version: str
    model_type: str
    tags: dict[str, str]
    created_at: dt.datetime
    source: str = ""  # the workspace model id it was copied from ("" made in the registry)


@dataclass
class FakeRegistry:
    """One registry; ``Deps.registry`` (``fake(name)`` returns it when the name is its own)."""

    name: str
    clock: Callable[[], dt.datetime]
    sources: SourceModels = lambda _: None
    versions: dict[tuple[str, str], Stored] = field(default_factory=dict)
    #: Every call: (operation, name, version).
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    #: How the next shares fail, in order: "retryable" (a copy cut short, nothing left) or "permanent".
    failing: list[str] = field(default_factory=list)
    #: Reads of a version answer "not found" this many more times (read lag).
    lagging_reads: int = 0

    def __call__(self, name: str) -> FakeRegistry:
        if name.lower() != self.name.lower():
            raise AssertionError(f"registry {name} is not this fake's ({self.name})")
        return self

    def share(
        self,
        source: WorkspaceModelRef,
        evidence: PromotionEvidence,
        *,
        carry_tags: Sequence[str] | None = None,
        stage: str | None = None,
    ) -> SharedVersion:
        self.calls.append(("share", source.name, source.version))
        model = self.sources(source)
        if model is None:
            raise SourceModelNotFound(f"model {source.name}:{source.version} does not exist in {source.workspace_name}")
        if self.failing:
            how = self.failing.pop(0)
            if how == "permanent":
                raise RegistryConflict(f"registry {self.name} refused {source.name}:{source.version} (injected)")
            raise RetryableError(f"copying {source.name}:{source.version} into {self.name} failed (injected)")
        key = (source.name.lower(), source.version)
        existing = self.versions.get(key)
        if existing is not None and existing.source.lower() != source.model_id.lower():
            raise RegistryConflict(f"registry {self.name} already holds {source.name}:{source.version} from elsewhere")
        if existing is None:
            tags = promotion_tags(dict(model.tags), evidence, source.model_id, carry=carry_tags)
            existing = Stored(source.name, source.version, model.type, tags, self.clock(), source.model_id)
            self.versions[key] = existing
            return SharedVersion(self._version(existing), True)
        return SharedVersion(self._version(existing), False)

    def get(self, name: str, version: str) -> RegistryModelVersion:
        self.calls.append(("get", name, version))
        found = self.versions.get((name.lower(), str(version)))
        if found is None or self.lagging_reads > 0:
            self.lagging_reads = max(0, self.lagging_reads - 1)
            raise RegistryVersionNotFound(f"model {name}:{version} is not readable in registry {self.name}", 7.0)
        return self._version(found)

    def list_promoted(
        self, since: dt.datetime | None, *, max_models: int = 100, max_reads: int = 200, max_versions: int = 100
    ) -> PromotedVersions:
        self.calls.append(("list", "", since.isoformat() if since else ""))
        newer = sorted(
            (v for v in self.versions.values() if since is None or v.created_at >= since), key=lambda v: v.created_at
        )
        kept = newer[:max_versions]
        cursor = kept[-1].created_at if kept else since
        return PromotedVersions(tuple(self._version(v) for v in kept), cursor, len(kept) == len(newer))

    def seed(
        self,
        name: str,
        version: str | int,
        tags: Mapping[str, str],
        *,
        model_type: str = "mlflow_model",
        evidence: PromotionEvidence | None = None,
        source: str = "",
    ) -> RegistryModelVersion:
        """A version made in the registry itself, or promoted elsewhere (``evidence`` written as its tags)."""
        written = dict(tags)
        if evidence is not None:
            written = promotion_tags(
                written, evidence, source or f"{evidence.source_workspace}/models/{name}/versions/1"
            )
        stored = Stored(name, str(version), model_type, written, self.clock(), source)
        self.versions[(name.lower(), str(version))] = stored
        return self._version(stored)

    def _version(self, stored: Stored) -> RegistryModelVersion:
        return RegistryModelVersion(
            registry=self.name,
            name=stored.name,
            version=stored.version,
            model_type=stored.model_type,
            tags=dict(stored.tags),
            properties={},
            stage=None,
            job_name=None,
            created_at=stored.created_at,
            evidence=read_evidence(stored.tags),
        )
