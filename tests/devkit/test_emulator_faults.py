"""Request-level faults as the real SDKs meet them: stalled writes, 401/403 windows, refused deletes, model read lag."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from devkit.identity import DEVKIT_CLIENT_ID, DEVKIT_PRINCIPAL_ID
from devkit.stack import RESOURCE_GROUP, WORKSPACE_NAME, DevStack
from tests.conditions import wait_until
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient
    from azure.mgmt.machinelearningservices.models import OnlineEndpoint

pytestmark = pytest.mark.integration

RG, WS = RESOURCE_GROUP, WORKSPACE_NAME
AML = "Microsoft.MachineLearningServices"
API = {"api-version": "2023-04-01"}


def _endpoint(traffic: dict[str, int] | None = None) -> OnlineEndpoint:
    from azure.mgmt.machinelearningservices import models

    return models.OnlineEndpoint(
        location="eastus",
        identity=models.ManagedServiceIdentity(type="SystemAssigned"),
        properties=models.OnlineEndpointProperties(auth_mode="Key", traffic=traffic or {}),
    )


def _blue_green(stack: DevStack, mgmt: MachineLearningServicesMgmtClient, endpoint: str) -> None:
    """An endpoint with two succeeded deployments, blue and green, and no traffic."""
    from azure.mgmt.machinelearningservices import models

    stack.aml.seed_model("fraud", 1)
    mgmt.online_endpoints.begin_create_or_update(RG, WS, endpoint, _endpoint(), polling=False)
    stack.aml.wait_idle()
    for name in ("blue", "green"):
        body = models.OnlineDeployment(
            location="eastus",
            sku=models.Sku(name="Default", capacity=1),
            properties=models.ManagedOnlineDeployment(
                model=f"{stack.aml.workspace_id}/models/fraud/versions/1", instance_type="Standard_DS3_v2"
            ),
        )
        mgmt.online_deployments.begin_create_or_update(RG, WS, endpoint, name, body, polling=False)
        stack.aml.wait_idle()


def _traffic(mgmt: MachineLearningServicesMgmtClient, endpoint: str) -> dict[str, int]:
    return dict(mgmt.online_endpoints.get(RG, WS, endpoint).properties.traffic or {})


def test_a_stalled_traffic_put_lands_after_the_writes_served_meanwhile(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _blue_green(stack, mgmt_client, "ep-late")
    rule = stack.aml.stall_requests(1.5, methods=["PUT"], path_pattern="/onlineEndpoints/ep-late$")
    outcome: dict[str, Any] = {}

    def slow_writer() -> None:
        started = time.monotonic()
        endpoint = mgmt_client.online_endpoints.begin_create_or_update(
            RG, WS, "ep-late", _endpoint({"blue": 100}), polling=False
        ).result()
        outcome["traffic"] = dict(endpoint.properties.traffic)
        outcome["seconds"] = time.monotonic() - started

    writer = threading.Thread(target=slow_writer)
    writer.start()
    wait_until(lambda: stack.aml.request_rules()[0]["hits"] == 1, what="the traffic PUT to be stalled")
    assert _traffic(mgmt_client, "ep-late") == {}  # the stalled write has not landed
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-late", _endpoint({"green": 100}), polling=False)
    stack.aml.wait_idle()
    assert _traffic(mgmt_client, "ep-late") == {"green": 100}
    writer.join(timeout=10)

    assert outcome == {"traffic": {"blue": 100}, "seconds": pytest.approx(1.5, abs=0.5)}
    stack.aml.wait_idle()
    assert _traffic(mgmt_client, "ep-late") == {"blue": 100}  # the older write landed last and won
    puts = stack.aml.requests(method="PUT", path_contains="/onlineEndpoints/ep-late")
    assert [(r.rule, r.status) for r in puts[-2:]] == [(None, 200), (rule, 200)]  # logged as they finished
    assert stack.aml.request_rules()[0]["hits"] == 1


def test_apply_then_answer_late_shows_the_write_before_the_caller_hears_back(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _blue_green(stack, mgmt_client, "ep-early")
    stack.aml.stall_requests(1.0, methods=["PUT"], path_pattern="/onlineEndpoints/ep-early$", apply="start")
    writer = threading.Thread(
        target=lambda: mgmt_client.online_endpoints.begin_create_or_update(
            RG, WS, "ep-early", _endpoint({"blue": 100}), polling=False
        )
    )
    writer.start()
    wait_until(lambda: _traffic(mgmt_client, "ep-early") == {"blue": 100}, what="the write to be applied")
    assert writer.is_alive()
    assert _traffic(mgmt_client, "ep-early") == {"blue": 100}
    writer.join(timeout=10)


def test_a_403_window_names_the_missing_permission_then_ends(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient, ml_client: MLClient
) -> None:
    stack.aml.seed_model("fraud", 1)
    stack.aml.set_clock(frozen=True)  # the window runs on the emulator's clock: it ends when the test moves it
    stack.aml.deny_requests(403, seconds=600, path_pattern="/onlineEndpoints|/models/")  # up to 10 min in Azure

    with pytest.raises(HttpResponseError) as denied:
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-rbac", _endpoint(), polling=False)
    assert denied.value.status_code == 403
    assert denied.value.error is not None and denied.value.error.code == "AuthorizationFailed"
    scope = f"{stack.aml.workspace_id}/onlineEndpoints/ep-rbac"
    assert denied.value.error.message == (
        f"The client '{DEVKIT_CLIENT_ID}' with object id '{DEVKIT_PRINCIPAL_ID}' does not have authorization to "
        f"perform action '{AML}/workspaces/onlineEndpoints/write' over scope '{scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials."
    )
    with pytest.raises(HttpResponseError) as read_denied:
        ml_client.models.get("fraud", "1")
    assert f"'{AML}/workspaces/models/versions/read'" in str(read_denied.value)
    assert mgmt_client.workspaces.get(RG, WS).location == "eastus"  # outside the pattern: served

    stack.aml.advance_clock(599)
    assert [rule["active"] for rule in stack.aml.request_rules()] == [True]
    stack.aml.advance_clock(1)  # the role assignment took effect
    assert [rule["active"] for rule in stack.aml.request_rules()] == [False]
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-rbac", _endpoint(), polling=False)
    assert ml_client.models.get("fraud", "1").version == "1"
    assert [r.status for r in stack.aml.requests(method="PUT")] == [403, 201]


def test_401_for_the_next_two_requests_then_served(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    stack.aml.deny_requests(401, count=2, methods=["GET"])
    for _ in range(2):
        with pytest.raises(ClientAuthenticationError) as expired:
            list(mgmt_client.online_endpoints.list(RG, WS))
        assert expired.value.error is not None and expired.value.error.code == "InvalidAuthenticationToken"
    assert list(mgmt_client.online_endpoints.list(RG, WS)) == []
    assert [(r.status, r.injected) for r in stack.aml.requests()] == [(401, True), (401, True), (200, False)]


@pytest.mark.parametrize(("status", "code"), [(409, "Conflict"), (500, "InternalServerError")])
def test_a_chosen_delete_fails_twice_then_goes_through(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient, status: int, code: str
) -> None:
    _blue_green(stack, mgmt_client, "ep-del")
    stack.aml.fail_deletes("ep-del", "blue", status=status, count=2)

    for _ in range(2):
        with pytest.raises(HttpResponseError) as refused:
            mgmt_client.online_deployments.begin_delete(RG, WS, "ep-del", "blue", polling=False)
        assert refused.value.status_code == status
        assert refused.value.error is not None and refused.value.error.code == code
    assert mgmt_client.online_deployments.get(RG, WS, "ep-del", "blue").properties.provisioning_state == "Succeeded"
    mgmt_client.online_deployments.begin_delete(RG, WS, "ep-del", "green", polling=False)  # another one: served
    stack.aml.wait_idle()
    mgmt_client.online_deployments.begin_delete(RG, WS, "ep-del", "blue", polling=False)
    stack.aml.wait_idle()
    assert list(mgmt_client.online_deployments.list(RG, WS, "ep-del")) == []


def test_a_delete_refused_with_403_every_time_until_cleared(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    _blue_green(stack, mgmt_client, "ep-keep")
    rule = stack.aml.fail_deletes("ep-keep", "green", status=403)
    for _ in range(3):
        with pytest.raises(HttpResponseError) as refused:
            mgmt_client.online_deployments.begin_delete(RG, WS, "ep-keep", "green", polling=False)
        assert f"'{AML}/workspaces/onlineEndpoints/deployments/delete'" in str(refused.value)
    stack.aml.clear_rule(rule)
    mgmt_client.online_deployments.begin_delete(RG, WS, "ep-keep", "green", polling=False)
    stack.aml.wait_idle()
    assert stack.aml.deployment_state("ep-keep", "green") is None


def test_a_new_model_version_is_not_readable_during_the_lag(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient, ml_client: MLClient
) -> None:
    from azure.mgmt.machinelearningservices import models

    stack.aml.seed_model("old", 1)  # registered before the lag: readable
    stack.aml.set_model_read_lag(1.0, name="churn")
    mgmt_client.model_versions.create_or_update(
        RG, WS, "churn", "1", models.ModelVersion(properties=models.ModelVersionProperties(model_type="mlflow_model"))
    )
    assert [e["eventType"] for e in stack.aml.take_events()] == [f"{AML}.ModelRegistered"]
    with pytest.raises(ResourceNotFoundError):
        ml_client.models.get("churn", "1")
    assert ml_client.models.get("old", "1").version == "1"

    stack.aml.advance_clock(1.05)
    assert ml_client.models.get("churn", "1").type == "mlflow_model"


def test_a_rule_can_pick_the_nth_matching_request(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    stack.aml.fail_requests(503, methods=["GET"], path_pattern="/onlineEndpoints$", nth=2, count=1)
    list(mgmt_client.online_endpoints.list(RG, WS))
    mgmt_client.workspaces.get(RG, WS)  # not matched: does not count
    with pytest.raises(HttpResponseError) as second:
        list(mgmt_client.online_endpoints.list(RG, WS))
    assert second.value.status_code == 503
    assert list(mgmt_client.online_endpoints.list(RG, WS)) == []
    assert [r.status for r in stack.aml.requests()] == [200, 200, 503, 200]


def test_a_stalled_write_lands_even_when_the_client_gave_up(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.stall_requests(1.0, methods=["PUT"])
    body = {"location": "eastus", "properties": {"authMode": "Key"}}
    with pytest.raises(requests.Timeout):
        arm.session.put(f"{arm.workspace}/onlineEndpoints/ep-gone", json=body, params=API, timeout=0.3)
    assert stack.aml.endpoint_state("ep-gone") is None
    stack.aml.release_stalls()
    wait_until(lambda: stack.aml.endpoint_state("ep-gone") is not None, what="the stalled PUT to land")
    assert stack.aml.endpoint_state("ep-gone") is not None  # ARM applied it: the caller never heard back
