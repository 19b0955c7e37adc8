"""The contract of Azure Monitor's ``metrics:getBatch``, read from the pinned azure-monitor-querymetrics models.

The client is TypeSpec-generated (``azure.monitor.querymetrics.models``): each model class declares its wire names
with ``rest_field`` and its types with annotations, ``Optional`` for what the spec does not require. They are what
``MetricsClient.query_resources`` reads, generated from azure-rest-api-specs' data-plane
``Microsoft.Insights/stable/2024-02-01/metricBatch.json``. This turns them into the schema dicts
:class:`devkit.contract.Contract` validates with, so the emulator's batch answers are held to the same standard as its
other answers. The models are taken as closed: a key they do not name is dropped by the client, so an emulator that
sends one has misspelled something.
"""

from __future__ import annotations

import datetime as dt
import typing
from types import ModuleType
from typing import Any

from devkit.contract import Contract, Operation, Schema

#: The client and the api-version it sends (its configuration's default).
BATCH_SDK_PACKAGE = "azure-monitor-querymetrics"
BATCH_API_VERSION = "2024-02-01"
BATCH_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "MetricsBatch_Batch",
        "POST",
        "/subscriptions/{subscriptionId}/metrics:getBatch",
        {200: "MetricResultsResponse"},
        "ResourceIdList",
    ),
)
_SCALARS: dict[Any, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dt.datetime: {"type": "string", "format": "date-time"},
    Any: {},
}


def _node(hint: Any, models: ModuleType) -> tuple[Schema, bool]:
    """(schema node, required) for one annotation: ``Optional[X]`` is not required, ``List[X]`` an array."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        node, _ = _node(inner[0] if len(inner) == 1 else typing.Union[tuple(inner)], models)  # noqa: UP007
        return node, False
    if typing.get_origin(hint) is typing.Union:  # an extensible enum: str or the enum
        return {"type": "string"}, True
    if typing.get_origin(hint) in (list, typing.List):  # noqa: UP006
        return {"type": "array", "items": _node(args[0], models)[0]}, True
    if hint in _SCALARS:
        return dict(_SCALARS[hint]), True
    if isinstance(hint, type):
        name = str(getattr(hint, "__name__", ""))
        if getattr(models, name, None) is hint:
            return {"$ref": name}, True
        if issubclass(hint, str):  # an enum class
            return {"type": "string"}, True
    raise ValueError(f"no schema for the annotation {hint!r}")


def model_schema(cls: type, models: ModuleType) -> Schema:
    """One TypeSpec model class as a closed object schema: wire names, types, and what is required."""
    from azure.monitor.querymetrics import models as public

    namespace = {"_models": public, **vars(models)}
    hints = typing.get_type_hints(cls, globalns=namespace)
    schema: Schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    for klass in reversed(cls.__mro__):
        for attr, field in vars(klass).items():
            if type(field).__name__ != "_RestField":
                continue
            node, required = _node(hints[attr], models)
            wire = field._rest_name_input or attr
            schema["properties"][wire] = node
            if required:
                schema["required"].append(wire)
    return schema


def batch_metrics_contract() -> Contract:
    """The batch API's contract (imported here: only tests need the models)."""
    from azure.monitor.querymetrics.models import _models as generated

    definitions = {
        name: model_schema(cls, generated)
        for name, cls in vars(generated).items()
        if isinstance(cls, type) and cls.__module__ == generated.__name__
    }
    return Contract(generated, BATCH_OPERATIONS, extra=definitions, error_model="ErrorResponse")
