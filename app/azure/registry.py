"""The Azure ML registry adapter: share a workspace model version with its promotion evidence, read one, list new ones.

Three SDK surfaces, each where Azure puts the operation (``devkit/ARM_SEQUENCES.md``, "Registries"):

- ``models.share`` on the **workspace's** ``MLClient``: discovery, then an import on the registry's data plane that
  deep-copies the version and keeps its lineage (training job, tags, properties). It blocks until the copy ends and
  uses its own clients (azure-core's default retry, not this adapter's settings): call it off the event path;
- ``MLClient(registry_name=...)``: registry discovery, then reads on the registry's data plane (:meth:`get`);
- the management client on **ARM** for the registry (its subscription and resource group come from discovery): the
  provisioning state a share leaves, the tag update that records the evidence (tags, description and stage are all
  that may change on a version), and the ordered, bounded listing behind :meth:`list_promoted`.

Errors (defined with the registry port in ``app/ports.py``, so that the domain can tell them apart):
:class:`RegistryError` and its subclasses are permanent; :class:`RegistryBusy` (a copy still running) is retryable;
azure-core's exceptions pass through unchanged (429/5xx and network errors retried, 403 retried while roles
propagate, other 4xx permanent).

Its rooms: this module (the SDK calls and the errors), ``registry_versions.py`` (the frozen types it takes and
returns, re-exported here), ``registry_evidence.py`` (the evidence, as tags within Azure ML's limits) and
``registry_scan.py`` (the bounded listing).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.azure.registry_evidence import (
    EvidenceTooLarge,
    PromotionEvidence,
    content_differences,
    promotion_tags,
    read_evidence,
)
from app.azure.registry_scan import scan_promoted
from app.azure.registry_versions import (
    PromotedVersions,
    RegistryModelVersion,
    SharedVersion,
    WorkspaceModelRef,
    from_arm,
    from_asset,
)
from app.ports import (
    RegistryBusy,
    RegistryConflict,
    RegistryError,
    RegistryNotFound,
    RegistryVersionNotFound,
    SourceModelNotFound,
)

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

logger = logging.getLogger(__name__)

__all__ = [
    "ModelRegistry",
    "PromotedVersions",
    "PromotionEvidence",
    "RegistryBusy",
    "RegistryConflict",
    "RegistryError",
    "RegistryModelVersion",
    "RegistryNotFound",
    "RegistryVersionNotFound",
    "SharedVersion",
    "SourceModelNotFound",
    "WorkspaceModelRef",
]

ARM_ENDPOINT = "https://management.azure.com"
#: Pauses between reads of a version that is not readable yet (read-after-share lag): 4 reads over 7 s.
READ_DELAYS_S = (1.0, 2.0, 4.0)


def arm_endpoint() -> str:
    """The ARM endpoint azure-ai-ml itself would use (its own variable, read as the app's Azure ML adapter does)."""
    return os.environ.get("AZUREML_DEV_URL_MFE") or ARM_ENDPOINT


class ModelRegistry:
    """One Azure ML registry, as the staging app (share) and the production app (read, list) use it."""

    def __init__(
        self,
        credential: TokenCredential,
        registry_name: str,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        read_delays_s: Sequence[float] = READ_DELAYS_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = registry_name
        self._credential = credential
        self._client_kwargs = dict(client_kwargs or {})
        self._read_delays_s = tuple(read_delays_s)
        self._sleep = sleep
        self._registry_client: MLClient | None = None
        self._mgmt: MachineLearningServicesMgmtClient | None = None
        self._workspaces: dict[str, MLClient] = {}

    @property
    def registry_client(self) -> MLClient:
        """``MLClient(registry_name=...)``; its construction asks registry discovery (one request)."""
        if self._registry_client is None:
            # SDK on first use, not at import: azure.ai.ml costs about a second and 100 MiB.
            from azure.ai.ml import MLClient
            from azure.core.exceptions import ResourceNotFoundError

            try:
                self._registry_client = MLClient(self._credential, registry_name=self.name, **self._client_kwargs)
            except ResourceNotFoundError as err:
                raise RegistryNotFound(
                    f"registry {self.name} is unknown to registry discovery: check the registry's name"
                ) from err
        return self._registry_client

    @property
    def mgmt(self) -> MachineLearningServicesMgmtClient:
        """The management client in the registry's subscription (known after discovery)."""
        if self._mgmt is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

            self._mgmt = MachineLearningServicesMgmtClient(
                self._credential,
                self.registry_client.subscription_id,
                base_url=arm_endpoint(),
                **self._client_kwargs,
            )
        return self._mgmt

    @property
    def _resource_group(self) -> str:
        return str(self.registry_client.resource_group_name)

    def _workspace_client(self, source: WorkspaceModelRef) -> MLClient:
        key = source.workspace_id.lower()
        if key not in self._workspaces:
            # SDK on first use, not at import: azure.ai.ml costs about a second and 100 MiB.
            from azure.ai.ml import MLClient

            self._workspaces[key] = MLClient(
                self._credential,
                source.subscription_id,
                source.resource_group,
                source.workspace_name,
                **self._client_kwargs,
            )
        return self._workspaces[key]

    def share(
        self,
        source: WorkspaceModelRef,
        evidence: PromotionEvidence,
        *,
        carry_tags: Sequence[str] | None = None,
        stage: str | None = None,
    ) -> SharedVersion:
        """Share ``source`` into the registry under the same name and version, with ``evidence`` in its tags.

        Idempotent: a version already shared from ``source`` is not copied again, and evidence already recorded on
        it is kept. ``carry_tags`` names the model tags to keep (default: all of them). Raises
        :class:`RegistryConflict` when the name and version hold other content, :class:`SourceModelNotFound`,
        :class:`RegistryError` when the tags leave no room for the evidence, :class:`RegistryBusy` while a copy
        runs, or azure-core's errors.
        """
        model = self._source_model(source)
        try:
            tags = promotion_tags(dict(model.tags or {}), evidence, source.model_id, carry=carry_tags)
        except EvidenceTooLarge as err:
            raise RegistryError(f"{source.name}:{source.version} cannot carry its promotion evidence: {err}") from err
        existing: Any = self._arm_version(source.name, source.version)
        shared = existing is None
        if shared:
            self._share_once(source)
            existing = self._read_until_readable(source.name, source.version, self._arm_version)
        self._check_same_content(existing, model, source)
        state = getattr(existing.properties, "provisioning_state", None)
        if state not in (None, "Succeeded"):
            raise RegistryBusy(f"registry {self.name} is still copying {source.name}:{source.version} ({state})")
        if read_evidence(existing.properties.tags or {}) is None:
            existing = self._record(existing, tags, stage, source)
        logger.info("registry %s: %s:%s %s", self.name, source.name, source.version, "shared" if shared else "found")
        return SharedVersion(from_arm(self.name, existing), shared)

    def _check_same_content(self, existing: Any, model: Any, source: WorkspaceModelRef) -> None:
        props = existing.properties
        differences = content_differences(
            dict(props.tags or {}),
            {"model_type": props.model_type, "job_name": props.job_name, "properties": dict(props.properties or {})},
            {"model_type": model.type, "job_name": model.job_name, "properties": dict(model.properties or {})},
            source.model_id,
        )
        if differences:
            raise RegistryConflict(
                f"registry {self.name} already holds {source.name}:{source.version} with other content "
                f"({'; '.join(differences)}): promote under another version, or remove that version from the registry"
            )

    def _source_model(self, source: WorkspaceModelRef) -> Any:
        # azure-core on first use, as the rest of the app does: nothing of it is needed at import.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._workspace_client(source).models.get(source.name, source.version)
        except ResourceNotFoundError as err:
            raise SourceModelNotFound(
                f"model {source.name}:{source.version} does not exist in workspace {source.workspace_name}"
            ) from err

    def _share_once(self, source: WorkspaceModelRef) -> None:
        """One ``models.share``. Two endings are not failures: the version appeared meanwhile (another instance
        shared it: its content is checked next), or the copy ended but the SDK's closing read met the read lag."""
        # SDK on first use, not at import: azure.ai.ml costs about a second and 100 MiB.
        from azure.ai.ml.exceptions import ValidationException
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._workspace_client(source).models.share(
                source.name,
                source.version,
                registry_name=self.name,
                share_with_name=source.name,
                share_with_version=source.version,
            )
        except ValidationException:
            if self._arm_version(source.name, source.version) is None:
                raise  # a refusal of the SDK's own, not "already exists"
            logger.info("registry %s: %s:%s appeared meanwhile", self.name, source.name, source.version)
        except ResourceNotFoundError:
            logger.info("registry %s: %s:%s copied, not readable yet", self.name, source.name, source.version)

    def _record(self, existing: Any, tags: dict[str, str], stage: str | None, source: WorkspaceModelRef) -> Any:
        """Write the evidence tags (and the stage) on the version: a PUT of it with only those changed."""
        existing.properties.tags = tags
        if stage is not None:
            existing.properties.stage = stage
        poller = self.mgmt.registry_model_versions.begin_create_or_update(
            self._resource_group, self.name, source.name, source.version, existing
        )
        return poller.result()

    def list_promoted(
        self,
        since: datetime | None,
        *,
        max_models: int = 100,
        max_reads: int = 200,
        max_versions: int = 100,
    ) -> PromotedVersions:
        """Versions created at or after ``since`` (a cursor from the last call; None: all), oldest first, bounded.

        Reads at most ``max_reads`` pages of at most ``max_models`` models and returns at most ``max_versions``
        versions; versions still being copied are left for a later call (``app/azure/registry_scan.py``).
        """
        return scan_promoted(
            self.mgmt,
            self._resource_group,
            self.name,
            since,
            max_models=max_models,
            max_reads=max_reads,
            max_versions=max_versions,
        )

    def get(self, name: str, version: str) -> RegistryModelVersion:
        """The version, read again (bounded) while the registry answers 404 (read-after-share lag)."""
        return from_asset(self.name, self._read_until_readable(name, version, self._asset_version))

    def _asset_version(self, name: str, version: str) -> Any | None:
        # azure-core on first use, as the rest of the app does: nothing of it is needed at import.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.registry_client.models.get(name=name, version=version)
        except ResourceNotFoundError:
            return None

    def _arm_version(self, name: str, version: str) -> Any | None:
        # azure-core on first use, as the rest of the app does: nothing of it is needed at import.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.mgmt.registry_model_versions.get(self._resource_group, self.name, name, version)
        except ResourceNotFoundError:
            return None

    def _read_until_readable(self, name: str, version: str, read: Callable[[str, str], Any | None]) -> Any:
        waited = 0.0
        for delay in (*self._read_delays_s, None):
            found = read(name, version)
            if found is not None:
                return found
            if delay is None:
                break
            self._sleep(delay)
            waited += delay
        raise RegistryVersionNotFound(
            f"model {name}:{version} is not readable in registry {self.name} after {waited:g} s "
            "(not shared, or not replicated here yet)",
            waited,
        )
