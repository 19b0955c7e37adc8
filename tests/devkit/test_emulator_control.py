"""The emulator's own contract: authorization, request log, control API, latency and reset."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from devkit.identity import TokenIssuer
from devkit.stack import DevStack
from devkit.topic_sink import EVENTGRID_AUDIENCE
from tests.conditions import wait_until
from tests.devkit.arm_session import ArmSession

pytestmark = pytest.mark.integration

API = {"api-version": "2023-04-01"}


def _get(stack: DevStack, path: str, headers: dict[str, str]) -> requests.Response:
    assert stack.ca is not None
    url = f"{stack.aml.url}{stack.aml.workspace_id}{path}"
    return requests.get(
        url, params={"api-version": "2023-04-01"}, headers=headers, verify=str(stack.ca.ca_path), timeout=5
    )


def test_arm_calls_need_a_token_from_the_devkit_endpoint(stack: DevStack) -> None:
    foreign, _ = TokenIssuer().issue("https://management.azure.com")
    wrong_audience, _ = stack.issuer.issue(EVENTGRID_AUDIENCE)
    good, _ = stack.issuer.issue("https://management.azure.com/")

    assert _get(stack, "/onlineEndpoints", {}).status_code == 401
    assert _get(stack, "/onlineEndpoints", {"Authorization": f"Bearer {foreign}"}).status_code == 401
    assert _get(stack, "/onlineEndpoints", {"Authorization": f"Bearer {wrong_audience}"}).status_code == 401
    response = _get(stack, "/onlineEndpoints", {"Authorization": f"Bearer {good}"})
    assert response.status_code == 200 and response.json() == {"value": []}
    # This test's own requests (the list), whatever a thread an earlier test left behind may still send.
    mine = [r for r in stack.aml.requests(method="GET") if r.path.lower().endswith("/onlineendpoints")]
    assert [r.status for r in mine] == [401, 401, 401, 200]


def test_a_request_in_flight_across_a_reset_is_not_logged_after_it(stack: DevStack) -> None:
    """A test's reset starts a clean request log, even while a request from before it (stalled, say) is answered."""
    good, _ = stack.issuer.issue("https://management.azure.com/")
    stack.aml.stall_requests(30.0, methods=["GET"], path_pattern="/onlineEndpoints$")
    answered: list[int] = []
    caller = threading.Thread(
        target=lambda: answered.append(_get(stack, "/onlineEndpoints", {"Authorization": f"Bearer {good}"}).status_code)
    )
    caller.start()
    wait_until(lambda: stack.aml.request_rules()[0]["hits"] == 1, what="the list to be stalled")
    stack.reset()  # ends the stall: the request is answered under the new state
    caller.join(timeout=10)
    assert answered == [200]
    assert stack.aml.requests() == []
    assert _get(stack, "/onlineEndpoints", {"Authorization": f"Bearer {good}"}).status_code == 200
    assert [r.status for r in stack.aml.requests()] == [200]  # what comes after the reset is logged as ever


def test_unknown_workspace_is_404(stack: DevStack, arm: ArmSession) -> None:
    url = arm.workspace.replace(stack.aml.workspace_name, "someone-elses-ws")
    response = arm.session.get(url, params={"api-version": "2023-04-01"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"


def test_provider_segments_match_case_insensitively(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.seed_model("m", 1)
    url = arm.workspace.replace("Microsoft.MachineLearningServices", "microsoft.machinelearningservices")
    response = arm.session.get(f"{url}/MODELS/m/Versions/1", params={"api-version": "2023-04-01"})
    assert response.status_code == 200
    assert response.json()["properties"]["modelType"] == "mlflow_model"


def test_control_api_over_http_is_not_logged(stack: DevStack, arm: ArmSession) -> None:
    control = f"{stack.aml.url}/_emulator"
    seeded = arm.session.post(
        f"{control}/models",
        json={"name": "churn", "version": "4", "type": "triton_model", "tags": {"ncd": "true"}},
    )
    assert seeded.status_code == 201
    model = arm.call("GET", "/models/churn/versions/4").json()
    assert model["properties"]["modelType"] == "triton_model"
    assert model["properties"]["tags"] == {"ncd": "true"}
    arm.call("PUT", "/onlineEndpoints/ep-ctl", {"location": "eastus", "properties": {"authMode": "Key"}})

    logged = arm.session.get(f"{control}/requests").json()["value"]
    assert [(r["method"], r["is_write"], r["api_version"]) for r in logged] == [
        ("GET", False, "2023-04-01"),
        ("PUT", True, "2023-04-01"),
    ]
    assert arm.session.get(f"{control}/requests/counts").json() == {"reads": 1, "writes": 1, "total": 2}
    state = arm.session.get(f"{control}/state").json()
    assert state["endpoints"]["ep-ctl"]["provisioningState"] == "Creating"

    assert arm.session.put(f"{control}/config", json={"failing_deployments": ["red"]}).status_code == 204
    assert arm.session.post(f"{control}/faults/next", json={"count": 1, "status": 500}).status_code == 204
    assert arm.call("GET", "/onlineEndpoints").status_code == 500
    assert arm.call("GET", "/onlineEndpoints").status_code == 200
    assert arm.session.post(f"{control}/reset").status_code == 204
    assert arm.call("GET", "/models/churn/versions/4").status_code == 404
    assert len(stack.aml.requests()) == 1


def test_latency_is_added_to_every_arm_answer(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_latency(150)
    started = time.monotonic()
    assert arm.call("GET", "/onlineEndpoints").status_code == 200
    assert time.monotonic() - started >= 0.15
    assert stack.aml.requests()[0].duration_ms >= 150


def test_async_operation_urls_report_progress(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_clock(frozen=True)  # emulated time moves only when the test moves it: no race with real time
    stack.aml.set_operation_duration(0.2)
    created = arm.call("PUT", "/onlineEndpoints/ep-lro", {"location": "eastus", "properties": {"authMode": "Key"}})
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    status_url = created.headers["Azure-AsyncOperation"]
    assert "retry-after-ms" in created.headers or "Retry-After" in created.headers
    assert arm.session.get(status_url).json()["status"] == "InProgress"
    assert arm.session.get(created.headers["Location"]).status_code == 202
    stack.aml.advance_clock(0.25)
    assert arm.session.get(status_url).json()["status"] == "Succeeded"
    assert arm.session.get(created.headers["Location"]).json()["name"] == "ep-lro"

    deleted = arm.call("DELETE", "/onlineEndpoints/ep-lro")
    assert deleted.status_code == 202
    assert arm.call("GET", "/onlineEndpoints/ep-lro").json()["properties"]["provisioningState"] == "Deleting"
    stack.aml.advance_clock(0.25)
    assert arm.call("GET", "/onlineEndpoints/ep-lro").status_code == 404
    assert arm.call("DELETE", "/onlineEndpoints/ep-lro").status_code == 204


def test_waits_give_up_naming_what_still_runs_and_ignore_canceled_jobs(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_operation_duration(5)
    stack.aml.set_job_duration(5)
    endpoint = {"location": "eastus", "properties": {"authMode": "Key"}}
    assert arm.call("PUT", "/onlineEndpoints/ep-slow", endpoint).status_code == 201
    assert arm.call("PUT", "/jobs/job-slow", {"properties": {"jobType": "Command"}}).status_code == 201

    with pytest.raises(TimeoutError, match=r"^1 operations still in progress$"):
        stack.aml.wait_idle(timeout_s=0.2)
    with pytest.raises(TimeoutError, match=r"^1 jobs still running$"):
        stack.aml.wait_jobs(timeout_s=0.2)

    assert arm.call("POST", "/jobs/job-slow/cancel").status_code == 202
    started = time.monotonic()
    stack.aml.wait_jobs(timeout_s=0.2)
    assert time.monotonic() - started < 0.2


def test_model_versions_list_orders_and_limits(stack: DevStack, arm: ArmSession) -> None:
    for version, created in [
        ("1", "2024-01-01T00:00:00Z"),
        ("2", "2024-03-01T00:00:00Z"),
        ("3", "2024-02-01T00:00:00Z"),
    ]:
        stack.aml.seed_model("m", version, created_at=created)
    url = f"{arm.workspace}/models/m/versions"
    newest = arm.session.get(url, params={"api-version": "2023-08-01-preview", "$orderBy": "createdtime desc"})
    assert [v["name"] for v in newest.json()["value"]] == ["2", "3", "1"]
    oldest_one = arm.session.get(url, params={"api-version": "x", "$orderBy": "createdtime asc", "$top": "1"})
    assert [v["name"] for v in oldest_one.json()["value"]] == ["1"]
    container = arm.call("GET", "/models/m").json()
    assert container["properties"]["latestVersion"] == "2"


def test_fault_rules_states_lag_and_workspaces_over_http(stack: DevStack, arm: ArmSession) -> None:
    control = f"{stack.aml.url}/_emulator"
    endpoint = {"location": "eastus", "properties": {"authMode": "Key"}}
    arm.session.post(f"{control}/models", json={"name": "m", "version": "1"})
    assert arm.call("PUT", "/onlineEndpoints/ep-http", endpoint).status_code == 201
    stack.aml.wait_idle()

    other = arm.session.post(f"{control}/workspaces", json={"name": "team-b"}).json()
    assert other == {"id": stack.aml.workspace_id.replace(stack.aml.workspace_name, "team-b"), "location": "eastus"}
    taken = arm.session.put(f"{stack.aml.url}{other['id']}/onlineEndpoints/ep-http", json=endpoint, params=API)
    assert taken.status_code == 400 and "unique within a region" in taken.json()["error"]["message"]

    deny = arm.session.post(f"{control}/faults/deny", json={"status": 403, "methods": ["GET"], "count": 1})
    assert deny.status_code == 201
    assert arm.call("GET", "/onlineEndpoints/ep-http").json()["error"]["code"] == "AuthorizationFailed"
    rules = arm.session.get(f"{control}/faults/rules").json()["value"]
    assert [(r["id"], r["kind"], r["hits"], r["active"]) for r in rules] == [(deny.json()["id"], "deny", 1, False)]
    assert arm.session.delete(f"{control}/faults/rules/{deny.json()['id']}").status_code == 204
    assert arm.session.get(f"{control}/faults/rules").json()["value"] == []

    arm.session.post(f"{control}/faults/fail", json={"status": 503, "path_pattern": "/onlineEndpoints$", "count": 1})
    assert arm.call("GET", "/onlineEndpoints").status_code == 503
    arm.session.post(f"{control}/faults/deletes", json={"endpoint": "ep-http", "status": 500, "count": 1})
    assert arm.call("DELETE", "/onlineEndpoints/ep-http").status_code == 500
    arm.session.post(f"{control}/faults/stall", json={"seconds": 0.5, "methods": ["GET"]})
    started = time.monotonic()
    assert arm.call("GET", "/onlineEndpoints/ep-http").status_code == 200
    assert time.monotonic() - started >= 0.5

    next_op = {"endpoint": "ep-http", "deployment": "blue", "state": "Canceled"}
    assert arm.session.post(f"{control}/states/next", json=next_op).status_code == 204
    deployment = {
        "location": "eastus",
        "properties": {
            "endpointComputeType": "Managed",
            "instanceType": "Standard_F4s_v2",
            "model": f"{stack.aml.workspace_id}/models/m/versions/1",
        },
    }
    assert arm.call("PUT", "/onlineEndpoints/ep-http/deployments/blue", deployment).status_code == 201
    stack.aml.wait_idle()
    blue = arm.call("GET", "/onlineEndpoints/ep-http/deployments/blue").json()
    assert blue["properties"]["provisioningState"] == "Canceled"
    assert arm.session.put(f"{control}/states", json={"endpoint": "ep-http", "state": "Failed"}).status_code == 204
    assert arm.call("GET", "/onlineEndpoints/ep-http").json()["properties"]["provisioningState"] == "Failed"
    bad_state = arm.session.put(f"{control}/states", json={"endpoint": "ep-http", "state": "Scaling", "seconds": 1})
    assert bad_state.status_code == 400 and "Scaling" in bad_state.json()["error"]["message"]

    assert arm.session.put(f"{control}/models/lag", json={"seconds": 30}).status_code == 204
    arm.session.post(f"{control}/models", json={"name": "m", "version": "2"})
    assert arm.call("GET", "/models/m/versions/2").status_code == 404
    assert arm.call("GET", "/models/m/versions/1").status_code == 200

    assert arm.session.put(f"{control}/config", json={"endpoint_name_hold_s": 5}).status_code == 204
    assert stack.aml.names.hold_after_delete_s == 5
    assert arm.session.post(f"{control}/reset").status_code == 204
    assert arm.session.get(f"{stack.aml.url}{other['id']}", params=API).status_code == 404
