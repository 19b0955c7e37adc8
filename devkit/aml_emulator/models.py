"""Model containers and versions: registration (which publishes ModelRegistered), listing and lookup."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import PROVIDER, ArmError, ModelVersion, _iso, _parse_time

#: What AML reports for a model registered from an MLflow run (the SDK requires ``flavors`` to be a dict).
_DEFAULT_FLAVORS: dict[str, dict[str, Any]] = {
    "mlflow_model": {
        "python_function": {"data": {"loader_module": "mlflow.sklearn", "python_version": "3.11.7"}},
        "sklearn": {"data": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}},
    },
}


class ModelsArea(AreaBase):
    """The workspace's model registry: ``/models`` and ``/models/{name}/versions``."""

    _model_containers: dict[str, dict[str, Any]]
    _model_read_lag: tuple[float, str | None]
    resource_group: str

    def seed_model(
        self,
        name: str,
        version: str | int,
        model_type: str = "mlflow_model",
        tags: Mapping[str, str] | None = None,
        created_at: str | float | datetime | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        job_name: str | None = None,
    ) -> ModelVersion:
        """Register a model version directly (no request is logged); ``job_name`` is the job that trained it."""
        model = ModelVersion(
            name=name,
            version=str(version),
            model_type=model_type,
            tags=dict(tags or {}),
            properties=dict(properties or {}),
            description=description,
            created_at=self._clock.now() if created_at is None else _parse_time(created_at),
            extra={"jobName": job_name} if job_name else {},
        )
        with self._lock:
            self._store_model(model)
        return model

    def model_state(self, name: str, version: str | int) -> dict[str, Any] | None:
        """The model version's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            model = self._models.get(name.lower(), {}).get(str(version))
            return self._model_version_body(model) if model else None

    def set_model_tags(self, name: str, version: str | int, tags: Mapping[str, str]) -> None:
        """Replace a model version's tags (AML raises no event for this)."""
        with self._lock:
            self._get_model(name, str(version)).tags = dict(tags)

    def set_model_read_lag(self, seconds: float, name: str | None = None) -> None:
        """Model versions registered from now on (through ARM or :meth:`seed_model`) answer 404 to GET for ``seconds``.

        The read-after-write lag a reader can meet right after ``ModelRegistered``: the event can arrive before a GET
        of the new version finds it. ``name`` limits the lag to one model; ``seconds=0`` turns it off. Only GET of the
        version lags (listing and deployments referencing it do not).
        """
        with self._lock:
            self._model_read_lag = (float(seconds), name.lower() if name else None)

    def _store_model(self, model: ModelVersion) -> None:
        lag, only = self._model_read_lag
        is_new = model.version not in self._models.get(model.name.lower(), {})
        if lag > 0 and is_new and only in (None, model.name.lower()):
            model.readable_at = self._clock.now() + lag
        self._models.setdefault(model.name.lower(), {})[model.version] = model
        container = self._model_containers.setdefault(
            model.name.lower(), {"name": model.name, "tags": {}, "description": None, "createdAt": model.created_at}
        )
        container.setdefault("createdAt", model.created_at)

    def _get_model(self, name: str, version: str) -> ModelVersion:
        model = self._models.get(name.lower(), {}).get(version)
        if model is None:
            raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
        return model

    def _model_container_body(self, name: str) -> dict[str, Any]:
        container = self._model_containers[name.lower()]
        versions = list(self._models.get(name.lower(), {}).values())
        latest = max(versions, key=lambda m: m.created_at).version if versions else None
        numeric = [int(m.version) for m in versions if m.version.isdigit()]
        return {
            "id": f"{self.workspace_id}/models/{container['name']}",
            "name": container["name"],
            "type": f"{PROVIDER}/workspaces/models",
            "properties": {
                "description": container.get("description"),
                "tags": container.get("tags", {}),
                "properties": {},
                "isArchived": False,
                "latestVersion": latest,
                "nextVersion": str(max(numeric, default=0) + 1),
                "provisioningState": "Succeeded",
            },
            "systemData": {"createdAt": _iso(container["createdAt"]), "createdByType": "Application"},
        }

    def _model_version_body(self, model: ModelVersion) -> dict[str, Any]:
        uri = model.model_uri or (
            f"azureml://subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}/workspaces/"
            f"{self.workspace_name}/datastores/workspaceblobstore/paths/models/{model.name}/{model.version}/"
        )
        properties: dict[str, Any] = {
            "description": model.description,
            "tags": model.tags,
            "properties": model.properties,
            "isArchived": False,
            "isAnonymous": False,
            "modelType": model.model_type,
            "modelUri": uri,
            "flavors": _DEFAULT_FLAVORS.get(model.model_type, {}),
            "provisioningState": "Succeeded",
        }
        properties.update(model.extra)
        return {
            "id": f"{self.workspace_id}/models/{model.name}/versions/{model.version}",
            "name": model.version,
            "type": f"{PROVIDER}/workspaces/models/versions",
            "properties": properties,
            "systemData": {
                "createdAt": _iso(model.created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(model.created_at),
            },
        }

    def _list_model_containers(self, request: Request) -> Response:
        items = [self._model_container_body(key) for key in sorted(self._model_containers)]
        return self._page(request, items)

    def _get_model_container(self, request: Request, name: str) -> Response:
        if name.lower() not in self._model_containers:
            raise ArmError(404, "UserError", f"Could not find asset with name {name}.")
        return Response(200, self._model_container_body(name))

    def _put_model_container(self, request: Request, name: str) -> Response:
        body = request.json() or {}
        props = body.get("properties", {})
        created = name.lower() not in self._model_containers
        container = self._model_containers.setdefault(name.lower(), {"name": name, "createdAt": self._clock.now()})
        container["tags"] = props.get("tags") or {}
        container["description"] = props.get("description")
        return Response(201 if created else 200, self._model_container_body(name))

    def _list_model_versions(self, request: Request, name: str) -> Response:
        versions = list(self._models.get(name.lower(), {}).values())
        if tag_filter := request.query.get("tags"):
            for clause in tag_filter.split(","):
                key, _, value = clause.partition("=")
                versions = [m for m in versions if key in m.tags and (not value or m.tags[key] == value)]
        if version := request.query.get("version"):
            versions = [m for m in versions if m.version == version]
        order = (request.query.get("$orderBy") or "createdtime desc").lower().split()
        key_name = order[0] if order else "createdtime"
        descending = len(order) > 1 and order[1] == "desc"
        if key_name in {"createdtime", "createdat", "properties/createdtime"}:
            versions.sort(key=lambda m: m.created_at, reverse=descending)
        else:
            versions.sort(key=lambda m: (len(m.version), m.version), reverse=descending)
        if top := request.query.get("$top"):
            versions = versions[: int(top)]
        return self._page(request, [self._model_version_body(m) for m in versions])

    def _get_model_version(self, request: Request, name: str, version: str) -> Response:
        model = self._get_model(name, version)
        if self._clock.now() < model.readable_at:
            raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
        return Response(200, self._model_version_body(model))

    def _put_model_version(self, request: Request, name: str, version: str) -> Response:
        body = request.json() or {}
        props = dict(body.get("properties", {}))
        existing = self._models.get(name.lower(), {}).get(version)
        model = ModelVersion(
            name=existing.name if existing else name,
            version=version,
            model_type=props.pop("modelType", None) or (existing.model_type if existing else "custom_model"),
            tags=props.pop("tags", None) or {},
            properties=props.pop("properties", None) or {},
            description=props.pop("description", None),
            model_uri=props.pop("modelUri", None),
            created_at=existing.created_at if existing else self._clock.now(),
        )
        for server_owned in ("provisioningState", "isArchived", "isAnonymous"):
            props.pop(server_owned, None)
        model.extra = props
        self._store_model(model)
        if existing is None:
            self._emit(
                "ModelRegistered",
                f"models/{model.name}:{model.version}",
                {
                    "modelName": model.name,
                    "modelVersion": model.version,
                    "modelTags": dict(model.tags),
                    "modelProperties": dict(model.properties),
                },
                model.created_at,
            )
        return Response(200 if existing else 201, self._model_version_body(model))
