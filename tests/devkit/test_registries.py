"""Registries on the emulator, through the real SDKs: share, reads and listing on both planes, updates, faults, lag,
a production workspace in another subscription that deploys a registry model."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devkit.aml_emulator.discovery import ML_AUDIENCE
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    from devkit.aml_emulator.registries import EmulatedRegistry

pytestmark = pytest.mark.integration

REGISTRY = "reg-promo"
PROD_SUBSCRIPTION = "00000000-0000-0000-0000-0000000000b2"
PROD_RG, PROD_WS = "rg-prod", "mlw-prod"


@pytest.fixture
def registry(stack: DevStack) -> EmulatedRegistry:
    return stack.aml.add_registry(REGISTRY, regions=("eastus", "westeurope"))


def _registry_client() -> MLClient:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), registry_name=REGISTRY)


def _share(ml_client: MLClient, name: str = "credit", version: str = "3") -> object:
    return ml_client.models.share(
        name, version, registry_name=REGISTRY, share_with_name=name, share_with_version=version
    )


def _seed(stack: DevStack) -> None:
    stack.aml.seed_model(
        "credit", 3, tags={"deploy": "true", "traffic": "10"}, properties={"auc": "0.91"}, job_name="train-42"
    )


def test_share_copies_the_version_with_its_lineage(stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient):
    _seed(stack)

    shared = _share(ml_client)

    assert getattr(shared, "id", None) == f"azureml://registries/{REGISTRY}/models/credit/versions/3"
    copied = registry.model("credit", 3)
    assert copied is not None and copied.state == "Succeeded"
    assert copied.source == f"{stack.aml.workspace_id}/models/credit/versions/3"
    assert (copied.tags, copied.properties, copied.job_name) == (
        {"deploy": "true", "traffic": "10"},
        {"auc": "0.91"},
        "train-42",
    )


def test_share_sends_discovery_then_the_registry_data_plane(
    stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient
):
    _seed(stack)
    stack.aml.clear_requests()

    _share(ml_client)

    sent = [(r.method, re.sub(r"^/mferp/managementfrontend.*/registries/[^/]+", "{mfe}", r.path), r.status)
            for r in stack.aml.requests()]  # fmt: skip
    workspace_get, discovery, latest, pre_check, imported, *polls, final = sent
    assert workspace_get == ("GET", stack.aml.workspace_id, 200)
    assert discovery == ("GET", f"/registrymanagement/v1.0/registries/{REGISTRY}/discovery", 200)
    assert latest == ("GET", "{mfe}/models/credit/versions", 200)
    assert pre_check == ("GET", "{mfe}/models/credit/versions/3", 404)
    assert imported == ("POST", "{mfe}/import", 202)
    assert polls and all(p[0] == "GET" and p[1].startswith("{mfe}/operationResults/") for p in polls)
    assert [p[2] for p in polls][-1] == 204
    assert final == ("GET", "{mfe}/models/credit/versions/3", 200)
    registry_calls = [r for r in stack.aml.requests() if "/registries/" in r.path and "discovery" not in r.path]
    assert {r.api_version for r in registry_calls} == {"2021-10-01-dataplanepreview"}


def test_registry_reads_and_listing_on_both_planes(
    stack: DevStack, registry: EmulatedRegistry, mgmt_client: MachineLearningServicesMgmtClient
):
    for version, at in (("1", "2026-01-01T00:00:00Z"), ("2", "2026-02-01T00:00:00Z"), ("10", "2026-01-15T00:00:00Z")):
        registry.seed_model("credit", version, tags={"team": "risk"} if version != "2" else {}, created_at=at)
    registry.seed_model("fraud", 1)
    client = _registry_client()

    assert client.models.get("credit", "2").version == "2"
    assert client.models.get("credit", label="latest").version == "2"  # the newest created, not the highest
    assert sorted(m.version for m in client.models.list("credit")) == ["1", "10", "2"]
    assert sorted(m.name for m in client.models.list()) == ["credit", "fraud"]
    newest = mgmt_client.registry_model_versions.list(
        RESOURCE_GROUP, REGISTRY, "credit", order_by="createdtime desc", top=2
    )
    assert [v.name for v in newest] == ["2", "10"]
    tagged = mgmt_client.registry_model_versions.list(RESOURCE_GROUP, REGISTRY, "credit", tags="team=risk")
    assert sorted(v.name for v in tagged) == ["1", "10"]
    assert [c.name for c in mgmt_client.registry_model_containers.list(RESOURCE_GROUP, REGISTRY)] == ["credit", "fraud"]


def test_an_update_changes_tags_description_and_stage_only(
    registry: EmulatedRegistry, mgmt_client: MachineLearningServicesMgmtClient
):
    registry.seed_model("credit", 3, model_type="mlflow_model", tags={"deploy": "true"})
    version = mgmt_client.registry_model_versions.get(RESOURCE_GROUP, REGISTRY, "credit", "3")
    version.properties.tags = {"deploy": "true", "promotion.rollout": "r-1"}
    version.properties.stage = "Production"

    updated = mgmt_client.registry_model_versions.begin_create_or_update(
        RESOURCE_GROUP, REGISTRY, "credit", "3", version
    ).result()

    assert updated.properties.tags["promotion.rollout"] == "r-1" and updated.properties.stage == "Production"
    version.properties.model_type = "custom_model"
    with pytest.raises(HttpResponseError) as refused:
        mgmt_client.registry_model_versions.begin_create_or_update(RESOURCE_GROUP, REGISTRY, "credit", "3", version)
    assert refused.value.status_code == 400 and refused.value.error is not None
    assert refused.value.error.code == "UserError"
    model = registry.model("credit", 3)
    assert model is not None and model.model_type == "mlflow_model"


def test_a_version_is_deleted_through_arm(registry: EmulatedRegistry, mgmt_client: MachineLearningServicesMgmtClient):
    registry.seed_model("credit", 3)
    registry.seed_model("credit", 4)

    mgmt_client.registry_model_versions.begin_delete(RESOURCE_GROUP, REGISTRY, "credit", "3").result()
    mgmt_client.registry_model_versions.begin_delete(RESOURCE_GROUP, REGISTRY, "credit", "3").result()  # gone: 204

    assert registry.model("credit", 3) is None and registry.model("credit", 4) is not None


def test_a_workspace_outside_the_registry_regions_cannot_share(stack: DevStack):
    stack.aml.add_registry(REGISTRY, regions=("westeurope",))
    _seed(stack)
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    with pytest.raises(HttpResponseError) as refused:
        _share(MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME))
    assert refused.value.status_code == 400
    assert stack.aml.registry(REGISTRY).model("credit", 3) is None


def test_a_copy_failing_half_way_leaves_no_version(stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient):
    _seed(stack)
    registry.fail_next_imports(1, how="copy")

    with pytest.raises(HttpResponseError) as failed:
        _share(ml_client)

    assert failed.value.status_code == 500
    assert registry.model("credit", 3) is None
    _share(ml_client)  # a retry shares again
    assert [(m.name, m.version) for m in registry.models()] == [("credit", "3")]


def test_a_lost_import_answer_is_resent_and_registers_one_version(
    stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient
):
    _seed(stack)
    registry.fail_next_imports(1, how="answer")

    _share(ml_client)

    assert [r.status for r in stack.aml.requests(method="POST", path_contains="/import")] == [500, 202]
    assert [(m.name, m.version, m.state) for m in registry.models()] == [("credit", "3", "Succeeded")]


def test_a_lagging_read_answers_404_then_the_version(stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient):
    _seed(stack)
    registry.set_read_lag(reads=2)

    with pytest.raises(ResourceNotFoundError):
        _share(ml_client)  # the copy is done; the SDK's own read of it meets the lag

    client = _registry_client()
    assert [m.version for m in client.models.list("credit")] == ["3"]  # listing is not lagged
    with pytest.raises(ResourceNotFoundError):
        client.models.get("credit", "3")
    assert client.models.get("credit", "3").version == "3"


def test_an_unknown_registry_is_not_discovered(stack: DevStack):
    with pytest.raises(ResourceNotFoundError):
        _registry_client()


def test_discovery_takes_an_ml_token_and_the_registry_an_arm_one(stack: DevStack, registry: EmulatedRegistry):
    session = ArmSession(stack, ML_AUDIENCE)
    discovery = session.session.get(
        f"{stack.aml.url}/registrymanagement/v1.0/registries/{REGISTRY}/discovery",
        params={"api-version": "v1.0"},
        timeout=10,
    )
    assert discovery.status_code == 200
    assert discovery.json()["primaryRegionResourceProviderUri"] == f"{stack.aml.url}/"
    models = session.session.get(f"{stack.aml.url}{registry.arm_id}/models", params={"api-version": "2023-04-01"})
    assert models.status_code == 401


def test_production_in_another_subscription_deploys_the_registry_model(
    stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient
):
    prod = stack.aml.add_workspace(PROD_WS, subscription_id=PROD_SUBSCRIPTION, resource_group=PROD_RG)
    _seed(stack)
    _share(ml_client)
    mgmt = _mgmt(stack, PROD_SUBSCRIPTION)
    _endpoint(mgmt, "ep-prod")

    asset_id = f"azureml://registries/{REGISTRY}/models/credit/versions/3"
    _deploy(mgmt, "ep-prod", "blue", asset_id)
    stack.aml.wait_idle()  # one operation at a time per endpoint
    _deploy(mgmt, "ep-prod", "green", f"{registry.arm_id}/models/credit/versions/3")  # the ARM form
    stack.aml.wait_idle()
    assert {d: prod.deployment_state("ep-prod", d)["properties"]["provisioningState"] for d in ("blue", "green")} == {
        "blue": "Succeeded",
        "green": "Succeeded",
    }
    assert prod.take_events() == [] and stack.aml.model_state("credit", 3) is not None  # each its own models, outbox
    with pytest.raises(ResourceNotFoundError):
        _deploy(mgmt, "ep-prod", "amber", asset_id.replace("/versions/3", "/versions/4"))


def test_a_workspace_outside_the_registry_regions_cannot_deploy_from_it(
    stack: DevStack, registry: EmulatedRegistry, ml_client: MLClient
):
    stack.aml.add_workspace(PROD_WS, subscription_id=PROD_SUBSCRIPTION, resource_group=PROD_RG, location="japaneast")
    registry.seed_model("credit", 3)
    mgmt = _mgmt(stack, PROD_SUBSCRIPTION)
    _endpoint(mgmt, "ep-prod", location="japaneast")

    with pytest.raises(HttpResponseError) as refused:
        _deploy(mgmt, "ep-prod", "blue", f"azureml://registries/{REGISTRY}/models/credit/versions/3")
    assert refused.value.status_code == 400


def _mgmt(stack: DevStack, subscription: str) -> MachineLearningServicesMgmtClient:
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    return MachineLearningServicesMgmtClient(DefaultAzureCredential(), subscription, base_url=stack.aml.url)


def _endpoint(mgmt: MachineLearningServicesMgmtClient, name: str, location: str = "eastus") -> None:
    from azure.mgmt.machinelearningservices import models

    body = models.OnlineEndpoint(location=location, properties=models.OnlineEndpointProperties(auth_mode="Key"))
    mgmt.online_endpoints.begin_create_or_update(PROD_RG, PROD_WS, name, body).result()


def _deploy(mgmt: MachineLearningServicesMgmtClient, endpoint: str, name: str, model: str) -> None:
    from azure.mgmt.machinelearningservices import models

    props = models.ManagedOnlineDeployment(model=model, instance_type="Standard_DS3_v2")
    body = models.OnlineDeployment(location="eastus", properties=props, sku=models.Sku(name="Default", capacity=1))
    mgmt.online_deployments.begin_create_or_update(PROD_RG, PROD_WS, endpoint, name, body, polling=False)


def test_registries_over_the_control_api(stack: DevStack):
    import requests

    assert stack.ca is not None
    control = f"{stack.aml.url}/_emulator"

    def call(method: str, path: str, body: object = None) -> requests.Response:
        return requests.request(method, f"{control}{path}", json=body, verify=str(stack.ca.ca_path), timeout=5)

    added = call("POST", "/registries", {"name": REGISTRY, "regions": ["eastus", "westeurope"]})
    workspace = {"name": PROD_WS, "subscription_id": PROD_SUBSCRIPTION, "resource_group": PROD_RG}
    prod = call("POST", "/workspaces", workspace)
    seeded = call("POST", f"/registries/{REGISTRY}/models", {"name": "credit", "version": "1", "stage": "Staging"})
    lag = call("PUT", f"/registries/{REGISTRY}/lag", {"reads": 1})
    fail = call("POST", f"/registries/{REGISTRY}/imports/fail", {"count": 2, "how": "answer"})

    assert [r.status_code for r in (added, prod, seeded, lag, fail)] == [201, 201, 201, 204, 204]
    assert added.json()["regions"] == ["eastus", "westeurope"] and PROD_SUBSCRIPTION in prod.json()["id"]
    listed = call("GET", f"/registries/{REGISTRY}/models").json()["value"]
    assert [(m["version"], m["stage"], m["state"]) for m in listed] == [("1", "Staging", "Succeeded")]
    assert call("GET", "/registries/reg-missing/models").status_code == 400  # as an unknown workspace: KeyError
    assert stack.aml.registry(REGISTRY)._import_faults == ["answer", "answer"]
