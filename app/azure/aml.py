"""The app's only door to Azure ML: a small adapter over azure-ai-ml and the AML management client.

Why two clients. azure-ai-ml (v2) reads models and submits jobs. Its ``begin_*`` methods for online
endpoints and deployments always attach an ``AzureMLPolling`` poller, and azure-core's ``LROPoller``
starts a daemon thread that keeps polling until the operation ends (5-15 minutes for a deployment),
long after the function returned, and there is no supported way to stop it. The AML management
client (azure-mgmt-machinelearningservices, api-version 2023-04-01) exposes the same ARM operations
and accepts azure-core's documented ``polling=False``: the poller is then ``NoPolling``, which is
finished on arrival, so no thread starts. The rollout only needs the initial request; the next
observation (a GET) tells whether it worked. Both clients talk to the same ARM endpoint: the one
azure-ai-ml uses (``AZUREML_DEV_URL_MFE`` when set, which the dev kit uses), else Azure's.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.azure.throttle import throttle_policy
from app.platform import budgets
from app.platform.workspace import WorkspaceRef
from app.ports import JobDetail, ModelNotFound
from app.retraining.jobs import ComponentInfo, ComponentRef, JobInfo, PipelineJobRequest, RetrainingTargetInvalid
from app.retraining.registration import SOURCE_RUN_TAG, JobOutput, RegisterModel
from app.rollout.decide.model import (
    APP_TAG,
    APP_TAG_VALUE,
    DeploymentView,
    EndpointView,
    ModelInfo,
    RolloutPlan,
    covers_split,
)
from app.rollout.decide.naming import EndpointNameTaken

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

logger = logging.getLogger(__name__)

ARM_ENDPOINT = "https://management.azure.com"
LOG_LINES = 50


def arm_endpoint() -> str:
    """The ARM endpoint azure-ai-ml itself would use."""
    # Not a Settings field on purpose: azure-ai-ml reads this variable from the process environment itself,
    # and the management client must follow the very same value (a second copy could disagree with it).
    return os.environ.get("AZUREML_DEV_URL_MFE") or ARM_ENDPOINT


class AmlGateway:
    """Azure ML operations for one workspace. Clients are built on first use."""

    def __init__(
        self, workspace: WorkspaceRef, credential: TokenCredential, budget: budgets.CallBudget | None = None
    ) -> None:
        self.workspace = workspace
        self._credential = credential
        self.budget = budget or budgets.arm()
        self._ml: MLClient | None = None
        self._mgmt: MachineLearningServicesMgmtClient | None = None
        self._location: str | None = None
        self._raw_endpoints: dict[str, Any] = {}

    @property
    def ml(self) -> MLClient:
        if self._ml is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.ai.ml import MLClient

            self._ml = MLClient(
                self._credential,
                self.workspace.subscription_id,
                self.workspace.resource_group,
                self.workspace.workspace_name,
                retry_policy=budgets.bounded_retry_policy(self.budget),
                per_retry_policies=[throttle_policy()],  # ARM's 429s pause the whole process (throttle.py)
                **self.budget.client_kwargs(),
            )
        return self._ml

    @property
    def mgmt(self) -> MachineLearningServicesMgmtClient:
        if self._mgmt is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

            self._mgmt = MachineLearningServicesMgmtClient(
                self._credential,
                self.workspace.subscription_id,
                base_url=arm_endpoint(),
                retry_policy=budgets.bounded_retry_policy(self.budget),
                per_retry_policies=[throttle_policy()],
                **self.budget.client_kwargs(),
            )
        return self._mgmt

    @property
    def _scope(self) -> tuple[str, str]:
        return self.workspace.resource_group, self.workspace.workspace_name

    def get_model(self, name: str, version: str) -> ModelInfo:
        """The model version as registered: authoritative tags and type."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            model = self.ml.models.get(name=name, version=version)
        except ResourceNotFoundError as err:
            raise ModelNotFound(f"model {name}:{version} does not exist in {self.workspace.workspace_name}") from err
        created = getattr(getattr(model, "creation_context", None), "created_at", None)
        return ModelInfo(
            name=name,
            version=str(model.version or version),
            type=str(model.type or ""),
            tags={str(k): str(v) for k, v in (model.tags or {}).items()},
            created_at=created if isinstance(created, dt.datetime) else None,
        )

    def location(self) -> str:
        if self._location is None:
            self._location = str(self.mgmt.workspaces.get(*self._scope).location)
        return self._location

    def observe(self, endpoint: str, known: Sequence[DeploymentView] | None = None) -> EndpointView | None:
        """The endpoint with its deployments, or None if it does not exist: the endpoint's GET, then its
        deployments' list unless ``known`` covers the split (see the port)."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            raw = self.mgmt.online_endpoints.get(*self._scope, endpoint)
        except ResourceNotFoundError:
            self._raw_endpoints.pop(endpoint, None)
            return None
        self._raw_endpoints[endpoint] = raw
        props = raw.properties
        traffic = {str(k): int(v) for k, v in (props.traffic or {}).items()}
        mirror = {str(k): int(v) for k, v in (props.mirror_traffic or {}).items()}
        if known is not None and covers_split(known, traffic, mirror):
            deployments = tuple(known)
        else:
            deployments = tuple(
                DeploymentView(
                    name=str(item.name),
                    provisioning_state=str(item.properties.provisioning_state or ""),
                    tags=dict(item.tags or {}),
                    model=str(getattr(item.properties, "model", "") or ""),
                )
                for item in self.mgmt.online_deployments.list(*self._scope, endpoint)
            )
        return EndpointView(
            name=str(raw.name),
            provisioning_state=str(props.provisioning_state or ""),
            traffic=traffic,
            mirror_traffic=mirror,
            deployments=deployments,
            tags=dict(raw.tags or {}),
        )

    def create_endpoint(self, name: str) -> None:
        """PUT a key-auth managed online endpoint; the poller is not kept (see module docstring)."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.mgmt.machinelearningservices import models

        body = models.OnlineEndpoint(
            location=self.location(),
            identity=models.ManagedServiceIdentity(type="SystemAssigned"),
            kind="Managed",
            properties=models.OnlineEndpointProperties(auth_mode="Key"),
            tags={APP_TAG: APP_TAG_VALUE},
        )
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import HttpResponseError

        try:
            self.mgmt.online_endpoints.begin_create_or_update(*self._scope, name, body, polling=False)
        except HttpResponseError as err:
            if err.status_code == 400 and EndpointNameTaken.MARKER in str(err):
                raise EndpointNameTaken(name) from err
            raise

    def create_deployment(self, plan: RolloutPlan, now: dt.datetime) -> None:
        """PUT a no-code managed deployment of ``plan``'s model; no poller is kept."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.mgmt.machinelearningservices import models

        # A registry's version is referenced by its asset id, not copied into the workspace.
        model_id = (
            plan.model_ref
            if plan.source is not None
            else f"{self.workspace.arm_id}/models/{plan.model_name}/versions/{plan.model_version}"
        )
        body = models.OnlineDeployment(
            location=self.location(),
            kind="Managed",
            sku=models.Sku(name="Default", capacity=plan.instance_count),
            properties=models.ManagedOnlineDeployment(
                model=model_id,
                instance_type=plan.instance_type,
                scale_settings=models.DefaultScaleSettings(),
            ),
            tags={
                APP_TAG: APP_TAG_VALUE,
                "model-name": plan.model_name,
                "model-version": plan.model_version,
                "model-created-at": plan.model_created_at,
                "created-at": now.isoformat(),
            },
        )
        self.mgmt.online_deployments.begin_create_or_update(
            *self._scope, plan.endpoint, plan.deployment, body, polling=False
        )

    def set_traffic(self, endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> None:
        """PUT the endpoint back with new live and mirror traffic (ARM's read-modify-write)."""
        raw = self._raw_endpoints.get(endpoint) or self.mgmt.online_endpoints.get(*self._scope, endpoint)
        raw.properties.traffic = dict(traffic)
        raw.properties.mirror_traffic = dict(mirror)
        self.mgmt.online_endpoints.begin_create_or_update(*self._scope, endpoint, raw, polling=False)

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        self.mgmt.online_deployments.begin_delete(*self._scope, endpoint, deployment, polling=False)

    def get_logs(self, endpoint: str, deployment: str, lines: int = LOG_LINES) -> str:
        """The last ``lines`` lines of the inference server's container log (best effort)."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.mgmt.machinelearningservices import models

        request = models.DeploymentLogsRequest(container_type="InferenceServer", tail=lines)
        logs = self.mgmt.online_deployments.get_logs(*self._scope, endpoint, deployment, request)
        return str(logs.content or "")

    def get_component(self, ref: ComponentRef) -> ComponentInfo:
        """The registered pipeline component ``ref`` names (``@latest`` resolved the way azure-ai-ml does)."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            if ref.label:
                component = self.ml.components.get(ref.name, label=ref.label)
            else:
                component = self.ml.components.get(ref.name, version=ref.version)
        except ResourceNotFoundError as err:
            raise RetrainingTargetInvalid(
                f"RETRAIN_PIPELINE_COMPONENT={ref}: no such component in workspace {self.workspace.workspace_name}"
            ) from err
        kind = str(getattr(component, "type", "") or "")
        if kind != "pipeline":
            raise RetrainingTargetInvalid(
                f"RETRAIN_PIPELINE_COMPONENT={ref}: {component.name}:{component.version} is a {kind or 'untyped'} "
                "component; a pipeline component is required"
            )
        return ComponentInfo(
            name=str(component.name),
            version=str(component.version),
            id=str(component.id),
            type=kind,
            inputs=tuple(str(name) for name in (component.inputs or {})),
        )

    def get_job(self, name: str) -> JobInfo | None:
        """The job called ``name``, or None if there is none."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            job = self.ml.jobs.get(name)
        except ResourceNotFoundError:
            return None
        return self._job_info(job, name)

    def submit_pipeline_job(self, request: PipelineJobRequest) -> JobInfo:
        """Submit a registered pipeline component as a pipeline job (one PUT); nothing waits for it to run."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.ai.ml.entities import PipelineJob, PipelineJobSettings

        job = PipelineJob(
            component=request.component_id,
            inputs=dict(request.inputs),
            name=request.name,
            display_name=request.display_name,
            description=request.description,
            experiment_name=request.experiment,
            tags=dict(request.tags),
            settings=PipelineJobSettings(default_compute=request.compute) if request.compute else None,
        )
        return self._job_info(self.ml.jobs.create_or_update(job), request.name)

    def find_model_version_from_run(self, name: str, run_id: str) -> str | None:
        """The version of model ``name`` registered from run ``run_id`` (tag ``source_run_id``), if any."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            versions = list(self.mgmt.model_versions.list(*self._scope, name, tags=f"{SOURCE_RUN_TAG}={run_id}"))
        except ResourceNotFoundError:
            return None
        # The service's tag filter is the fast path; the exact comparison is the rule.
        found = [v for v in versions if (v.properties.tags or {}).get(SOURCE_RUN_TAG) == run_id]
        return str(found[0].name) if found else None

    def register_model_from_run(self, request: RegisterModel) -> str:
        """Register the run's output as the next version of the model; returns the version AML assigned."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.ai.ml.entities import Model

        model = self.ml.models.create_or_update(
            Model(
                name=request.name,
                path=request.path,
                type=request.model_type,
                tags=dict(request.tags),
                description=request.description,
            )
        )
        return str(model.version)

    def read_job(self, name: str) -> JobDetail | None:
        """The job (or a pipeline's step run) by name through ARM, or None if there is none. One ARM read.

        Read with the management client: it reads any job type's status and outputs the same way, without
        building azure-ai-ml's per-type entities (a step run has no command or environment of its own).
        """
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            job = self.mgmt.jobs.get(*self._scope, name)
        except ResourceNotFoundError:
            return None
        props = job.properties
        outputs = {
            str(key): JobOutput(
                name=str(key),
                type=str(getattr(item, "job_output_type", "") or ""),
                uri=str(getattr(item, "uri", "") or ""),
            )
            for key, item in (getattr(props, "outputs", None) or {}).items()
            if item is not None
        }
        status = getattr(props, "status", None)
        return JobDetail(
            name=str(job.name or name),
            status=str(getattr(status, "value", status) or ""),
            job_type=str(getattr(props, "job_type", "") or ""),
            outputs=outputs,
        )

    def model_names(self) -> Iterator[str]:
        """Every model container's name, page by page (the container list has no tag filter)."""
        for container in self.mgmt.model_containers.list(*self._scope, list_view_type="ActiveOnly"):
            yield str(container.name)

    def canonical_id(self) -> str:
        """The workspace's ARM id as ARM spells it (the casing Event Grid's topic carries). One ARM read."""
        workspace = self.mgmt.workspaces.get(*self._scope)
        self._location = str(workspace.location)
        return str(workspace.id)

    def newest_opted_in(self, name: str, tag: str) -> ModelInfo | None:
        """The newest active version of model ``name`` tagged ``tag`` (``key=value``), filtered by the service.

        One ARM read. ``tags`` is the service-side filter of the model versions list (2023-04-01: a comma-separated
        list of tag names, each optionally ``=value``), asked for newest first and one item.
        """
        listed = self.mgmt.model_versions.list(
            *self._scope, name, tags=tag, order_by="createdtime desc", top=1, list_view_type="ActiveOnly"
        )
        # Only the first page: with $top=1 there is nothing to follow (an ItemPaged would fetch nextLink).
        for item in next(listed.by_page(), []):  # type: ignore[attr-defined]
            props = item.properties
            created = getattr(getattr(item, "system_data", None), "created_at", None)
            return ModelInfo(
                name=name,
                version=str(item.name),
                type=str(props.model_type or ""),
                tags={str(k): str(v) for k, v in (props.tags or {}).items()},
                created_at=created if isinstance(created, dt.datetime) else None,
            )
        return None

    @staticmethod
    def _job_info(job: Any, name: str) -> JobInfo:
        status = getattr(job, "status", None)
        return JobInfo(
            name=str(getattr(job, "name", None) or name),
            status=str(getattr(status, "value", status) or ""),
            experiment=str(getattr(job, "experiment_name", None) or ""),
            tags={str(k): str(v) for k, v in (getattr(job, "tags", None) or {}).items()},
        )
