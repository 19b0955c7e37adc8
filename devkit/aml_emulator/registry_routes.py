"""A registry's answers: its model containers and versions on both planes, the data plane's import and its result."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devkit._server import Request, Response
from devkit.aml_emulator.models import _DEFAULT_FLAVORS
from devkit.aml_emulator.registries import RegistryModelVersion
from devkit.aml_emulator.state import PROVIDER, ArmError, _iso, _now

if TYPE_CHECKING:
    from devkit.aml_emulator.registries import EmulatedRegistry

_NAME = r"(?P<name>[^/]+)"
_VERSION = r"(?P<version>[^/]+)"
#: What each version update may change ("only description and tags can be updated", plus stage: see registries.py).
MUTABLE = ("description", "tags", "stage")
#: Body fields compared on an update (read-only and server-filled ones are not).
_IMMUTABLE = ("modelType", "jobName", "properties")
PAGE_SIZE = 100

Handler = Callable[..., Response]


def serve(registry: EmulatedRegistry, request: Request, rest: str, *, dataplane: bool) -> Response:
    """Serve ``rest`` (the path after ``/registries/{name}``) on the data plane or on ARM; 404 for what is not served.

    Under the registry's lock, after its imports due to end have ended.
    """
    with registry._lock:
        registry._advance()
        return _route(registry, request, rest.rstrip("/"), dataplane=dataplane)


def _route(registry: EmulatedRegistry, request: Request, rest: str, *, dataplane: bool) -> Response:
    for method, pattern, handler, plane in _ROUTES:
        if method != request.method or (plane is not None and plane != dataplane):
            continue
        match = re.fullmatch(pattern, rest, re.IGNORECASE)
        if match:
            return handler(registry, request, dataplane=dataplane, **match.groupdict())
    raise ArmError(404, "NotFound", f"Unsupported {request.method} {request.path}")


def _list_containers(registry: EmulatedRegistry, request: Request, *, dataplane: bool) -> Response:
    items = [container_body(registry, key, dataplane=dataplane) for key in sorted(registry._containers)]
    return _page(registry, request, items)


def _get_container(registry: EmulatedRegistry, request: Request, *, dataplane: bool, name: str) -> Response:
    if name.lower() not in registry._containers:
        raise ArmError(404, "UserError", f"Could not find asset with name {name} in registry {registry.name}.")
    return Response(200, container_body(registry, name.lower(), dataplane=dataplane))


def _list_versions(registry: EmulatedRegistry, request: Request, *, dataplane: bool, name: str) -> Response:
    """The versions, filtered and ordered as the 2023-04-01 list operation's query parameters say."""
    query = request.query
    versions = list(registry._models.get(name.lower(), {}).values())
    if wanted := query.get("version"):
        versions = [m for m in versions if m.version == wanted]
    for key, attribute in (("tags", "tags"), ("properties", "properties")):
        if clauses := query.get(key):
            versions = [m for m in versions if _matches(getattr(m, attribute), clauses)]
    order = (query.get("$orderBy") or "createdtime desc").lower().split()
    descending = len(order) > 1 and order[1] == "desc"
    if order and order[0] in {"createdtime", "createdat", "properties/createdtime"}:
        versions.sort(key=lambda m: m.created_at, reverse=descending)
    else:
        versions.sort(key=lambda m: (len(m.version), m.version), reverse=descending)
    versions = versions[int(query.get("$skip") or 0) :]
    top = int(query["$top"]) if query.get("$top") else None
    items = [version_body(registry, m, dataplane=dataplane) for m in versions]
    return _page(registry, request, items, top)


def _matches(values: Mapping[str, str], clauses: str) -> bool:
    """The list filter: comma-separated names, each optionally ``=value`` (2023-04-01 ``tags``/``properties``)."""
    for clause in clauses.split(","):
        key, has_value, value = clause.partition("=")
        if key not in values or (has_value and values[key] != value):
            return False
    return True


def _get_version(registry: EmulatedRegistry, request: Request, *, dataplane: bool, name: str, version: str) -> Response:
    model = registry._models.get(name.lower(), {}).get(version)
    if model is None or _lagging(model):
        raise ArmError(404, "UserError", f"Could not find asset with name {name} and version {version}.")
    return Response(200, version_body(registry, model, dataplane=dataplane))


def _lagging(model: RegistryModelVersion) -> bool:
    """A GET within the version's read lag: counts one hidden read."""
    if model.hidden_reads > 0:
        model.hidden_reads -= 1
        return True
    return _now() < model.readable_at


def _put_version(registry: EmulatedRegistry, request: Request, *, dataplane: bool, name: str, version: str) -> Response:
    """Create a version (``modelUri`` given: no upload is emulated) or update what may change on one."""
    body = request.json() or {}
    props = body.get("properties")
    if not isinstance(props, Mapping):
        raise ArmError(400, "UserError", "The Properties field is required.")
    existing = registry._models.get(name.lower(), {}).get(version)
    if existing is None:
        if not props.get("modelUri"):
            raise ArmError(
                400,
                "UserError",
                "properties.modelUri is required: the devkit registry does not take uploads; share a workspace "
                "model (POST .../import) or name an existing asset.",
            )
        model = RegistryModelVersion(
            name, version, str(props.get("modelType") or "custom_model"), dict(props.get("tags") or {}),
            dict(props.get("properties") or {}), props.get("description"), props.get("stage"),
            props.get("jobName"), copy.deepcopy(props.get("flavors") or {}),
        )  # fmt: skip
        registry._store(model, lag=True)
        return Response(201, version_body(registry, model, dataplane=dataplane))
    current = version_body(registry, existing, dataplane=dataplane)["properties"]
    changed = [key for key in _IMMUTABLE if key in props and (props.get(key) or None) != (current.get(key) or None)]
    if changed:
        raise ArmError(
            400,
            "UserError",
            f"Model {name}:{version} in registry {registry.name} cannot change {', '.join(changed)}: only "
            f"{', '.join(MUTABLE)} can be updated. Register a new version instead.",
        )
    existing.tags = dict(props.get("tags") or {})
    existing.description = props.get("description")
    existing.stage = props.get("stage", existing.stage)
    existing.modified_at = _now()
    return Response(200, version_body(registry, existing, dataplane=dataplane))


def _delete_version(
    registry: EmulatedRegistry, request: Request, *, dataplane: bool, name: str, version: str
) -> Response:
    """Delete a version: 200, or 204 when there is none (2023-04-01 ``RegistryModelVersions_Delete`` answers 200, 202
    or 204: azure-rest-api-specs, .../stable/2023-04-01/registries.json). The emulator deletes at once, no 202."""
    if registry._models.get(name.lower(), {}).get(version) is None:
        return Response(204)
    registry._remove(name, version)
    return Response(200)


def _import(registry: EmulatedRegistry, request: Request, *, dataplane: bool) -> Response:
    return registry.start_import(request.json() or {}, request.query.get("api-version", ""))


def _import_result(registry: EmulatedRegistry, request: Request, *, dataplane: bool, op: str) -> Response:
    return registry.import_result(op)


def version_body(registry: EmulatedRegistry, model: RegistryModelVersion, *, dataplane: bool) -> dict[str, Any]:
    """A model version as the registry answers it (``ModelVersion``; the data plane's id is the asset id)."""
    asset_id = f"azureml://registries/{registry.name}/models/{model.name}/versions/{model.version}"
    return {
        "id": asset_id if dataplane else f"{registry.arm_id}/models/{model.name}/versions/{model.version}",
        "name": model.version,
        "type": f"{PROVIDER}/registries/models/versions",
        "properties": {
            "description": model.description,
            "tags": dict(model.tags),
            "properties": dict(model.properties),
            "isArchived": False,
            "isAnonymous": False,
            "modelType": model.model_type,
            "modelUri": asset_id,
            "flavors": copy.deepcopy(model.flavors or _DEFAULT_FLAVORS.get(model.model_type, {})),
            "jobName": model.job_name,
            "stage": model.stage,
            "provisioningState": model.state,
        },
        "systemData": {
            "createdAt": _iso(model.created_at),
            "createdBy": "devkit",
            "createdByType": "Application",
            "lastModifiedAt": _iso(model.modified_at),
        },
    }


def container_body(registry: EmulatedRegistry, key: str, *, dataplane: bool) -> dict[str, Any]:
    """A model container (``ModelContainer``), with its latest and next version."""
    name, created_at = registry._containers[key]
    versions = list(registry._models.get(key, {}).values())
    latest = max(versions, key=lambda m: m.created_at).version if versions else None
    numeric = [int(m.version) for m in versions if m.version.isdigit()]
    path = f"models/{name}"
    return {
        "id": f"azureml://registries/{registry.name}/{path}" if dataplane else f"{registry.arm_id}/{path}",
        "name": name,
        "type": f"{PROVIDER}/registries/models",
        "properties": {
            "description": None,
            "tags": {},
            "properties": {},
            "isArchived": False,
            "latestVersion": latest,
            "nextVersion": str(max(numeric, default=0) + 1),
            "provisioningState": "Succeeded",
        },
        "systemData": {"createdAt": _iso(created_at), "createdByType": "Application"},
    }


def _page(
    registry: EmulatedRegistry, request: Request, items: list[dict[str, Any]], top: int | None = None
) -> Response:
    """One page of ``items`` (``$top`` caps the whole list), with a ``nextLink`` when more follow."""
    skip = int(request.query.get("$skipToken") or 0)
    limit = len(items) if top is None else min(top, len(items))
    page = items[skip : min(skip + PAGE_SIZE, limit)]
    body: dict[str, Any] = {"value": page}
    if skip + PAGE_SIZE < limit:
        query = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "$skipToken")
        body["nextLink"] = f"{registry.url}{request.path}?{query}&$skipToken={skip + PAGE_SIZE}"
    return Response(200, body)


#: (method, path after /registries/{name}, handler, plane: True = data plane only, False = ARM only, None = both)
_ROUTES: tuple[tuple[str, str, Handler, bool | None], ...] = (
    ("GET", "/models", _list_containers, None),
    ("GET", f"/models/{_NAME}", _get_container, None),
    ("GET", f"/models/{_NAME}/versions", _list_versions, None),
    ("GET", f"/models/{_NAME}/versions/{_VERSION}", _get_version, None),
    ("PUT", f"/models/{_NAME}/versions/{_VERSION}", _put_version, None),
    ("DELETE", f"/models/{_NAME}/versions/{_VERSION}", _delete_version, False),
    ("POST", "/import", _import, True),
    ("GET", "/operationResults/(?P<op>[^/]+)", _import_result, True),
)
