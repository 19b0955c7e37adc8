"""The contract checker: schemas built from the SDK's models, and what the validator reports against them."""

from __future__ import annotations

import copy
import types
from typing import Any, ClassVar

import pytest

from devkit.contract import API_VERSION, Contract, Violation, errors, model_schema

DEPLOYMENT_PUT = "OnlineDeployments_CreateOrUpdate"
MANAGED_DEPLOYMENT: dict[str, Any] = {
    "location": "westeurope",
    "sku": {"name": "Default", "capacity": 2},
    "properties": {
        "endpointComputeType": "Managed",
        "model": "azureml:churn:4",
        "instanceType": "Standard_F4s_v2",
        "scaleSettings": {"scaleType": "Default"},
        "requestSettings": {"requestTimeout": "PT10S", "maxConcurrentRequestsPerInstance": 2},
    },
}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


def _kinds(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.kind, v.path) for v in violations]


def _deployment() -> dict[str, Any]:
    return copy.deepcopy(MANAGED_DEPLOYMENT)


def test_the_contract_is_the_sdk_pinned_to_the_2023_04_01_api() -> None:
    from azure.mgmt.machinelearningservices import VERSION, MachineLearningServicesMgmtClient

    from devkit.contract import SDK_VERSION

    client = MachineLearningServicesMgmtClient(credential=object(), subscription_id="s")  # type: ignore[arg-type]

    assert (VERSION, client._config.api_version) == (SDK_VERSION, API_VERSION)


def test_a_well_formed_managed_deployment_is_clean(contract: Contract) -> None:
    assert contract.validate_request(DEPLOYMENT_PUT, _deployment()) == []
    assert contract.validate_response(DEPLOYMENT_PUT, 201, _deployment()) == []


def test_location_is_required_through_the_common_tracked_resource(contract: Contract) -> None:
    body = _deployment()
    del body["location"]  # TrackedResource (common-types) requires it; the SDK's OnlineDeployment inherits it

    assert _kinds(contract.validate_request(DEPLOYMENT_PUT, body)) == [("required", "/location")]


def test_the_discriminator_is_required_on_the_polymorphic_base(contract: Contract) -> None:
    body = _deployment()
    del body["properties"]["endpointComputeType"]  # checked against the base alone, which requires it

    assert _kinds(contract.validate_request(DEPLOYMENT_PUT, body)) == [("required", "/properties/endpointComputeType")]


def test_read_only_fields_are_reported_in_requests_only(contract: Contract) -> None:
    body = _deployment()
    body["properties"]["provisioningState"] = "Succeeded"
    body["systemData"] = {"createdBy": "someone"}

    assert sorted(_kinds(contract.validate_request(DEPLOYMENT_PUT, body))) == [
        ("readOnly", "/properties/provisioningState"),
        ("readOnly", "/systemData"),
    ]
    assert contract.validate_response(DEPLOYMENT_PUT, 201, body) == []


def test_the_discriminator_selects_the_subtype(contract: Contract) -> None:
    managed = _deployment()
    managed["properties"]["containerResourceRequirements"] = {}  # a KubernetesOnlineDeployment property
    kubernetes = copy.deepcopy(managed)
    kubernetes["properties"]["endpointComputeType"] = "Kubernetes"

    assert _kinds(contract.validate_request(DEPLOYMENT_PUT, managed)) == [
        ("additionalProperties", "/properties/containerResourceRequirements")
    ]
    assert contract.validate_request(DEPLOYMENT_PUT, kubernetes) == []


def test_a_discriminator_value_is_matched_case_insensitively(contract: Contract) -> None:
    body = _deployment()
    body["properties"]["endpointComputeType"] = "managed"
    body["properties"]["containerResourceRequirements"] = {}

    assert _kinds(contract.validate_request(DEPLOYMENT_PUT, body)) == [
        ("additionalProperties", "/properties/containerResourceRequirements")
    ]


def test_an_unknown_discriminator_value_is_a_warning(contract: Contract) -> None:
    body = _deployment()
    body["properties"]["endpointComputeType"] = "AzureMLCompute"
    del body["properties"]["instanceType"], body["properties"]["scaleSettings"], body["properties"]["requestSettings"]
    del body["properties"]["model"]

    found = contract.validate_request(DEPLOYMENT_PUT, body)

    assert [(v.kind, v.severity) for v in found] == [("discriminator", "warning")]


def test_nested_polymorphism_and_types_inside_maps(contract: Contract) -> None:
    job = {
        "properties": {
            "jobType": "Pipeline",
            "inputs": {"a": {"jobInputType": "literal"}, "b": {"jobInputType": "uri_file", "uri": 3}},
            "command": "python train.py",  # a CommandJob property
        }
    }

    found = _kinds(contract.validate_request("Jobs_CreateOrUpdate", job))

    assert sorted(found) == [
        ("additionalProperties", "/properties/command"),
        ("required", "/properties/inputs/a/value"),
        ("type", "/properties/inputs/b/uri"),
    ]


def test_an_unknown_value_of_an_open_enum_is_a_warning_and_case_is_ignored(contract: Contract) -> None:
    body = {"location": "eastus", "properties": {"authMode": "Certificate"}}
    lower = {"location": "eastus", "properties": {"authMode": "key"}}

    found = contract.validate_request("OnlineEndpoints_CreateOrUpdate", body)

    assert [(v.kind, v.path, v.severity) for v in found] == [("enum", "/properties/authMode", "warning")]
    assert errors(found) == []
    assert contract.validate_request("OnlineEndpoints_CreateOrUpdate", lower) == []


def test_sku_tier_is_the_closed_enum(contract: Contract) -> None:
    body = _deployment()
    body["sku"]["tier"] = "Gold"

    assert [(v.kind, v.path, v.severity) for v in contract.validate_request(DEPLOYMENT_PUT, body)] == [
        ("enum", "/sku/tier", "error")
    ]


def test_durations_and_date_times_are_checked(contract: Contract) -> None:
    body = _deployment()
    body["properties"]["requestSettings"]["requestTimeout"] = "10 seconds"
    body["systemData"] = {"createdAt": "2024-01-01T00:00:00.1234567Z", "lastModifiedAt": "yesterday"}

    assert sorted(_kinds(contract.validate_response(DEPLOYMENT_PUT, 200, body))) == [
        ("format", "/properties/requestSettings/requestTimeout"),
        ("format", "/systemData/lastModifiedAt"),
    ]


def test_a_flattened_workspace_nests_its_properties_and_stays_open(contract: Contract) -> None:
    workspace = {"location": "eastus", "properties": {"privateLinkCount": "two", "kind": "x"}, "sku": {"name": "B"}}

    found = contract.validate_response("Workspaces_Get", 200, workspace)

    assert [(v.kind, v.path, v.severity) for v in found] == [
        ("type", "/properties/privateLinkCount", "error"),
        ("additionalProperties", "/properties/kind", "warning"),
    ]


def test_the_operation_status_body_written_from_the_arm_docs(contract: Contract) -> None:
    good = {"status": "Succeeded", "startTime": "2024-01-01T00:00:00.1234567Z", "percentComplete": 100.0}

    assert contract.validate("OperationStatus", good) == []
    assert _kinds(contract.validate("OperationStatus", {"startTime": "yesterday", "percentComplete": 140})) == [
        ("required", "/status"),
        ("format", "/startTime"),
        ("range", "/percentComplete"),
    ]
    failed = {"status": "Failed", "error": {"code": 3}}
    assert _kinds(contract.validate("OperationStatus", failed)) == [("type", "/error/code")]


def test_an_error_status_is_checked_against_arms_error_body(contract: Contract) -> None:
    body = {"error": {"code": "NotFound", "message": "x"}}

    assert contract.validate_response("OnlineEndpoints_Get", 404, body) == []
    assert _kinds(contract.validate_response("OnlineEndpoints_Get", 404, {"error": "NotFound"})) == [("type", "/error")]


def test_a_status_the_operation_never_answers_and_a_body_where_none_belongs(contract: Contract) -> None:
    assert _kinds(contract.validate_response("OnlineEndpoints_Get", 201, {})) == [("status", "")]
    assert _kinds(contract.validate_response("OnlineEndpoints_Delete", 202, {"id": "x"})) == [("type", "")]


def test_requests_are_mapped_to_their_operation(contract: Contract) -> None:
    ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
    found = contract.find_operation(
        "POST", f"https://127.0.0.1:1{ws}/onlineEndpoints/e/deployments/d/getLogs?api-version=x"
    )

    assert found is not None and found.operation_id == "OnlineDeployments_GetLogs"
    assert contract.find_operation("PUT", f"{ws}/computes/c") is None
    assert contract.find_operation("GET", f"{ws.upper()}/ONLINEENDPOINTS/e") is not None


def test_every_model_in_the_operation_table_loads(contract: Contract) -> None:
    names = {m for op in contract.operations.values() for m in (op.request, *op.responses.values()) if m}

    assert len(names) > 15
    for name in names:
        assert contract.definition(name)["type"] == "object", name


def test_the_loader_reads_validation_keys_maps_and_subtypes() -> None:
    import enum

    class Tone(enum.StrEnum):
        LOUD = "Loud"
        SOFT = "Soft"

    class Base:
        """A base.

        :ivar tone: The tone. Known values are: "Loud" and "Soft".
        :vartype tone: str or ~fake.models.Tone
        """

        _validation: ClassVar[dict[str, Any]] = {
            "kind": {"required": True},
            "name": {"readonly": True, "pattern": r"^[a-z]+$", "min_length": 2},
            "count": {"minimum": 1},
        }
        _attribute_map: ClassVar[dict[str, Any]] = {
            "kind": {"key": "kind", "type": "str"},
            "name": {"key": "name", "type": "str"},
            "count": {"key": "properties.count", "type": "int"},
            "labels": {"key": "properties.labels", "type": "{str}"},
            "when": {"key": "properties.when", "type": "iso-8601"},
            "tone": {"key": "tone", "type": "str"},
        }
        _subtype_map: ClassVar[dict[str, Any]] = {"kind": {"Leaf": "Leaf"}}

    class Leaf(Base):
        _attribute_map: ClassVar[dict[str, Any]] = {**Base._attribute_map, "extra": {"key": "extra", "type": "[int]"}}

    models = types.SimpleNamespace(Base=Base, Leaf=Leaf, Tone=Tone)
    fake = Contract(models=models, operations=())  # type: ignore[arg-type]
    schema = model_schema(Base, models)  # type: ignore[arg-type]

    assert schema["discriminator"] == "kind" and schema["x-subtypes"] == {"Leaf": "Leaf"}
    assert schema["properties"]["properties"]["properties"]["when"] == {"type": "string", "format": "date-time"}
    assert "discriminator" not in model_schema(Leaf, models)  # type: ignore[arg-type]
    found = fake.validate(
        "Base",
        {"kind": "Leaf", "name": "A", "tone": "Quiet", "extra": ["1"], "properties": {"count": 0, "labels": {"a": 1}}},
    )
    assert sorted((v.kind, v.path, v.severity) for v in found) == [
        ("enum", "/tone", "warning"),
        ("pattern", "/name", "error"),
        ("range", "/name", "error"),
        ("range", "/properties/count", "error"),
        ("type", "/extra/0", "error"),
        ("type", "/properties/labels/a", "error"),
    ]
    assert _kinds(fake.validate("Base", {"name": "ab"}, mode="request")) == [
        ("required", "/kind"),
        ("readOnly", "/name"),
    ]
