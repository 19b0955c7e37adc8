"""The registry exchanges' contract, read at test time from the pinned SDKs' models (nothing copied in).

Two planes, two sources, the same checker (:class:`devkit.contract.Contract`):

- **ARM** (api-version 2023-04-01): azure-mgmt-machinelearningservices 2.0.0b2's msrest models, as for the workspace
  operations, with the registry operations it sends (``RegistryModelContainers_*``, ``RegistryModelVersions_*``,
  operation ids as in azure-rest-api-specs' 2023-04-01 ``registries.json``);
- the **registry data plane** (api-version 2021-10-01-dataplanepreview) and **registry discovery** (v1.0): azure-ai-ml
  1.35.2 reads their answers into its TypeSpec-generated models (``_restclient/arm_ml_service``: ``ModelVersion``,
  ``ModelContainer``, ``ErrorResponse``; ``_restclient/registry_discovery``: ``RegistryDiscoveryDto``), which carry
  no msrest map. :func:`hybrid_model_schema` reads those models instead: each ``rest_field``'s wire name and
  visibility (``read`` alone: read-only) and its type annotation (``Optional``: not required; ``Union[str, Enum]``:
  an extensible enum; ``dict``/``list``/model: nested). Lists have no model: the SDK reads ``value`` and ``nextLink``
  (``_utils/_registry_utils.py``, ``list_registry_assets``), which :data:`_PAGED` writes down.

The import request has no model either: azure-ai-ml builds it as a plain dict (``WorkspaceAssetReference.
_to_rest_object``); the contract test sends exactly what that method returns.
"""

from __future__ import annotations

import datetime
import enum
import types
import typing
from typing import Any

from devkit.contract import Contract, Operation, Schema

_PROVIDER = "/providers/Microsoft.MachineLearningServices"
_REG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}" + _PROVIDER + "/registries/{registryName}"
_MFE = "/mferp/managementfrontend" + _REG

#: The registry operations the adapter and azure-mgmt-machinelearningservices send on ARM (2023-04-01).
REGISTRY_ARM_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "RegistryModelContainers_List", "GET", f"{_REG}/models", {200: "ModelContainerResourceArmPaginatedResult"}
    ),
    Operation("RegistryModelContainers_Get", "GET", f"{_REG}/models/{{modelName}}", {200: "ModelContainer"}),
    Operation(
        "RegistryModelVersions_List",
        "GET",
        f"{_REG}/models/{{modelName}}/versions",
        {200: "ModelVersionResourceArmPaginatedResult"},
    ),
    Operation(
        "RegistryModelVersions_Get", "GET", f"{_REG}/models/{{modelName}}/versions/{{version}}", {200: "ModelVersion"}
    ),
    Operation(
        "RegistryModelVersions_CreateOrUpdate",
        "PUT",
        f"{_REG}/models/{{modelName}}/versions/{{version}}",
        {200: "ModelVersion", 201: "ModelVersion"},
        "ModelVersion",
        {201: ("Azure-AsyncOperation",)},
    ),
)

#: What azure-ai-ml sends to registry discovery and to the registry data plane (2021-10-01-dataplanepreview).
REGISTRY_DATAPLANE_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "RegistryManagement_GetDiscoveryInfo",
        "GET",
        "/registrymanagement/v1.0/registries/{registryName}/discovery",
        {200: "RegistryDiscoveryDto"},
    ),
    Operation("ModelContainers_List", "GET", f"{_MFE}/models", {200: "ModelContainerList"}),
    Operation("ModelContainers_Get", "GET", f"{_MFE}/models/{{name}}", {200: "ModelContainer"}),
    Operation("ModelVersions_List", "GET", f"{_MFE}/models/{{name}}/versions", {200: "ModelVersionList"}),
    Operation("ModelVersions_Get", "GET", f"{_MFE}/models/{{name}}/versions/{{version}}", {200: "ModelVersion"}),
    Operation(
        "ModelVersions_CreateOrUpdate",
        "PUT",
        f"{_MFE}/models/{{name}}/versions/{{version}}",
        {200: "ModelVersion", 201: "ModelVersion"},
        "ModelVersion",
    ),
    # The SDK's generated import operation accepts 200 or 202 and polls ``Location`` (final state via location).
    Operation(
        "ResourceManagementAssetReference_Import", "POST", f"{_MFE}/import", {202: None}, None, {202: ("Location",)}
    ),
)

_PAGED = {
    "ModelContainerList": "ModelContainer",
    "ModelVersionList": "ModelVersion",
}


def registry_arm_contract() -> Contract:
    """The ARM registry operations, on the pinned management SDK's models (the default :class:`Contract` models)."""
    return Contract(operations=REGISTRY_ARM_OPERATIONS)


def registry_dataplane_contract() -> Contract:
    """Discovery and the registry data plane, on azure-ai-ml's own models (see the module docstring)."""
    from azure.ai.ml._restclient.arm_ml_service import models as arm_models
    from azure.ai.ml._restclient.registry_discovery import models as discovery_models

    definitions: dict[str, Schema] = {}
    for cls in (arm_models.ModelVersion, arm_models.ModelContainer, arm_models.ErrorResponse):
        _collect(cls, arm_models, definitions)
    _collect(discovery_models.RegistryDiscoveryDto, discovery_models, definitions)
    for name, item in _PAGED.items():
        definitions[name] = {
            "type": "object",
            "properties": {"value": {"type": "array", "items": {"$ref": item}}, "nextLink": {"type": "string"}},
            "required": ["value"],
            "additionalProperties": False,
        }
    return Contract(
        models=arm_models, operations=REGISTRY_DATAPLANE_OPERATIONS, extra=definitions, error_model="ErrorResponse"
    )


def _collect(cls: type, models: types.ModuleType, into: dict[str, Schema]) -> None:
    """``cls``'s schema and those of every model it reaches, keyed by class name."""
    if cls.__name__ in into:
        return
    into[cls.__name__] = {}  # a placeholder: a model that reaches itself stops here
    schema, reached = hybrid_model_schema(cls, models)
    into[cls.__name__] = schema
    for other in reached:
        _collect(other, models, into)


def hybrid_model_schema(cls: type, models: types.ModuleType) -> tuple[Schema, list[type]]:
    """A TypeSpec-generated (``rest_field``) model as a schema dict, and the model classes it refers to."""
    namespace = {**vars(typing), **vars(models), **vars(_module_of(cls)), "_models": models}
    hints = typing.get_type_hints(cls, globalns=namespace)
    root: Schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    reached: list[type] = []
    for klass in reversed(cls.__mro__):
        for attr, field in vars(klass).items():
            if type(field).__name__ != "_RestField" or attr.startswith("_"):
                continue
            wire = field._rest_name_input or attr
            node, required = _type_node(hints.get(attr, Any), reached)
            if list(field._visibility or ()) == ["read"]:
                node["readOnly"] = True
            root["properties"][wire] = node
            if required:
                root["required"].append(wire)
    return root, reached


def _type_node(annotation: Any, reached: list[type]) -> tuple[Schema, bool]:
    """A field's annotation as a schema node, and whether the field is required (its type does not admit None)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        enums = [a for a in members if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums:
            values = [m.value for m in enums[0]]
            extensible = {"name": enums[0].__name__, "modelAsString": True}
            return {"type": "string", "enum": values, "x-ms-enum": extensible}, len(members) == len(args)
        node, _ = _type_node(members[0], reached) if len(members) == 1 else ({}, False)
        return node, len(members) == len(args)
    origin = typing.get_origin(annotation)
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_node(args[1], reached)[0]}, True
    if origin is list:
        return {"type": "array", "items": _type_node(args[0], reached)[0]}, True
    scalars: dict[Any, Schema] = {
        str: {"type": "string"},
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
        datetime.datetime: {"type": "string", "format": "date-time"},
    }
    if annotation in scalars:
        return dict(scalars[annotation]), True
    if _is_hybrid(annotation):
        reached.append(annotation)
        return {"$ref": annotation.__name__}, True
    return {}, True


def _is_hybrid(annotation: Any) -> bool:
    return isinstance(annotation, type) and any(base.__name__ == "Model" for base in annotation.__mro__[1:])


def _module_of(cls: type) -> types.ModuleType:
    import sys

    return sys.modules[cls.__module__]
