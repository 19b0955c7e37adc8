"""The real azure-ai-ml MLClient, authenticated through the local token endpoint, against the AML emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError

from devkit.stack import DevStack
from tests.conditions import wait_until

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

pytestmark = pytest.mark.integration

MODEL = "credit_default.sklearn"  # model names often contain '_' and '.'


def _endpoint(name: str) -> ManagedOnlineEndpoint:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    return ManagedOnlineEndpoint(name=name, auth_mode="key")


def _deployment(name: str, endpoint: str, version: str = "1") -> ManagedOnlineDeployment:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=endpoint,
        model=f"azureml:{MODEL}:{version}",
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )


def test_no_code_rollout_lifecycle(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1, "mlflow_model", {"stage": "production"})

    endpoint = ml_client.online_endpoints.begin_create_or_update(_endpoint("credit-ep")).result()
    assert endpoint.provisioning_state == "Succeeded"
    assert endpoint.auth_mode == "key"

    deployment = ml_client.online_deployments.begin_create_or_update(_deployment("blue", "credit-ep")).result()
    assert deployment.provisioning_state == "Succeeded"
    assert deployment.model.endswith(f"/models/{MODEL}/versions/1")

    endpoint = ml_client.online_endpoints.get("credit-ep")
    endpoint.traffic = {"blue": 100}
    endpoint = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    assert endpoint.traffic == {"blue": 100}

    assert [d.name for d in ml_client.online_deployments.list("credit-ep")] == ["blue"]
    assert [e.name for e in ml_client.online_endpoints.list()] == ["credit-ep"]
    logs = ml_client.online_deployments.get_logs("blue", "credit-ep", lines=3)
    assert len(logs.strip().splitlines()) == 3
    assert "Scoring server ready" in logs
    assert ml_client.online_endpoints.get_keys("credit-ep").primary_key

    ml_client.online_endpoints.begin_delete("credit-ep").result()
    assert list(ml_client.online_endpoints.list()) == []
    assert stack.aml.deployment_state("credit-ep", "blue") is None


def test_every_arm_call_carries_a_devkit_token(stack: DevStack, ml_client: MLClient) -> None:
    list(ml_client.online_endpoints.list())
    assert stack.aml.requests(path_contains="/onlineEndpoints")
    assert all(r.status == 200 for r in stack.aml.requests())
    assert [t.resource for t in stack.identity.requests] == ["https://management.azure.com"]  # type: ignore[union-attr]


def test_latest_model_is_the_most_recently_created(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, "10", "mlflow_model", created_at="2024-01-01T00:00:00Z")
    stack.aml.seed_model(MODEL, "9", "triton_model", {"stage": "canary"}, created_at="2024-06-01T00:00:00Z")

    latest = ml_client.models.get(MODEL, label="latest")
    assert latest.version == "9"
    assert latest.type == "triton_model"
    assert latest.tags == {"stage": "canary"}
    assert ml_client.models.get(MODEL, "10").type == "mlflow_model"
    listed = stack.aml.requests(path_contains="/versions")[0]
    assert listed.method == "GET" and listed.path.endswith(f"/models/{MODEL}/versions")
    assert (listed.query["$orderBy"], listed.query["$top"]) == ("createdtime desc", "1")


def test_write_while_an_operation_runs_is_a_409(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1)
    stack.aml.set_operation_duration(1.5)
    poller = ml_client.online_endpoints.begin_create_or_update(_endpoint("busy-ep"))
    try:
        with pytest.raises(HttpResponseError) as again:
            ml_client.online_endpoints.begin_create_or_update(_endpoint("busy-ep"))
        assert again.value.status_code == 409
        assert "Creating provisioning state" in str(again.value)

        with pytest.raises(HttpResponseError) as early_deployment:
            ml_client.online_deployments.begin_create_or_update(_deployment("blue", "busy-ep"))
        assert early_deployment.value.status_code == 409
    finally:
        poller.result()
    assert ml_client.online_endpoints.get("busy-ep").provisioning_state == "Succeeded"

    deploying = ml_client.online_deployments.begin_create_or_update(_deployment("blue", "busy-ep"))
    try:
        endpoint = ml_client.online_endpoints.get("busy-ep")
        endpoint.tags = {"owner": "someone"}
        with pytest.raises(HttpResponseError) as during_deployment:
            ml_client.online_endpoints.begin_create_or_update(endpoint)
        assert during_deployment.value.status_code == 409
        assert "online deployment 'blue' is in Creating provisioning state" in str(during_deployment.value)
    finally:
        deploying.result()


def test_injected_throttling_is_retried_by_the_sdk(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1)
    stack.aml.inject_faults(retry_after_s=0.1, path_pattern="/models/")
    stack.aml.fail_next(2, 429)

    model = ml_client.models.get(MODEL, "1")

    assert model.version == "1"
    assert [r.status for r in stack.aml.requests(path_contains="/models/")] == [429, 429, 200]


def test_random_throttling_is_seeded_and_survivable(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1)
    stack.aml.inject_faults(rate_429=0.3, retry_after_s=0.05, seed=7, methods=["GET"])

    for _ in range(6):
        assert ml_client.models.get(MODEL, "1").version == "1"

    statuses = [r.status for r in stack.aml.requests(path_contains="/models/")]
    assert statuses.count(200) == 6
    assert 429 in statuses
    first_run = statuses
    stack.aml.clear_requests()
    stack.aml.inject_faults(rate_429=0.3, retry_after_s=0.05, seed=7, methods=["GET"])
    for _ in range(6):
        ml_client.models.get(MODEL, "1")
    assert [r.status for r in stack.aml.requests(path_contains="/models/")] == first_run


def test_forced_failure_reads_as_failed_with_error_logs(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1)
    stack.aml.fail_deployments("red")
    ml_client.online_endpoints.begin_create_or_update(_endpoint("fail-ep")).result()

    with pytest.raises(HttpResponseError):
        ml_client.online_deployments.begin_create_or_update(_deployment("red", "fail-ep")).result()

    assert ml_client.online_deployments.get("red", "fail-ep").provisioning_state == "Failed"
    logs = ml_client.online_deployments.get_logs("red", "fail-ep", lines=50)
    assert "ERROR" in logs and "ModuleNotFoundError" in logs
    endpoint = ml_client.online_endpoints.get("fail-ep")
    endpoint.traffic = {"red": 100}
    with pytest.raises(HttpResponseError) as traffic_to_failed:
        ml_client.online_endpoints.begin_create_or_update(endpoint)
    assert traffic_to_failed.value.status_code == 400


def test_traffic_rules(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1)
    ml_client.online_endpoints.begin_create_or_update(_endpoint("rules-ep")).result()
    ml_client.online_deployments.begin_create_or_update(_deployment("blue", "rules-ep")).result()
    ml_client.online_deployments.begin_create_or_update(_deployment("green", "rules-ep")).result()

    for traffic, mirror in [
        ({"ghost": 100}, {}),
        ({"blue": 60, "green": 30}, {}),
        ({"blue": 100}, {"green": 60}),
        ({"blue": 100}, {"blue": 10}),
    ]:
        endpoint = ml_client.online_endpoints.get("rules-ep")
        endpoint.traffic, endpoint.mirror_traffic = traffic, mirror
        with pytest.raises(HttpResponseError) as rejected:
            ml_client.online_endpoints.begin_create_or_update(endpoint)
        assert rejected.value.status_code == 400, (traffic, mirror)

    endpoint = ml_client.online_endpoints.get("rules-ep")
    endpoint.traffic, endpoint.mirror_traffic = {"blue": 100}, {"green": 50}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    for name in ("blue", "green"):
        with pytest.raises(HttpResponseError) as delete_in_use:
            ml_client.online_deployments.begin_delete(name, "rules-ep")
        assert delete_in_use.value.status_code == 400
    state = stack.aml.snapshot()["endpoints"]["rules-ep"]
    assert (state["traffic"], state["mirrorTraffic"]) == ({"blue": 100}, {"green": 50})


def test_custom_model_needs_code_and_environment(stack: DevStack, ml_client: MLClient) -> None:
    stack.aml.seed_model(MODEL, 1, "custom_model")
    ml_client.online_endpoints.begin_create_or_update(_endpoint("custom-ep")).result()
    with pytest.raises(HttpResponseError) as rejected:
        ml_client.online_deployments.begin_create_or_update(_deployment("blue", "custom-ep"))
    assert rejected.value.status_code == 400
    assert "custom_model" in str(rejected.value)


def test_ai_ml_pollers_keep_polling_in_the_background(stack: DevStack, ml_client: MLClient) -> None:
    """Why the app writes through the mgmt SDK: azure-ai-ml's begin_* starts a poller that keeps calling ARM."""
    poller = ml_client.online_endpoints.begin_create_or_update(_endpoint("poll-ep"))
    try:
        # No result() call yet: nobody asked for polling.
        wait_until(lambda: len(stack.aml.requests(path_contains="/mfeOperationsStatus/")) >= 2, what="two polls")
        polls = stack.aml.requests(path_contains="/mfeOperationsStatus/")
        assert len(polls) >= 2
    finally:
        poller.result()
