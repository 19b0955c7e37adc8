"""Jobs and components: registration, a job's status advancing with time, cancel, and component input checks."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import PROVIDER, ArmError, ComponentVersion, Job, _iso, _parse_time

DEFAULT_JOB_DURATION_S = 0.5
#: The run property naming a step's parent pipeline run (read the same way by Azure ML's own components).
PIPELINE_RUN_PROPERTY = "azureml.pipelinerunid"
#: The step a pipeline job runs when neither the job nor its component lists steps.
DEFAULT_STEP = "train"
#: Output types that carry a URI (everything but literal outputs).
_URI_OUTPUT_TYPES = {"uri_file", "uri_folder", "mlflow_model", "custom_model", "triton_model", "mltable"}


def _io_spec(items: Mapping[str, str | Mapping[str, Any]] | Iterable[str], default_type: str) -> dict[str, Any]:
    """Component inputs/outputs as ``componentSpec`` spells them, from names or ``{name: type | spec}``."""
    if isinstance(items, Mapping):
        return {
            name: {"type": spec} if isinstance(spec, str) else {"type": default_type, **dict(spec)}
            for name, spec in items.items()
        }
    return {name: {"type": default_type} for name in items}


class JobsArea(AreaBase):
    """``/jobs`` (submit, read, cancel) and ``/components`` (read; versions are seeded)."""

    _components: dict[str, dict[str, ComponentVersion]]
    _component_sequence: int
    job_duration_s: float

    def set_job_duration(self, seconds: float) -> None:
        """How long new jobs stay Starting/Running before they end Completed (or Failed)."""
        with self._lock:
            self.job_duration_s = seconds

    def seed_component(
        self,
        name: str,
        version: str | int,
        inputs: Mapping[str, str | Mapping[str, Any]] | Iterable[str] = (),
        *,
        outputs: Mapping[str, str | Mapping[str, Any]] | Iterable[str] = ("model",),
        component_type: str = "pipeline",
        created_at: str | float | datetime | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ComponentVersion:
        """Register a component version directly (no request is logged).

        ``inputs`` declares its inputs: names (type ``string``) or ``{name: type}`` or ``{name: {"type", "optional",
        "default"}}``. An input that is neither optional nor defaulted is required by a job PUT.
        """
        spec: dict[str, Any] = {
            "$schema": f"https://azuremlschemas.azureedge.net/latest/{component_type}Component.schema.json",
            "name": name,
            "version": str(version),
            "display_name": name,
            "type": component_type,
            "inputs": _io_spec(inputs, "string"),
            "outputs": _io_spec(outputs, "mlflow_model"),
        }
        if component_type == "pipeline":
            spec["jobs"] = {}
        if description:
            spec["description"] = description
        with self._lock:
            self._component_sequence += 1
            component = ComponentVersion(
                name=name,
                version=str(version),
                spec=spec,
                created_at=self._clock.now() if created_at is None else _parse_time(created_at),
                sequence=self._component_sequence,
                description=description,
                tags=dict(tags or {}),
            )
            self._components.setdefault(name.lower(), {})[component.version] = component
        return component

    def wait_jobs(self, timeout_s: float = 30.0) -> None:
        """Let every job end (Completed, Failed or Canceled) at once, the emulated clock jumping to the last one's end;
        ``TimeoutError`` if that is more than ``timeout_s`` away."""
        self._wait_until_ended(
            lambda: [j.ends_at for j in self._jobs.values() if not j.canceled and j.ends_at > self._clock.now()],
            "jobs still running",
            timeout_s,
        )

    def job_state(self, name: str) -> dict[str, Any] | None:
        """The job's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            job = self._jobs.get(name.lower())
            return self._job_body(job) if job else None

    def _get_component_entity(self, name: str, version: str) -> ComponentVersion:
        component = self._components.get(name.lower(), {}).get(version)
        if component is None:
            raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
        return component

    def _component_versions(self, name: str) -> list[ComponentVersion]:
        return sorted(self._components.get(name.lower(), {}).values(), key=lambda c: (c.created_at, c.sequence))

    def _component_version_body(self, component: ComponentVersion) -> dict[str, Any]:
        return {
            "id": f"{self.workspace_id}/components/{component.name}/versions/{component.version}",
            "name": component.version,
            "type": f"{PROVIDER}/workspaces/components/versions",
            "properties": {
                "componentSpec": copy.deepcopy(component.spec),
                "description": component.description,
                "tags": dict(component.tags),
                "properties": {},
                "isAnonymous": False,
                "isArchived": False,
                "provisioningState": "Succeeded",
            },
            "systemData": {
                "createdAt": _iso(component.created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(component.created_at),
            },
        }

    def _component_container_body(self, name: str) -> dict[str, Any]:
        versions = self._component_versions(name)
        numeric = [int(c.version) for c in versions if c.version.isdigit()]
        return {
            "id": f"{self.workspace_id}/components/{versions[0].name}",
            "name": versions[0].name,
            "type": f"{PROVIDER}/workspaces/components",
            "properties": {
                "description": versions[-1].description,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "latestVersion": versions[-1].version,
                "nextVersion": str(max(numeric, default=0) + 1),
                "provisioningState": "Succeeded",
            },
            "systemData": {"createdAt": _iso(versions[0].created_at), "createdByType": "Application"},
        }

    def _list_component_containers(self, request: Request) -> Response:
        names = sorted(key for key, versions in self._components.items() if versions)
        return self._page(request, [self._component_container_body(name) for name in names])

    def _get_component_container(self, request: Request, name: str) -> Response:
        if not self._components.get(name.lower()):
            raise ArmError(404, "UserError", f"Could not find asset with name {name}.")
        return Response(200, self._component_container_body(name))

    def _list_component_versions(self, request: Request, name: str) -> Response:
        """Newest first by default; ``$orderBy=createdtime desc&$top=1`` is how azure-ai-ml resolves ``@latest``."""
        versions = self._component_versions(name)
        order = (request.query.get("$orderBy") or "createdtime desc").lower().split()
        if order and order[0] in {"createdtime", "createdat", "properties/createdtime"}:
            versions.sort(key=lambda c: (c.created_at, c.sequence), reverse=len(order) > 1 and order[1] == "desc")
        else:
            versions.sort(key=lambda c: (len(c.version), c.version), reverse=len(order) > 1 and order[1] == "desc")
        if top := request.query.get("$top"):
            versions = versions[: int(top)]
        return self._page(request, [self._component_version_body(c) for c in versions])

    def _get_component_version(self, request: Request, name: str, version: str) -> Response:
        return Response(200, self._component_version_body(self._get_component_entity(name, version)))

    def _check_job_component(self, props: Mapping[str, Any]) -> None:
        """A job of a workspace component: the component exists and the inputs are ones it declares."""
        component_id = str(props.get("componentId") or "")
        match = re.search(r"/workspaces/([^/]+)/components/([^/]+)/versions/([^/]+)$", component_id, re.IGNORECASE)
        if match is None:
            return  # inline jobs, registry components and anonymous components are not checked
        component = self._get_component_entity(match[2], match[3])
        declared: Mapping[str, Any] = component.spec.get("inputs") or {}
        given = set(props.get("inputs") or {})
        unknown = sorted(given - set(declared))
        if unknown:
            raise ArmError(
                400,
                "UserError",
                f"Input(s) {', '.join(unknown)} are not declared by component {component.name}:{component.version} "
                f"(it declares: {', '.join(sorted(declared)) or 'none'}).",
            )
        missing = sorted(
            name
            for name, spec in declared.items()
            if name not in given and not spec.get("optional") and spec.get("default") is None
        )
        if missing:
            raise ArmError(
                400,
                "UserError",
                f"Required input(s) {', '.join(missing)} of component {component.name}:{component.version} "
                "are not provided.",
            )

    def _job_status(self, job: Job) -> str:
        if job.canceled:
            return "Canceled"
        now = self._clock.now()
        elapsed = now - job.created_at
        if now >= job.ends_at:
            return job.outcome
        return "Running" if elapsed > 0.05 else "Starting"

    def _job_body(self, job: Job) -> dict[str, Any]:
        body = copy.deepcopy(job.body)
        body["properties"]["status"] = self._job_status(job)
        return body

    def _get_job_entity(self, name: str) -> Job:
        job = self._jobs.get(name.lower())
        if job is None:
            raise ArmError(404, "UserError", f"Could not find job '{name}'.")
        return job

    def _list_jobs(self, request: Request) -> Response:
        # Top-level jobs only: a pipeline's step runs are read by name (as the studio's job list shows them).
        jobs = sorted((j for j in self._jobs.values() if not j.parent), key=lambda j: j.created_at, reverse=True)
        return self._page(request, [self._job_body(j) for j in jobs])

    def _get_job(self, request: Request, name: str) -> Response:
        return Response(200, self._job_body(self._get_job_entity(name)))

    def _put_job(self, request: Request, name: str) -> Response:
        body = request.json() or {}
        props = dict(body.get("properties") or {})
        existing = self._jobs.get(name.lower())
        if existing is not None:
            # AML updates a job's mutable fields in place; the run itself is neither resubmitted nor restarted.
            current = existing.body["properties"]
            for mutable in ("tags", "description", "displayName", "properties"):
                if mutable in props:
                    current[mutable] = props[mutable]
            return Response(200, self._job_body(existing))
        self._check_job_component(props)
        created = self._clock.now()
        props.setdefault("jobType", "Command")
        props.setdefault("experimentName", "Default")
        props.setdefault("displayName", name)
        props.setdefault(
            "services", {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}", "jobServiceType": "Studio"}}
        )
        if props["jobType"] == "Command":
            # Server-filled and read-only on the SDK's CommandJob (``parameters``); AML's official command-job
            # answers carry it (2023-04-01 examples/Job/CommandJob/get.json in azure-rest-api-specs).
            props["parameters"] = {}
        job_body = {
            "id": f"{self.workspace_id}/jobs/{name}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/jobs",
            "properties": props,
            "systemData": {"createdAt": _iso(created), "createdBy": "devkit", "createdByType": "Application"},
        }
        outcome = "Failed" if name.lower() in self._failing_jobs else "Completed"
        job = Job(name, job_body, created, created + self.job_duration_s, outcome)
        self._jobs[name.lower()] = job
        if str(props.get("jobType", "")).lower() == "pipeline":
            self._start_pipeline(job)
        return Response(201, self._job_body(job))

    def _start_pipeline(self, job: Job) -> None:
        """A pipeline job's named outputs (with their default URIs) and one step run per step.

        A named output without a ``uri`` lands at ``azureml://datastores/workspaceblobstore/paths/azureml/{job}/
        {output}/`` (azure-ai-ml 1.35.2 ``JobOperations._get_named_output_uri`` falls back to exactly this
        location, ``operations/_job_operations.py``). Steps come from the job's ``jobs``, else its pipeline
        component's ``jobs``, else one ``train`` step. Each step run names its parent in the run property
        ``azureml.pipelinerunid`` and ends just before the pipeline; the outbox announces steps too, since Azure
        ML raises run events for child runs (the Event Grid docs' samples are AutoML child runs).
        """
        props = job.body["properties"]
        component = self._pipeline_component(props)
        outputs = dict(props.get("outputs") or {})
        if not outputs and component is not None:
            outputs = {
                output: {"jobOutputType": str(spec.get("type") or "uri_folder"), "mode": "ReadWriteMount"}
                for output, spec in (component.spec.get("outputs") or {}).items()
            }
        for output, spec in outputs.items():
            if isinstance(spec, dict) and str(spec.get("jobOutputType", "")).lower() in _URI_OUTPUT_TYPES:
                spec.setdefault("uri", f"azureml://datastores/workspaceblobstore/paths/azureml/{job.name}/{output}/")
        props["outputs"] = outputs
        steps = list(props.get("jobs") or (component.spec.get("jobs") if component else None) or [DEFAULT_STEP])
        for index, step in enumerate(steps):
            name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.name}/{step}"))
            body = {
                "id": f"{self.workspace_id}/jobs/{name}",
                "name": name,
                "type": f"{PROVIDER}/workspaces/jobs",
                "properties": {
                    "jobType": "Command",
                    "experimentName": props.get("experimentName"),
                    "displayName": str(step),
                    "tags": {},
                    "properties": {PIPELINE_RUN_PROPERTY: job.name},
                },
                "systemData": job.body["systemData"],
            }
            # Steps end in order, before their pipeline; a failing pipeline fails in its last step.
            ends_at = job.ends_at - 0.001 * (len(steps) - index)
            outcome = job.outcome if index == len(steps) - 1 else "Completed"
            self._jobs[name.lower()] = Job(name, body, job.created_at, ends_at, outcome, parent=job.name)

    def _pipeline_component(self, props: Mapping[str, Any]) -> ComponentVersion | None:
        match = re.search(r"/components/([^/]+)/versions/([^/]+)$", str(props.get("componentId") or ""), re.IGNORECASE)
        if match is None:
            return None
        return self._components.get(match[1].lower(), {}).get(match[2])

    def _cancel_job(self, request: Request, name: str) -> Response:
        job = self._get_job_entity(name)
        if self._clock.now() < job.ends_at:
            job.canceled = True
        return Response(202, None, {"Location": f"{self.url}{request.path}"})
