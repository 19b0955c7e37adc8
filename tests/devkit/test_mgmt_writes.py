"""Writes through azure-mgmt-machinelearningservices with polling=False: one request each, nothing after."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError

from devkit.stack import RESOURCE_GROUP, WORKSPACE_NAME, DevStack
from tests.conditions import pollers_left, wait_until
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient
    from azure.mgmt.machinelearningservices.models import OnlineDeployment, OnlineEndpoint

pytestmark = pytest.mark.integration

RG, WS = RESOURCE_GROUP, WORKSPACE_NAME
QUIET_PERIOD_S = 2.0


def _endpoint_body(traffic: dict[str, int] | None = None) -> OnlineEndpoint:
    from azure.mgmt.machinelearningservices import models

    return models.OnlineEndpoint(
        location="eastus",
        identity=models.ManagedServiceIdentity(type="SystemAssigned"),
        properties=models.OnlineEndpointProperties(auth_mode="Key", traffic=traffic or {}),
    )


def _deployment_body(stack: DevStack, model: str, version: str) -> OnlineDeployment:
    from azure.mgmt.machinelearningservices import models

    return models.OnlineDeployment(
        location="eastus",
        sku=models.Sku(name="Default", capacity=1),
        properties=models.ManagedOnlineDeployment(
            model=f"{stack.aml.workspace_id}/models/{model}/versions/{version}", instance_type="Standard_DS3_v2"
        ),
    )


def test_writes_with_polling_false_send_one_request_and_nothing_after(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    from azure.mgmt.machinelearningservices import models

    stack.aml.seed_model("fraud.model", 3)
    writes = [
        ("PUT", "/onlineEndpoints/ep-mgmt", 201),
        ("PUT", "/onlineEndpoints/ep-mgmt/deployments/blue", 201),
        ("PUT", "/onlineEndpoints/ep-mgmt", 200),
        ("PATCH", "/onlineEndpoints/ep-mgmt", 202),
        ("PUT", "/onlineEndpoints/ep-mgmt", 200),
        ("DELETE", "/onlineEndpoints/ep-mgmt/deployments/blue", 202),
    ]
    calls = [
        lambda: mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-mgmt", _endpoint_body(), polling=False),
        lambda: mgmt_client.online_deployments.begin_create_or_update(
            RG, WS, "ep-mgmt", "blue", _deployment_body(stack, "fraud.model", "3"), polling=False
        ),
        lambda: mgmt_client.online_endpoints.begin_create_or_update(
            RG, WS, "ep-mgmt", _endpoint_body({"blue": 100}), polling=False
        ),
        lambda: mgmt_client.online_endpoints.begin_update(
            RG, WS, "ep-mgmt", models.PartialMinimalTrackedResourceWithIdentity(tags={"rollout": "r1"}), polling=False
        ),
        lambda: mgmt_client.online_endpoints.begin_create_or_update(
            RG, WS, "ep-mgmt", _endpoint_body({}), polling=False
        ),
        lambda: mgmt_client.online_deployments.begin_delete(RG, WS, "ep-mgmt", "blue", polling=False),
    ]
    for (method, path, status), call in zip(writes, calls, strict=True):
        stack.aml.clear_requests()
        started = time.monotonic()
        poller = call()
        assert poller.done()
        assert time.monotonic() - started < 1.0
        logged = stack.aml.requests()
        assert [(r.method, r.path.removeprefix(stack.aml.workspace_id), r.status) for r in logged] == [
            (method, path, status)
        ]
        assert logged[0].api_version == "2023-04-01"
        stack.aml.wait_idle()
        if method == "PATCH":
            assert stack.aml.endpoint_state("ep-mgmt")["tags"] == {"rollout": "r1"}  # type: ignore[index]

    stack.aml.clear_requests()
    wait_until(lambda: not pollers_left(), timeout_s=QUIET_PERIOD_S, what="every SDK poller to end")
    assert stack.aml.requests() == []
    assert stack.aml.deployment_state("ep-mgmt", "blue") is None
    assert stack.aml.endpoint_state("ep-mgmt")["properties"]["traffic"] == {}  # type: ignore[index]


def test_state_advances_without_any_polling(stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient) -> None:
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-lazy", _endpoint_body(), polling=False)
    assert mgmt_client.online_endpoints.get(RG, WS, "ep-lazy").properties.provisioning_state == "Creating"
    stack.aml.advance_clock(stack.aml.operation_duration_s + 0.05)
    assert mgmt_client.online_endpoints.get(RG, WS, "ep-lazy").properties.provisioning_state == "Succeeded"


def test_conflict_and_missing_endpoint(stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient) -> None:
    stack.aml.seed_model("m", 1)
    with pytest.raises(HttpResponseError) as missing:
        mgmt_client.online_deployments.begin_create_or_update(
            RG, WS, "no-such-ep", "blue", _deployment_body(stack, "m", "1"), polling=False
        )
    assert missing.value.status_code == 404

    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-busy", _endpoint_body(), polling=False)
    with pytest.raises(HttpResponseError) as conflict:
        mgmt_client.online_endpoints.begin_delete(RG, WS, "ep-busy", polling=False)
    assert conflict.value.status_code == 409
    assert conflict.value.error is not None and conflict.value.error.code == "Conflict"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("ab", 400),
        ("1starts-with-digit", 400),
        ("ends-with-hyphen-", 400),
        ("under_score", 400),
        ("a" * 33, 400),
        ("a" * 32, 201),
        ("Abc-123", 201),
    ],
)
def test_endpoint_names_follow_the_sdk_rule(stack: DevStack, arm: ArmSession, name: str, status: int) -> None:
    response = arm.call("PUT", f"/onlineEndpoints/{name}", {"location": "eastus", "properties": {"authMode": "Key"}})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"]["code"] == "BadArgument"


def test_injected_500_only_hits_the_chosen_methods(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    stack.aml.inject_faults(rate_500=1.0, methods=["PUT"])
    with pytest.raises(HttpResponseError) as failed:
        mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-500", _endpoint_body(), polling=False)
    assert failed.value.status_code == 500
    assert list(mgmt_client.online_endpoints.list(RG, WS)) == []
    stack.aml.clear_faults()
    mgmt_client.online_endpoints.begin_create_or_update(RG, WS, "ep-500", _endpoint_body(), polling=False)
    assert [r.status for r in stack.aml.requests(method="PUT")] == [500, 201]
    assert stack.aml.requests(method="PUT")[0].injected


def test_jobs_progress_and_can_be_forced_to_fail(
    stack: DevStack, mgmt_client: MachineLearningServicesMgmtClient
) -> None:
    from azure.mgmt.machinelearningservices import models

    stack.aml.fail_jobs("bad-job")

    def submit(name: str) -> None:
        job = models.JobBase(
            properties=models.CommandJob(command="python train.py", environment_id="azureml:sklearn-env:1")
        )
        mgmt_client.jobs.create_or_update(RG, WS, name, job)

    submit("good-job")
    submit("bad-job")
    assert mgmt_client.jobs.get(RG, WS, "good-job").properties.status in {"Starting", "Running"}
    stack.aml.advance_clock(stack.aml.job_duration_s + 0.05)
    assert mgmt_client.jobs.get(RG, WS, "good-job").properties.status == "Completed"
    assert mgmt_client.jobs.get(RG, WS, "bad-job").properties.status == "Failed"
    assert sorted(str(j.name) for j in mgmt_client.jobs.list(RG, WS)) == ["bad-job", "good-job"]
