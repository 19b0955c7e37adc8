"""Offline checks of JSON bodies against Azure ML's REST contract, read from the pinned management SDK's models."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from types import ModuleType
from typing import Any, Literal
from urllib.parse import urlsplit

Mode = Literal["request", "response"]
Severity = Literal["error", "warning"]
Schema = dict[str, Any]

#: The contract's source: azure-mgmt-machinelearningservices 2.0.0b2, which AutoRest generated from the stable
#: 2023-04-01 Microsoft.MachineLearningServices spec (its client's default ``api_version``; see docs/development.md).
SDK_PACKAGE = "azure-mgmt-machinelearningservices"
SDK_VERSION = "2.0.0b2"
API_VERSION = "2023-04-01"

#: Enums the spec declares closed (``x-ms-enum.modelAsString: false``). The SDK cannot tell: AutoRest gives every
#: enum ``CaseInsensitiveEnumMeta`` and types every enum property ``str or <Enum>``. The only closed enum reachable
#: from the operations below is common-types v3's ``SkuTier`` (azure-rest-api-specs,
#: specification/common-types/resource-management/v3/types.json, definitions/Sku/properties/tier).
CLOSED_ENUMS = frozenset({"SkuTier"})

#: Models whose spec definition is open (no ``additionalProperties: false``). The SDK cannot tell either: msrest
#: drops any key its map does not name. Every other MLS definition of 2023-04-01 the operations below reach is
#: closed, so an unknown key there is an error; here it is a warning. From the spec: ``Workspace`` and its
#: flattened ``WorkspaceProperties`` (machineLearningServices.json), and the common-types v3 ``Sku``,
#: ``systemData``, ``ErrorResponse``/``ErrorDetail`` (types.json) and ``ManagedServiceIdentity``/
#: ``UserAssignedIdentity`` (managedidentity.json).
OPEN_MODELS = frozenset(
    {"Workspace", "Sku", "SystemData", "ErrorResponse", "ErrorDetail", "ManagedServiceIdentity", "UserAssignedIdentity"}
)

#: ARM's asynchronous-operation status body (what an ``Azure-AsyncOperation`` URL answers), written from the ARM
#: documentation ("Track asynchronous Azure operations", "Azure-AsyncOperation request and response",
#: https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations): ``status`` is always
#: there (Succeeded, Failed, Canceled or an in-progress value); ``id``, ``name``, ``startTime``, ``endTime``,
#: ``percentComplete``, ``properties`` may be; ``error`` (``code``, ``message``) comes with a failure.
OPERATION_STATUS: Schema = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string"},
        "startTime": {"type": "string", "format": "date-time"},
        "endTime": {"type": "string", "format": "date-time"},
        "percentComplete": {"type": "number", "minimum": 0, "maximum": 100},
        "properties": {"type": "object"},
        "error": {"$ref": "ErrorDetail"},
    },
}

_WS = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}"
)
_ENDPOINT = f"{_WS}/onlineEndpoints/{{endpointName}}"
_DEPLOYMENT = f"{_ENDPOINT}/deployments/{{deploymentName}}"
_CREATED = ("Azure-AsyncOperation",)  # what the SDK reads from a 201 of an LRO PUT
_ACCEPTED = ("Location", "Retry-After")  # ... and from a 202 of an LRO PATCH, DELETE or POST
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$", re.IGNORECASE)
_DURATION = re.compile(r"^-?P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SCALARS: dict[str, Schema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "decimal": {"type": "number"},
    "bool": {"type": "boolean"},
    "iso-8601": {"type": "string", "format": "date-time"},
    "rfc-1123": {"type": "string"},
    "duration": {"type": "string", "format": "duration"},
    "date": {"type": "string"},
    "bytearray": {"type": "string"},
    "base64": {"type": "string"},
    "unix-time": {"type": "integer"},
    "object": {},
}
#: msrest ``_validation`` keywords -> swagger keywords.
_RULES = {
    "pattern": "pattern",
    "min_length": "minLength",
    "max_length": "maxLength",
    "minimum": "minimum",
    "maximum": "maximum",
    "min_items": "minItems",
    "max_items": "maxItems",
}
_ENUM_DOC = re.compile(r":vartype (\w+): (?:list\[)?str or ~[\w.]+\.models\.(\w+)")


@dataclass(frozen=True)
class Operation:
    """One REST operation the app or azure-ai-ml uses, with the SDK model of each body (None: no body)."""

    operation_id: str  # as in the 2023-04-01 spec (operationId), which names the SDK's operation group/method
    method: str
    template: str
    responses: Mapping[int, str | None]
    request: str | None = None
    headers: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # polling headers the SDK reads

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", self.template)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(f"^{regex}/?$", re.IGNORECASE)

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method and self._pattern.match(path) is not None


def _crud(group: str, model: str, collection: str, item: str, paged: str, write: bool = True) -> list[Operation]:
    ops = [
        Operation(f"{group}_List", "GET", collection, {200: paged}),
        Operation(f"{group}_Get", "GET", item, {200: model}),
    ]
    if write:
        ops.append(Operation(f"{group}_CreateOrUpdate", "PUT", item, {200: model, 201: model}, model))
    return ops


#: Our table of the operations used, from the SDK's operation code (status codes accepted, models (de)serialized).
OPERATIONS: tuple[Operation, ...] = (
    Operation("Workspaces_Get", "GET", _WS, {200: "Workspace"}),
    Operation(
        "OnlineEndpoints_List",
        "GET",
        f"{_WS}/onlineEndpoints",
        {200: "OnlineEndpointTrackedResourceArmPaginatedResult"},
    ),
    Operation("OnlineEndpoints_Get", "GET", _ENDPOINT, {200: "OnlineEndpoint"}),
    Operation(
        "OnlineEndpoints_CreateOrUpdate",
        "PUT",
        _ENDPOINT,
        {200: "OnlineEndpoint", 201: "OnlineEndpoint"},
        "OnlineEndpoint",
        {201: _CREATED},
    ),
    Operation(
        "OnlineEndpoints_Update",
        "PATCH",
        _ENDPOINT,
        {200: "OnlineEndpoint", 202: None},
        "PartialMinimalTrackedResourceWithIdentity",
        {202: _ACCEPTED},
    ),
    Operation("OnlineEndpoints_Delete", "DELETE", _ENDPOINT, {200: None, 202: None, 204: None}, None, {202: _ACCEPTED}),
    Operation("OnlineEndpoints_ListKeys", "POST", f"{_ENDPOINT}/listKeys", {200: "EndpointAuthKeys"}),
    Operation(
        "OnlineDeployments_List",
        "GET",
        f"{_ENDPOINT}/deployments",
        {200: "OnlineDeploymentTrackedResourceArmPaginatedResult"},
    ),
    Operation("OnlineDeployments_Get", "GET", _DEPLOYMENT, {200: "OnlineDeployment"}),
    Operation(
        "OnlineDeployments_CreateOrUpdate",
        "PUT",
        _DEPLOYMENT,
        {200: "OnlineDeployment", 201: "OnlineDeployment"},
        "OnlineDeployment",
        {201: _CREATED},
    ),
    Operation(
        "OnlineDeployments_Update",
        "PATCH",
        _DEPLOYMENT,
        {200: "OnlineDeployment", 202: None},
        "PartialMinimalTrackedResourceWithSku",
        {202: _ACCEPTED},
    ),
    Operation(
        "OnlineDeployments_Delete", "DELETE", _DEPLOYMENT, {200: None, 202: None, 204: None}, None, {202: _ACCEPTED}
    ),
    Operation(
        "OnlineDeployments_GetLogs", "POST", f"{_DEPLOYMENT}/getLogs", {200: "DeploymentLogs"}, "DeploymentLogsRequest"
    ),
    *_crud(
        "ModelContainers",
        "ModelContainer",
        f"{_WS}/models",
        f"{_WS}/models/{{name}}",
        "ModelContainerResourceArmPaginatedResult",
    ),
    *_crud(
        "ModelVersions",
        "ModelVersion",
        f"{_WS}/models/{{name}}/versions",
        f"{_WS}/models/{{name}}/versions/{{version}}",
        "ModelVersionResourceArmPaginatedResult",
    ),
    *_crud(
        "ComponentContainers",
        "ComponentContainer",
        f"{_WS}/components",
        f"{_WS}/components/{{name}}",
        "ComponentContainerResourceArmPaginatedResult",
        write=False,
    ),
    *_crud(
        "ComponentVersions",
        "ComponentVersion",
        f"{_WS}/components/{{name}}/versions",
        f"{_WS}/components/{{name}}/versions/{{version}}",
        "ComponentVersionResourceArmPaginatedResult",
        write=False,
    ),
    *_crud("Jobs", "JobBase", f"{_WS}/jobs", f"{_WS}/jobs/{{id}}", "JobBaseResourceArmPaginatedResult"),
    Operation("Jobs_Cancel", "POST", f"{_WS}/jobs/{{id}}/cancel", {200: None, 202: None}, None, {202: _ACCEPTED}),
)
#: Every error status answers ARM's error body (the SDK deserializes it as ``ErrorResponse``).
ERROR_MODEL = "ErrorResponse"


@dataclass(frozen=True)
class Violation:
    """One way an instance breaks its schema; ``path`` is a JSON-pointer-like location (``/properties/x``).

    ``warning`` is for what the wire format allows but a reader should see: a value outside an *open* enum
    (``x-ms-enum.modelAsString: true``, which AutoRest turns into an extensible enum: any string is valid).
    """

    kind: str  # required | type | enum | readOnly | additionalProperties | format | range | pattern | discriminator
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


# ---------------------------------------------------------------------- the loader: SDK model -> schema dict


def _split_key(key: str) -> list[str]:
    """msrest's wire key: ``properties.provisioningState`` is nested; ``a\\.b`` is one key with a dot."""
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]


def type_schema(msrest_type: str, models: ModuleType, enum_name: str | None = None) -> Schema:
    """An msrest type string (``str``, ``[X]``, ``{str}``, ``iso-8601``, a model name) as a schema node."""
    if msrest_type.startswith("[") and msrest_type.endswith("]"):
        return {"type": "array", "items": type_schema(msrest_type[1:-1], models, enum_name)}
    if msrest_type.startswith("{") and msrest_type.endswith("}"):
        return {"type": "object", "additionalProperties": type_schema(msrest_type[1:-1], models, enum_name)}
    if msrest_type in _SCALARS:
        node = dict(_SCALARS[msrest_type])
        enum_class = getattr(models, enum_name, None) if enum_name else None
        if isinstance(enum_class, type) and issubclass(enum_class, enum.Enum):
            node["enum"] = [member.value for member in enum_class]
            node["x-ms-enum"] = {"name": enum_name, "modelAsString": enum_name not in CLOSED_ENUMS}
        return node
    if isinstance(getattr(models, msrest_type, None), type):
        return {"$ref": msrest_type}
    raise ValueError(f"unknown msrest type {msrest_type!r}")


def _enum_names(cls: type) -> dict[str, str]:
    """attribute -> enum class name, from the model's ``:vartype x: str or ~...models.Enum`` docstring lines."""
    names: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        names.update(_ENUM_DOC.findall(klass.__doc__ or ""))
    return names


def model_schema(cls: type, models: ModuleType) -> Schema:
    """An msrest model class as the schema dict the validator reads.

    - ``_attribute_map``: wire keys (a dotted key nests under an object, e.g. Workspace's flattened
      ``properties.x``) and types;
    - ``_validation``: ``required``, ``readonly`` (-> ``readOnly``), pattern, lengths, bounds;
    - ``_subtype_map`` declared on the class itself: the discriminator and its value -> subtype model;
    - an ``additional_properties`` attribute (wire key ``""``) types the other keys; a model in
      :data:`OPEN_MODELS` takes any other key (``additionalProperties: True``: reported as a warning); every
      other model is closed.
    """
    validation: Mapping[str, Mapping[str, Any]] = getattr(cls, "_validation", {})
    enums = _enum_names(cls)
    closed = cls.__name__ not in OPEN_MODELS
    root: Schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": not closed}
    for attr, spec in cls._attribute_map.items():  # type: ignore[attr-defined]
        if spec["key"] == "":
            root["additionalProperties"] = type_schema(spec["type"], models)["additionalProperties"]
            continue
        node = type_schema(spec["type"], models, enums.get(attr))
        rules = validation.get(attr, {})
        if rules.get("readonly"):
            node["readOnly"] = True
        node.update({_RULES[k]: v for k, v in rules.items() if k in _RULES})
        *parents, leaf = _split_key(spec["key"])
        target = root
        for part in parents:
            target = target["properties"].setdefault(
                part, {"type": "object", "properties": {}, "required": [], "additionalProperties": not closed}
            )
        target["properties"][leaf] = node
        if rules.get("required"):
            target["required"].append(leaf)
    subtypes = cls.__dict__.get("_subtype_map")
    if subtypes:
        ((attr, mapping),) = subtypes.items()
        root["discriminator"] = cls._attribute_map[attr]["key"]  # type: ignore[attr-defined]
        root["x-subtypes"] = dict(mapping)
    return root


# ---------------------------------------------------------------------- the contract


#: Azure Monitor's metrics API, which the gates read (``app/azure/metrics.py``), held to the same kind of contract: the
#: msrest models of the pinned azure-mgmt-monitor 7.0.0, whose ``metrics.list`` sends api-version 2024-02-01 and
#: deserializes ``Response`` (-> ``Metric`` -> ``TimeSeriesElement`` -> ``MetricValue``), and ``ErrorContract``
#: for any other status. The only resource the app reads metrics of is an online endpoint.
MONITOR_SDK_PACKAGE = "azure-mgmt-monitor"
MONITOR_SDK_VERSION = "7.0.0"
METRICS_API_VERSION = "2024-02-01"
METRICS_ERROR_MODEL = "ErrorContract"
_METRICS = f"{_WS}/onlineEndpoints/{{endpointName}}/providers/Microsoft.Insights/metrics"
METRICS_OPERATIONS: tuple[Operation, ...] = (Operation("Metrics_List", "GET", _METRICS, {200: "Response"}),)


class Contract:
    """The SDK-derived schemas, our operation table, and validation of bodies against them."""

    def __init__(
        self,
        models: ModuleType | None = None,
        operations: tuple[Operation, ...] = OPERATIONS,
        extra: Mapping[str, Schema] | None = None,
        error_model: str = ERROR_MODEL,
    ) -> None:
        if models is None:
            from azure.mgmt.machinelearningservices import models as sdk_models

            models = sdk_models
        self.models = models
        self.error_model = error_model
        self.operations = {op.operation_id: op for op in operations}
        self._definitions: dict[str, Schema] = {"OperationStatus": OPERATION_STATUS, **(extra or {})}

    def definition(self, name: str) -> Schema:
        """A definition by name: one we wrote (``OperationStatus``) or an SDK model class's schema."""
        if name not in self._definitions:
            cls = getattr(self.models, name, None)
            if not isinstance(cls, type) or not hasattr(cls, "_attribute_map"):
                raise KeyError(f"{name!r} is neither an SDK model nor a definition of ours")
            self._definitions[name] = model_schema(cls, self.models)
        return self._definitions[name]

    def resolve(self, node: Schema) -> Schema:
        return self.definition(node["$ref"]) if "$ref" in node else node

    # ------------------------------------------------------------------ operations

    def operation(self, operation_id: str) -> Operation:
        try:
            return self.operations[operation_id]
        except KeyError:
            raise KeyError(f"operation {operation_id!r} is not in devkit.contract.OPERATIONS") from None

    def find_operation(self, method: str, url: str) -> Operation | None:
        """The operation a request addresses (``url`` may be absolute; the query is ignored)."""
        path = urlsplit(url).path
        return next((op for op in self.operations.values() if op.matches(method, path)), None)

    def response_schema(self, operation_id: str, status: int) -> Schema | None:
        """The schema of ``status``'s body (ARM's error body for any error status); None if no body."""
        op = self.operation(operation_id)
        if status >= 400:
            return {"$ref": self.error_model}
        if status not in op.responses:
            raise ValueError(f"{operation_id} answers no {status} (it answers {sorted(op.responses)})")
        model = op.responses[status]
        return {"$ref": model} if model else None

    def request_schema(self, operation_id: str) -> Schema | None:
        model = self.operation(operation_id).request
        return {"$ref": model} if model else None

    # ------------------------------------------------------------------ validation

    def validate_response(self, operation_id: str, status: int, body: Any) -> list[Violation]:
        op = self.operation(operation_id)
        if status < 400 and status not in op.responses:
            return [Violation("status", "", f"{operation_id} answers {sorted(op.responses)}, not {status}")]
        schema = self.response_schema(operation_id, status)
        if schema is None:
            return [] if body in (None, b"", "") else [Violation("type", "", f"{status} has no body in the contract")]
        return list(self._check(schema, body, "", "response"))

    def validate_request(self, operation_id: str, body: Any) -> list[Violation]:
        schema = self.request_schema(operation_id)
        if schema is None:
            return [] if body is None else [Violation("type", "", f"{operation_id} takes no body")]
        return list(self._check(schema, body, "", "request"))

    def validate(self, schema: str | Schema, body: Any, mode: Mode = "response") -> list[Violation]:
        """Validate against a definition name (an SDK model or ``OperationStatus``) or a schema dict."""
        return list(self._check({"$ref": schema} if isinstance(schema, str) else schema, body, "", mode))

    def _check(self, schema: Schema, value: Any, path: str, mode: Mode) -> Iterator[Violation]:
        node = self.resolve(schema)
        if value is None:
            return  # null: required-ness is checked by the parent
        kind = node.get("type") or ("object" if "properties" in node else None)
        if "enum" in node:
            yield from _check_enum(node, value, path)
        if kind == "object":
            yield from self._check_object(schema, value, path, mode)
        elif kind == "array":
            if not isinstance(value, list):
                yield Violation("type", path, f"expected an array, got {_json_type(value)}")
                return
            for i, item in enumerate(value):
                yield from self._check(node.get("items", {}), item, f"{path}/{i}", mode)
        elif kind is not None:
            yield from _check_scalar(node, kind, value, path)

    def _subtype(self, node: Schema, value: str) -> Schema | None:
        """The subtype schema a discriminator value selects (exact first, then case-insensitively)."""
        subtypes: Mapping[str, str] = node.get("x-subtypes", {})
        name = subtypes.get(value) or next((n for k, n in subtypes.items() if k.lower() == value.lower()), None)
        return self.definition(name) if name else None

    def effective(self, schema: Schema, value: Mapping[str, Any]) -> Schema:
        """The object schema for ``value``, its discriminator resolved to the subtype when known."""
        node = self.resolve(schema)
        while (disc := node.get("discriminator")) and isinstance(value.get(disc), str):
            sub = self._subtype(node, value[disc])
            if sub is None or sub is node:
                break
            node = sub
        return node

    def property_schema(self, schema: Schema, name: str, value: Mapping[str, Any]) -> Schema | None:
        """The schema of ``value[name]`` under ``schema`` (discriminator resolved)."""
        found: Schema | None = self.effective(schema, value).get("properties", {}).get(name)
        return found

    def read_only_keys(self, schema: Schema, value: Mapping[str, Any]) -> set[str]:
        """The properties the contract marks read-only (server-populated) for an object like ``value``."""
        props = self.effective(schema, value).get("properties", {})
        return {n for n, p in props.items() if p.get("readOnly")}

    def _check_object(self, schema: Schema, value: Any, path: str, mode: Mode) -> Iterator[Violation]:
        if not isinstance(value, dict):
            yield Violation("type", path, f"expected an object, got {_json_type(value)}")
            return
        node = self.resolve(schema)
        disc = node.get("discriminator")
        if disc and isinstance(value.get(disc), str) and self._subtype(node, value[disc]) is None:
            yield Violation(
                "discriminator",
                f"{path}/{disc}",
                f"no subtype for {value[disc]!r} (known: {sorted(node.get('x-subtypes', {}))}); checked against "
                "the base only",
                "warning",
            )
        node = self.effective(schema, value)
        props: Mapping[str, Schema] = node.get("properties", {})
        for name in sorted(node.get("required", [])):
            prop = props.get(name, {})
            if mode == "request" and prop.get("readOnly"):
                continue
            if name not in value:
                yield Violation("required", f"{path}/{name}", f"required property {name!r} is missing")
            elif value[name] is None:
                yield Violation("required", f"{path}/{name}", f"required property {name!r} is null")
        additional = node.get("additionalProperties")
        for name, item in value.items():
            if name not in props:
                if isinstance(additional, dict):
                    yield from self._check(additional, item, f"{path}/{name}", mode)
                elif additional is False:
                    yield Violation("additionalProperties", f"{path}/{name}", f"{name!r} is not in the contract")
                elif additional is True:
                    message = f"{name!r} is not in the contract (the object is open)"
                    yield Violation("additionalProperties", f"{path}/{name}", message, "warning")
                continue
            prop = props[name]
            if mode == "request" and prop.get("readOnly") and item is not None:
                yield Violation("readOnly", f"{path}/{name}", f"{name!r} is read-only; a client must not send it")
            yield from self._check(prop, item, f"{path}/{name}", mode)


def _check_enum(node: Mapping[str, Any], value: Any, path: str) -> Iterator[Violation]:
    allowed = node["enum"]
    if value in allowed:
        return
    name = node.get("x-ms-enum", {}).get("name", "enum")
    if node.get("x-ms-enum", {}).get("modelAsString", False):
        # Extensible enum: any string is valid on the wire; say when it is not a known value.
        if isinstance(value, str) and value.lower() in {str(a).lower() for a in allowed}:
            return  # services compare these case-insensitively (the SDK's CaseInsensitiveEnumMeta does too)
        yield Violation("enum", path, f"{value!r} is not a known {name} value {allowed}", "warning")
    else:
        yield Violation("enum", path, f"{value!r} is not one of {name} {allowed}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _check_scalar(node: Mapping[str, Any], kind: str, value: Any, path: str) -> Iterator[Violation]:
    actual = _json_type(value)
    ok = {
        "string": actual == "string",
        "integer": actual == "integer" or (actual == "number" and float(value).is_integer()),
        "number": actual in {"integer", "number"},
        "boolean": actual == "boolean",
    }.get(kind, True)
    if not ok:
        yield Violation("type", path, f"expected {kind}, got {actual} {value!r}")
        return
    if kind == "string":
        fmt = node.get("format")
        if fmt == "date-time" and not _is_date_time(value):
            yield Violation("format", path, f"{value!r} is not an ISO 8601 date-time")
        elif fmt == "duration" and not _DURATION.match(value):
            yield Violation("format", path, f"{value!r} is not an ISO 8601 duration")
        elif fmt == "uuid" and not _UUID.match(value):
            yield Violation("format", path, f"{value!r} is not a UUID")
        pattern = node.get("pattern")
        if pattern:
            try:
                if re.search(pattern, value) is None:
                    yield Violation("pattern", path, f"{value!r} does not match {pattern}")
            except re.error:
                pass  # an ECMA-only construct: not checked
        if "minLength" in node and len(value) < node["minLength"]:
            yield Violation("range", path, f"{value!r} is shorter than {node['minLength']}")
        if "maxLength" in node and len(value) > node["maxLength"]:
            yield Violation("range", path, f"{value!r} is longer than {node['maxLength']}")
    elif kind in {"integer", "number"}:
        if isinstance(value, float) and not math.isfinite(value):
            yield Violation("type", path, f"{value!r} is not a finite number")
        elif "minimum" in node and value < node["minimum"]:
            yield Violation("range", path, f"{value!r} is below the minimum {node['minimum']}")
        elif "maximum" in node and value > node["maximum"]:
            yield Violation("range", path, f"{value!r} is above the maximum {node['maximum']}")


def _is_date_time(value: str) -> bool:
    if not _DATE_TIME.match(value):
        return False
    text = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("z", "Z").replace("Z", "+00:00")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def errors(violations: list[Violation]) -> list[Violation]:
    """Only what breaks the contract (warnings dropped)."""
    return [v for v in violations if v.severity == "error"]


def metrics_contract() -> Contract:
    """The metrics API's contract, from the pinned azure-mgmt-monitor's models (imported here: only tests need it)."""
    from azure.mgmt.monitor import models as monitor_models

    return Contract(monitor_models, METRICS_OPERATIONS, error_model=METRICS_ERROR_MODEL)
