"""Scoring an emulated endpoint with the real requests client: auth, deployment routing, traffic and mirror."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from devkit.aml_emulator.scoring import INFERENCE_AUDIENCE
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration

SAMPLE = {"input_data": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}


def _keys(arm: ArmSession, endpoint: str) -> tuple[str, str]:
    keys = arm.call("POST", f"/onlineEndpoints/{endpoint}/listKeys").json()
    return keys["primaryKey"], keys["secondaryKey"]


def _client(stack: DevStack, credential: str | None) -> requests.Session:
    assert stack.ca is not None
    session = requests.Session()
    session.verify = str(stack.ca.ca_path)
    if credential is not None:
        session.headers["Authorization"] = f"Bearer {credential}"
    return session


def test_key_endpoint_scores_with_either_key_and_401_otherwise(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(stack, arm, "ep-key", {"blue": {}}, traffic={"blue": 100})
    uri = body["properties"]["scoringUri"]
    assert uri == f"{stack.aml.url}/inference/ep-key/score"
    assert body["properties"]["swaggerUri"] == f"{stack.aml.url}/inference/ep-key/swagger.json"
    primary, secondary = _keys(arm, "ep-key")

    for key in (primary, secondary):
        answer = _client(stack, key).post(uri, json=SAMPLE, timeout=5)
        assert answer.status_code == 200
        assert answer.headers["azureml-model-deployment"] == "blue"
        assert answer.json()["model"] == "model-blue:1"
        assert len(answer.json()["predictions"]) == 2
    again = _client(stack, primary).post(uri, json=SAMPLE, timeout=5).json()
    assert again["input_sha256"] == answer.json()["input_sha256"]  # deterministic echo of the input

    assert _client(stack, None).post(uri, json=SAMPLE, timeout=5).status_code == 401
    assert _client(stack, primary + "x").post(uri, json=SAMPLE, timeout=5).status_code == 401
    arm_token, _ = stack.issuer.issue("https://management.azure.com")
    assert _client(stack, arm_token).post(uri, json=SAMPLE, timeout=5).status_code == 401
    assert _client(stack, primary).get(body["properties"]["swaggerUri"], timeout=5).json()["swagger"] == "2.0"


def test_aad_token_endpoint_takes_an_entra_token_for_the_inference_audience(stack: DevStack, arm: ArmSession) -> None:
    from azure.identity import DefaultAzureCredential

    body = make_endpoint(stack, arm, "ep-aad", {"blue": {}}, traffic={"blue": 100}, auth_mode="AADToken")
    uri = body["properties"]["scoringUri"]
    token = DefaultAzureCredential().get_token(f"{INFERENCE_AUDIENCE}/.default").token

    assert _client(stack, token).post(uri, json=SAMPLE, timeout=5).status_code == 200
    arm_token, _ = stack.issuer.issue("https://management.azure.com")
    assert _client(stack, arm_token).post(uri, json=SAMPLE, timeout=5).status_code == 401
    assert _client(stack, "not-a-token").post(uri, json=SAMPLE, timeout=5).status_code == 401
    assert arm.call("POST", "/onlineEndpoints/ep-aad/listKeys").status_code == 400


def test_header_routes_to_a_deployment_whatever_its_traffic(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(stack, arm, "ep-route", {"blue": {}, "green": {}}, traffic={"blue": 100})
    client = _client(stack, _keys(arm, "ep-route")[0])
    uri = body["properties"]["scoringUri"]

    for _ in range(5):
        answer = client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "green"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["deployment"] == "green"
    unknown = client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "red"}, timeout=5)
    assert unknown.status_code == 404
    assert "No valid deployments to route to" in unknown.text


def test_no_live_traffic_is_404_and_unknown_endpoint_too(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(stack, arm, "ep-none", {"blue": {}})
    client = _client(stack, _keys(arm, "ep-none")[0])
    answer = client.post(body["properties"]["scoringUri"], json=SAMPLE, timeout=5)
    assert answer.status_code == 404 and "positive weight" in answer.text
    assert client.post(f"{stack.aml.url}/inference/ep-missing/score", json=SAMPLE, timeout=5).status_code == 404


def test_traffic_split_follows_the_live_traffic_and_is_repeatable(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(stack, arm, "ep-split", {"blue": {}, "green": {}}, traffic={"blue": 80, "green": 20})
    client = _client(stack, _keys(arm, "ep-split")[0])
    uri = body["properties"]["scoringUri"]

    def run() -> list[str]:
        stack.aml.configure_scoring(seed=7)
        return [client.post(uri, json=SAMPLE, timeout=5).json()["deployment"] for _ in range(600)]

    first = run()
    counts = Counter(first)
    assert 0.16 < counts["green"] / 600 < 0.24, counts
    assert run() == first  # same seed, same sequence
    stack.aml.configure_scoring(seed=8)
    assert [client.post(uri, json=SAMPLE, timeout=5).json()["deployment"] for _ in range(600)] != first


def test_mirror_traffic_is_copied_and_its_answers_discarded(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(
        stack, arm, "ep-mirror", {"blue": {}, "green": {"emulator.smoke": "fail"}}, {"blue": 100}, {"green": 25}
    )
    client = _client(stack, _keys(arm, "ep-mirror")[0])
    uri = body["properties"]["scoringUri"]
    stack.aml.configure_scoring(seed=3)

    statuses = Counter(client.post(uri, json=SAMPLE, timeout=5).status_code for _ in range(400))
    assert statuses == Counter({200: 400})  # the failing shadow never shows in the answers
    client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "blue"}, timeout=5)

    samples = stack.aml.samples("ep-mirror")
    mirrored = [s for s in samples if s.mirrored]
    assert {s.deployment for s in mirrored} == {"green"}
    assert 0.19 < len(mirrored) / 400 < 0.31
    assert all(s.status == 424 and s.model_status == 500 for s in mirrored)
    assert not samples[-1].mirrored and len(samples) == 401 + len(mirrored)  # header requests are not mirrored


def test_failing_model_answers_424_with_the_model_status(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(
        stack,
        arm,
        "ep-fail",
        {"blue": {}, "green": {"emulator.smoke": "fail", "emulator.fail_status": "400"}},
        traffic={"blue": 100},
    )
    client = _client(stack, _keys(arm, "ep-fail")[0])
    uri = body["properties"]["scoringUri"]
    to_green = {"azureml-model-deployment": "green"}

    answer = client.post(uri, json=SAMPLE, headers=to_green, timeout=5)
    assert answer.status_code == 424
    assert answer.headers["ms-azureml-model-error-statuscode"] == "400"
    assert "scoring script" in answer.json()["message"]

    stack.aml.set_health("ep-fail", "blue", fail_all=True)
    answer = client.post(uri, json=SAMPLE, timeout=5)
    assert (answer.status_code, answer.headers["ms-azureml-model-error-statuscode"]) == (424, "500")
    stack.aml.clear_health("ep-fail", "blue")
    assert client.post(uri, json=SAMPLE, timeout=5).status_code == 200
    bad = client.post(uri, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5)
    assert (bad.status_code, bad.headers["ms-azureml-model-error-statuscode"]) == (424, "400")


def test_deployment_that_is_not_serving_answers_503_then_502(stack: DevStack, arm: ArmSession) -> None:
    body = make_endpoint(stack, arm, "ep-state", {"blue": {}}, traffic={"blue": 100})
    client = _client(stack, _keys(arm, "ep-state")[0])
    uri = body["properties"]["scoringUri"]
    stack.aml.fail_deployments("red")
    stack.aml.set_clock(frozen=True)  # emulated time moves only when the test moves it: no race with real time
    stack.aml.set_operation_duration(0.3)
    model = {
        "endpointComputeType": "Managed",
        "instanceType": "Standard_DS3_v2",
        "model": f"{stack.aml.workspace_id}/models/model-blue/versions/1",
    }
    red = {"location": "eastus", "properties": model}
    assert arm.call("PUT", "/onlineEndpoints/ep-state/deployments/red", red).status_code == 201

    creating = client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "red"}, timeout=5)
    assert creating.status_code == 503
    stack.aml.wait_idle()
    failed = client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "red"}, timeout=5)
    assert failed.status_code == 502


def test_control_api_sets_health_over_http(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-ctl", {"blue": {"emulator.p50_ms": "30"}}, traffic={"blue": 100})
    control = f"{stack.aml.url}/_emulator"
    assert arm.session.get(f"{control}/health/ep-ctl/blue").json()["p50_ms"] == 30.0
    put = arm.session.put(f"{control}/health/ep-ctl/blue", json={"error_rate": 5, "p99_ms": 900})
    assert put.status_code == 200 and put.json() | {} == {
        "error_rate": 5.0,
        "p50_ms": 30.0,
        "p99_ms": 900.0,
        "fail_all": False,
        "fail_status": 500,
        "timeout_rate": 0.0,
        "overload_rate": 0.0,
    }
    bad = arm.session.put(f"{control}/health/ep-ctl/blue", json={"error_rate": 150})
    assert bad.status_code == 400 and "percent" in bad.json()["error"]["message"]
    typo = arm.session.put(f"{control}/health/ep-ctl/blue", json={"errors": 1})
    assert typo.status_code == 400 and "errors" in typo.json()["error"]["message"]


def test_an_endpoint_of_another_workspace_and_region_has_a_scoring_uri_of_its_own(
    stack: DevStack, arm: ArmSession
) -> None:
    """Endpoint names are unique per region: the same name in a workspace of another region is another endpoint."""
    here = make_endpoint(stack, arm, "ep-twin", {"blue": {}}, traffic={"blue": 100})
    other = stack.aml.add_workspace("mlw-west", location="westus2")
    there = ArmSession(stack, "https://management.azure.com")
    there.workspace = f"{stack.aml.url}{other.workspace_id}"
    assert (
        there.call(
            "PUT", "/onlineEndpoints/ep-twin", {"location": "westus2", "properties": {"authMode": "Key"}}
        ).status_code
        == 201
    )
    stack.aml.wait_idle()
    other.seed_model("model-green", 1)
    green = {"location": "westus2", "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_DS3_v2",
             "model": f"{other.workspace_id}/models/model-green/versions/1"}}  # fmt: skip
    assert there.call("PUT", "/onlineEndpoints/ep-twin/deployments/green", green).status_code == 201
    stack.aml.wait_idle()
    body = {"location": "westus2", "properties": {"authMode": "Key", "traffic": {"green": 100}}}
    assert there.call("PUT", "/onlineEndpoints/ep-twin", body).status_code == 200
    stack.aml.wait_idle()
    uri = there.call("GET", "/onlineEndpoints/ep-twin").json()["properties"]["scoringUri"]
    key = there.call("POST", "/onlineEndpoints/ep-twin/listKeys").json()["primaryKey"]

    assert uri == f"{stack.aml.url}/inference/ep-twin.westus2/score" != here["properties"]["scoringUri"]
    answer = _client(stack, key).post(uri, json=SAMPLE, timeout=5)
    assert answer.status_code == 200 and answer.headers["azureml-model-deployment"] == "green"
    assert _client(stack, key).post(here["properties"]["scoringUri"], json=SAMPLE, timeout=5).status_code == 401
    missing = f"{stack.aml.url}/inference/ep-twin.northeurope/score"
    assert _client(stack, key).post(missing, json=SAMPLE, timeout=5).status_code == 404


@pytest.mark.parametrize(("health", "status"), [({"timeout_rate": 100}, 408), ({"overload_rate": 100}, 429)])
def test_a_deployment_that_times_out_or_is_overloaded_answers_408_or_429(
    stack: DevStack, arm: ArmSession, health: dict[str, float], status: int
) -> None:
    name = f"ep-{status}"
    body = make_endpoint(stack, arm, name, {"blue": {}, "green": {}}, traffic={"blue": 100})
    stack.aml.set_health(name, "green", **health)
    client = _client(stack, _keys(arm, name)[0])
    uri = body["properties"]["scoringUri"]

    answer = client.post(uri, json=SAMPLE, headers={"azureml-model-deployment": "green"}, timeout=5)
    assert answer.status_code == status
    assert "ms-azureml-model-error-statuscode" not in answer.headers  # the endpoint answered, not the model
    assert client.post(uri, json=SAMPLE, timeout=5).status_code == 200  # blue is healthy
    [sample] = [s for s in stack.aml.samples(name) if s.deployment == "green"]
    assert (sample.status, sample.model_status) == (status, 0)


def test_timeout_and_overload_rates_come_from_model_tags_and_split_the_load(stack: DevStack, arm: ArmSession) -> None:
    tags = {"emulator.timeout_rate": "30", "emulator.overload_rate": "20"}
    make_endpoint(stack, arm, "ep-cap", {"blue": tags}, traffic={"blue": 100})
    health = stack.aml.deployment_health("ep-cap", "blue")
    assert (health.timeout_rate, health.overload_rate) == (30.0, 20.0)
    stack.aml.set_clock(frozen=True)
    stack.aml.start_load("ep-cap", rpm=1000, seed=3)
    stack.aml.advance_clock(60)
    statuses = Counter(s.status for s in stack.aml.samples("ep-cap"))
    total = sum(statuses.values())
    assert 0.25 < statuses[408] / total < 0.35 and 0.15 < statuses[429] / total < 0.25
    assert statuses[200] + statuses[408] + statuses[429] == total
    with pytest.raises(ValueError, match="overload_rate"):
        stack.aml.set_health("ep-cap", "blue", timeout_rate=80, overload_rate=30)
