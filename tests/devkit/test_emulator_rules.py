"""Azure's rules and provisioning states as the real SDKs meet them: region-unique names, required fields, SKUs,
one mirror, and the Failed, Canceled and Scaling states on request."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError

from devkit.aml_emulator.rules import MANAGED_ONLINE_SKUS
from devkit.stack import RESOURCE_GROUP, WORKSPACE_NAME, DevStack
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineDeployment
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient
    from azure.mgmt.machinelearningservices.models import OnlineEndpoint

pytestmark = pytest.mark.integration

RG, WS = RESOURCE_GROUP, WORKSPACE_NAME
MODEL = "credit"
REGION_MESSAGE = (
    "There is already an endpoint with this name, Endpoint name needs to be unique within a region. "
    "Try some other name."
)


def _endpoint(location: str = "eastus") -> OnlineEndpoint:
    from azure.mgmt.machinelearningservices import models

    return models.OnlineEndpoint(location=location, properties=models.OnlineEndpointProperties(auth_mode="Key"))


def _deployment(name: str, endpoint: str, instance_type: str = "Standard_DS3_v2") -> ManagedOnlineDeployment:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    return ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint, model=f"azureml:{MODEL}:1", instance_type=instance_type, instance_count=1
    )


def _ready_endpoint(stack: DevStack, ml_client: MLClient, name: str, *deployments: str) -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    stack.aml.seed_model(MODEL, 1)
    ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    for deployment in deployments:
        ml_client.online_deployments.begin_create_or_update(_deployment(deployment, name)).result()


def _validation_errors(err: HttpResponseError) -> dict[str, list[str]]:
    assert err.status_code == 400 and err.error is not None and err.error.code == "UserError"
    return dict(json.loads(str(err.error.message))["errors"])


# ---------------------------------------------------------------------- endpoint names, per region


def test_endpoint_names_are_unique_per_region_across_workspaces(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    team_b = stack.aml.add_workspace("team-b")
    stack.aml.add_workspace("team-west", location="westus")
    mgmt_client.online_endpoints.begin_create_or_update(RG, "team-b", "credit", _endpoint(), polling=False)

    with pytest.raises(HttpResponseError) as taken:
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "Credit", _endpoint(), polling=False)
    assert _validation_errors(taken.value) == {"": [REGION_MESSAGE]}
    mgmt_client.online_endpoints.begin_create_or_update(RG, "team-west", "credit", _endpoint("westus"), polling=False)
    team_b.wait_idle()
    mgmt_client.online_endpoints.begin_create_or_update(RG, "team-b", "credit", _endpoint(), polling=False)  # update

    assert [e.name for e in mgmt_client.online_endpoints.list(RG, "team-b")] == ["credit"]
    assert list(mgmt_client.online_endpoints.list(RG, WS)) == []
    assert stack.aml.names.holder("East US", "CREDIT") == team_b.workspace_id


def test_a_deleted_endpoint_name_is_held_for_a_while(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    team_b = stack.aml.add_workspace("team-b")
    stack.aml.set_endpoint_name_hold(1.0)
    mgmt_client.online_endpoints.begin_create_or_update(RG, "team-b", "churn", _endpoint(), polling=False)
    team_b.wait_idle()
    mgmt_client.online_endpoints.begin_delete(RG, "team-b", "churn", polling=False)
    team_b.wait_idle()

    with pytest.raises(HttpResponseError) as held:
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "churn", _endpoint(), polling=False)
    assert _validation_errors(held.value) == {"": [REGION_MESSAGE]}
    stack.aml.advance_clock(1.05)
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "churn", _endpoint(), polling=False)
    assert stack.aml.names.holder("eastus", "churn") == stack.aml.workspace_id


# ---------------------------------------------------------------------- required fields, SKUs, mirror


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/onlineEndpoints/ep-x", {"properties": {"authMode": "Key"}}, "Location"),
        ("/onlineEndpoints/ep-x", {"location": "eastus", "properties": {}}, "Properties.AuthMode"),
        (
            "/onlineEndpoints/ep-ok/deployments/blue",
            {"properties": {"endpointComputeType": "Managed", "instanceType": "Standard_DS3_v2"}},
            "Location",
        ),
        (
            "/onlineEndpoints/ep-ok/deployments/blue",
            {"location": "eastus", "properties": {"instanceType": "Standard_DS3_v2"}},
            "Properties.EndpointComputeType",
        ),
        (
            "/onlineEndpoints/ep-ok/deployments/blue",
            {"location": "eastus", "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_XL9"}},
            "Properties.InstanceType",
        ),
    ],
)
def test_incomplete_bodies_are_refused_naming_the_field(
    stack: DevStack, arm: ArmSession, path: str, body: dict[str, object], field: str
) -> None:
    # Raw calls: both SDKs refuse a missing location or authMode before sending anything.
    stack.aml.seed_model(MODEL, 1)
    assert arm.call("PUT", "/onlineEndpoints/ep-ok", {"location": "eastus", "properties": {"authMode": "Key"}}).ok
    stack.aml.wait_idle()
    model = f"{stack.aml.workspace_id}/models/{MODEL}/versions/1"
    body = {**body, "properties": {**body["properties"], "model": model}} if "deployments" in path else body  # type: ignore[dict-item]

    response = arm.call("PUT", path, body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "UserError"
    assert list(json.loads(error["message"])["errors"]) == [field]


def test_an_unknown_instance_type_is_refused_through_the_sdk(
    stack: DevStack, ml_client: MLClient, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _ready_endpoint(stack, ml_client, "sku-ep")
    with pytest.raises(HttpResponseError) as refused:
        ml_client.online_deployments.begin_create_or_update(_deployment("blue", "sku-ep", "Standard_DS3_v3"))
    assert "Instance type 'Standard_DS3_v3' is not supported" in str(refused.value)
    deployment = ml_client.online_deployments.begin_create_or_update(
        _deployment("blue", "sku-ep", "standard_nc24ads_a100_v4")  # the SKU list is case-insensitive
    ).result()
    assert deployment.provisioning_state == "Succeeded"
    assert {"standard_ds3_v2", "standard_f4s_v2", "standard_nc96ads_a100_v4"} <= MANAGED_ONLINE_SKUS


def test_mirror_traffic_goes_to_one_deployment_only(stack: DevStack, ml_client: MLClient) -> None:
    _ready_endpoint(stack, ml_client, "mirror-ep", "blue", "green", "red")
    endpoint = ml_client.online_endpoints.get("mirror-ep")
    endpoint.traffic, endpoint.mirror_traffic = {"blue": 100}, {"green": 10, "red": 10}
    with pytest.raises(HttpResponseError) as refused:
        ml_client.online_endpoints.begin_create_or_update(endpoint)
    assert refused.value.status_code == 400
    assert "one deployment only; it names 2: green, red" in str(refused.value)
    endpoint.mirror_traffic = {"green": 10}
    assert ml_client.online_endpoints.begin_create_or_update(endpoint).result().mirror_traffic == {"green": 10}


# ---------------------------------------------------------------------- provisioning states on request


def test_a_failed_endpoint_refuses_deployments_and_recovers_on_a_re_put(
    stack: DevStack, ml_client: MLClient, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _ready_endpoint(stack, ml_client, "sick-ep")
    stack.aml.set_provisioning_state("sick-ep", state="Failed")
    assert mgmt_client.online_endpoints.get(RG, WS, "sick-ep").properties.provisioning_state == "Failed"
    with pytest.raises(HttpResponseError) as refused:
        ml_client.online_deployments.begin_create_or_update(_deployment("blue", "sick-ep"))
    assert refused.value.status_code == 400 and "Failed provisioning state" in str(refused.value)

    endpoint = mgmt_client.online_endpoints.get(RG, WS, "sick-ep")
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "sick-ep", endpoint).result()
    assert mgmt_client.online_endpoints.get(RG, WS, "sick-ep").properties.provisioning_state == "Succeeded"


def test_an_endpoint_update_can_end_failed(stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient) -> None:
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "flaky-ep", _endpoint()).result()
    stack.aml.end_next_operations("flaky-ep", state="Failed")
    with pytest.raises(HttpResponseError):
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "flaky-ep", _endpoint()).result()
    assert mgmt_client.online_endpoints.get(RG, WS, "flaky-ep").properties.provisioning_state == "Failed"
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "flaky-ep", _endpoint()).result()
    assert mgmt_client.online_endpoints.get(RG, WS, "flaky-ep").properties.provisioning_state == "Succeeded"


def test_a_deployment_ends_canceled_then_a_retry_succeeds(stack: DevStack, ml_client: MLClient) -> None:
    _ready_endpoint(stack, ml_client, "cancel-ep")
    stack.aml.end_next_operations("cancel-ep", "blue", state="Canceled")
    with pytest.raises(HttpResponseError, match="canceled"):
        ml_client.online_deployments.begin_create_or_update(_deployment("blue", "cancel-ep")).result()
    assert ml_client.online_deployments.get("blue", "cancel-ep").provisioning_state == "Canceled"

    retried = ml_client.online_deployments.begin_create_or_update(_deployment("blue", "cancel-ep")).result()
    assert retried.provisioning_state == "Succeeded"


def test_a_scaling_deployment_keeps_the_endpoint_busy_for_a_while(
    stack: DevStack, ml_client: MLClient, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _ready_endpoint(stack, ml_client, "scale-ep", "blue")
    with pytest.raises(ValueError, match="Scaling"):
        stack.aml.set_provisioning_state("scale-ep", state="Scaling", seconds=1)  # not an endpoint state
    stack.aml.set_provisioning_state("scale-ep", "blue", state="Scaling", seconds=1.0)

    assert ml_client.online_deployments.get("blue", "scale-ep").provisioning_state == "Scaling"
    endpoint = mgmt_client.online_endpoints.get(RG, WS, "scale-ep")
    with pytest.raises(HttpResponseError) as busy:
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "scale-ep", endpoint, polling=False)
    assert busy.value.status_code == 409 and "Scaling provisioning state" in str(busy.value)

    stack.aml.advance_clock(1.05)
    assert ml_client.online_deployments.get("blue", "scale-ep").provisioning_state == "Succeeded"
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "scale-ep", endpoint, polling=False)


def test_waiting_for_idle_covers_every_workspace_served(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    # The harness ticks "until settled" through the host's wait_idle; a second workspace's operations must count.
    team_b = stack.aml.add_workspace("team-b")
    stack.aml.set_clock(frozen=True)  # emulated time moves only when the test moves it: no race with real time
    team_b.set_operation_duration(0.5)
    mgmt_client.online_endpoints.begin_create_or_update(RG, "team-b", "credit", _endpoint(), polling=False)
    assert team_b.endpoint_state("credit")["properties"]["provisioningState"] == "Creating"

    stack.aml.wait_idle()

    assert team_b.endpoint_state("credit")["properties"]["provisioningState"] == "Succeeded"
