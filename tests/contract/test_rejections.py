"""The emulator refuses what Azure ML refuses. Each test names the rule's published source.

The first test checks that the contract (the SDK's models, devkit/contract.py) itself states the three ``required``
rules, so those sources are machine-checked; the other two rules are the service's, cited from its documentation.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit.contract import Contract, errors
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession

pytestmark = pytest.mark.integration

MODEL = ("rejections-model", "1")


def _endpoint(auth_mode: str | None = "Key", **props: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {**props}
    if auth_mode is not None:
        properties["authMode"] = auth_mode
    return {"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": properties}


def _deployment(stack: DevStack, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "eastus",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{stack.aml.workspace_id}/models/{MODEL[0]}/versions/{MODEL[1]}",
            "instanceType": "Standard_DS3_v2",
        },
    }
    for key, value in overrides.items():
        target = body if key == "location" else body["properties"]
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    return body


def _ready_endpoint(arm: ArmSession, stack: DevStack, name: str = "ep-rules") -> None:
    stack.aml.seed_model(*MODEL)
    response = arm.call("PUT", f"/onlineEndpoints/{name}", _endpoint())
    assert response.status_code == 201, response.text
    stack.aml.wait_idle()


def _assert_rejected(response: Any, field: str) -> None:
    """AML answers 400 with ARM's error body; the message names the field at fault (camelCase or in words)."""
    assert response.status_code == 400, f"accepted ({response.status_code}); AML rejects it: {response.text[:300]}"
    error = response.json()["error"]
    assert error["code"]
    assert field.lower() in error["message"].lower().replace(" ", ""), error["message"]  # "mirror traffic" names it too


@pytest.mark.parametrize(
    ("operation_id", "field", "body"),
    [
        ("OnlineDeployments_CreateOrUpdate", "location", {"properties": {"endpointComputeType": "Managed"}}),
        ("OnlineDeployments_CreateOrUpdate", "endpointComputeType", {"location": "eastus", "properties": {}}),
        ("OnlineEndpoints_CreateOrUpdate", "authMode", {"location": "eastus", "properties": {}}),
    ],
)
def test_the_contract_requires_these_fields(contract: Contract, operation_id: str, field: str, body: Any) -> None:
    # SDK models: OnlineDeployment/OnlineEndpoint._validation["location"] (TrackedResource in common-types),
    # OnlineDeploymentProperties._validation["endpoint_compute_type"] (the spec's OnlineDeployment.required) and
    # OnlineEndpointProperties._validation["auth_mode"] (the spec's EndpointPropertiesBase.required).
    missing = [v for v in errors(contract.validate_request(operation_id, body)) if v.kind == "required"]

    assert [v.path.rsplit("/", 1)[-1] for v in missing] == [field]


def test_a_deployment_without_location_is_rejected(arm: ArmSession, stack: DevStack) -> None:
    # Spec: OnlineDeploymentTrackedResource is a TrackedResource, whose `required` list is ["location"]
    # (azure-rest-api-specs, specification/common-types/resource-management/v3/types.json, TrackedResource).
    _ready_endpoint(arm, stack)

    response = arm.call("PUT", "/onlineEndpoints/ep-rules/deployments/blue", _deployment(stack, location=None))

    _assert_rejected(response, "location")


def test_a_deployment_without_endpoint_compute_type_is_rejected(arm: ArmSession, stack: DevStack) -> None:
    # Spec: OnlineDeployment lists endpointComputeType as required (2023-04-01 mfe.json, definitions/OnlineDeployment);
    # it is also the discriminator that selects ManagedOnlineDeployment or KubernetesOnlineDeployment.
    _ready_endpoint(arm, stack)

    response = arm.call(
        "PUT", "/onlineEndpoints/ep-rules/deployments/blue", _deployment(stack, endpointComputeType=None)
    )

    _assert_rejected(response, "endpointComputeType")


def test_an_endpoint_without_auth_mode_is_rejected(arm: ArmSession) -> None:
    # Spec: EndpointPropertiesBase lists authMode (key or AML token) as required (2023-04-01 mfe.json,
    # definitions/EndpointPropertiesBase, the base of OnlineEndpoint).
    response = arm.call("PUT", "/onlineEndpoints/ep-noauth", _endpoint(auth_mode=None))

    _assert_rejected(response, "authMode")


def test_an_unknown_instance_type_is_rejected(arm: ArmSession, stack: DevStack) -> None:
    # Docs: a managed online deployment's instance type is "Required. The VM size to use for the deployment. For
    # the list of supported sizes, see Managed online endpoints SKU list"
    # (https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints, and
    # https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list).
    # The spec types instanceType as a free string, so the rule is the service's, not the schema's.
    _ready_endpoint(arm, stack)

    response = arm.call(
        "PUT", "/onlineEndpoints/ep-rules/deployments/blue", _deployment(stack, instanceType="Standard_NOPE_v9")
    )

    _assert_rejected(response, "instanceType")


def test_mirror_traffic_to_more_than_one_deployment_is_rejected(arm: ArmSession, stack: DevStack) -> None:
    # Docs: "You can mirror traffic to only one deployment in an endpoint." (Safe rollout for online endpoints,
    # "Test the deployment with mirrored traffic", limitations;
    # https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints).
    _ready_endpoint(arm, stack)
    for name in ("blue", "green", "red"):
        response = arm.call("PUT", f"/onlineEndpoints/ep-rules/deployments/{name}", _deployment(stack))
        assert response.status_code == 201, response.text
        stack.aml.wait_idle()

    response = arm.call(
        "PUT",
        "/onlineEndpoints/ep-rules",
        _endpoint(traffic={"blue": 100}, mirrorTraffic={"green": 10, "red": 10}),
    )

    _assert_rejected(response, "mirrorTraffic")
