"""The registry exchanges against the pinned SDKs' models: every answer the emulator gives azure-ai-ml (discovery and
the registry data plane) and the management SDK (ARM) validates, and the import takes what azure-ai-ml sends."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest

from devkit.contract import Contract, errors
from devkit.registry_contract import registry_arm_contract, registry_dataplane_contract
from devkit.stack import RESOURCE_GROUP, DevStack
from tests.contract.conftest import Exchange, Recorder
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    from devkit.aml_emulator.registries import EmulatedRegistry

pytestmark = pytest.mark.integration

REGISTRY = "reg-promo"
DATAPLANE = "2021-10-01-dataplanepreview"
EXPECTED_ARM = {
    ("RegistryModelContainers_List", 200),
    ("RegistryModelContainers_Get", 200),
    ("RegistryModelVersions_List", 200),
    ("RegistryModelVersions_Get", 200),
    ("RegistryModelVersions_Get", 404),
    ("RegistryModelVersions_CreateOrUpdate", 200),
    ("RegistryModelVersions_CreateOrUpdate", 400),
}
EXPECTED_DATAPLANE = {
    ("RegistryManagement_GetDiscoveryInfo", 200),
    ("ModelContainers_List", 200),
    ("ModelVersions_List", 200),
    ("ModelVersions_Get", 200),
    ("ModelVersions_Get", 404),
}


@pytest.fixture(scope="module")
def arm_contract() -> Contract:
    return registry_arm_contract()


@pytest.fixture(scope="module")
def dataplane_contract() -> Contract:
    return registry_dataplane_contract()


@pytest.fixture
def registry(stack: DevStack) -> EmulatedRegistry:
    registry = stack.aml.add_registry(REGISTRY)
    registry.seed_model("credit", 1, tags={"deploy": "true"}, properties={"auc": "0.9"}, job_name="train-1",
                        stage="Staging", description="first")  # fmt: skip
    registry.seed_model("credit", 2)
    registry.seed_model("fraud", 1, model_type="custom_model")
    return registry


def _check(contract: Contract, exchanges: list[Exchange]) -> tuple[set[tuple[str, int]], list[str]]:
    seen: set[tuple[str, int]] = set()
    problems: list[str] = []
    for exchange in exchanges:
        op = contract.find_operation(exchange.method, exchange.url)
        if op is None:
            problems.append(f"{exchange.method} {exchange.url}: no operation in the contract")
            continue
        seen.add((op.operation_id, exchange.status))
        found = errors(contract.validate_response(op.operation_id, exchange.status, exchange.body))
        problems += [f"{op.operation_id} {exchange.status}: {v}" for v in found]
    return seen, problems


def test_arm_answers_validate(
    registry: EmulatedRegistry,
    recorded_mgmt: MachineLearningServicesMgmtClient,
    recorder: Recorder,
    arm_contract: Contract,
):
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    ops_versions = recorded_mgmt.registry_model_versions
    list(recorded_mgmt.registry_model_containers.list(RESOURCE_GROUP, REGISTRY))
    recorded_mgmt.registry_model_containers.get(RESOURCE_GROUP, REGISTRY, "credit")
    list(ops_versions.list(RESOURCE_GROUP, REGISTRY, "credit", order_by="createdtime desc", top=1))
    version = ops_versions.get(RESOURCE_GROUP, REGISTRY, "credit", "1")
    with pytest.raises(ResourceNotFoundError):
        ops_versions.get(RESOURCE_GROUP, REGISTRY, "credit", "9")
    version.properties.tags = {"deploy": "true", "promotion.rollout": "r-1"}
    sent = ops_versions._serialize.body(version, "ModelVersion")  # what the adapter's update sends
    ops_versions.begin_create_or_update(RESOURCE_GROUP, REGISTRY, "credit", "1", version).result()
    version.properties.job_name = "train-other"
    with pytest.raises(HttpResponseError):
        ops_versions.begin_create_or_update(RESOURCE_GROUP, REGISTRY, "credit", "1", version).result()

    seen, problems = _check(arm_contract, recorder.exchanges)

    assert problems == []
    assert seen >= EXPECTED_ARM, f"not exercised: {EXPECTED_ARM - seen}"
    assert errors(arm_contract.validate_request("RegistryModelVersions_CreateOrUpdate", sent)) == []


def test_dataplane_answers_to_azure_ai_ml_validate(
    stack: DevStack, registry: EmulatedRegistry, recorder: Recorder, dataplane_contract: Contract
):
    from azure.ai.ml import MLClient
    from azure.core.exceptions import ResourceNotFoundError
    from azure.identity import DefaultAzureCredential

    client = MLClient(DefaultAzureCredential(), registry_name=REGISTRY, raw_response_hook=recorder)
    client.models.get("credit", "1")
    client.models.get("credit", label="latest")
    list(client.models.list("credit"))
    list(client.models.list())
    with pytest.raises(ResourceNotFoundError):
        client.models.get("credit", "9")

    seen, problems = _check(dataplane_contract, recorder.exchanges)

    assert problems == []
    assert seen >= EXPECTED_DATAPLANE, f"not exercised: {EXPECTED_DATAPLANE - seen}"


def test_the_import_takes_what_azure_ai_ml_sends_and_answers_as_its_poller_reads(
    stack: DevStack, registry: EmulatedRegistry, dataplane_contract: Contract
):
    from azure.ai.ml.entities._assets.workspace_asset_reference import WorkspaceAssetReference

    stack.aml.seed_model("churn", 4)
    asset = f"azureml://locations/{stack.aml.location}/workspaces/{stack.aml.workspace_guid}/models/churn/versions/4"
    body = WorkspaceAssetReference(name="churn", version="4", asset_id=asset)._to_rest_object()
    arm = ArmSession(stack, "https://management.azure.com")
    mfe = f"{stack.aml.url}/mferp/managementfrontend{registry.arm_id}"

    answer = arm.session.post(f"{mfe}/import", params={"api-version": DATAPLANE}, json=body, timeout=10)

    op = dataplane_contract.find_operation("POST", answer.url)
    assert op is not None and answer.status_code in op.responses and "Location" in answer.headers
    statuses = _poll(arm, answer.headers["Location"])
    assert set(statuses[:-1]) <= {202} and statuses[-1] == 204  # LocationPolling: 202 running, 2xx done
    shared = arm.session.get(f"{mfe}/models/churn/versions/4", params={"api-version": DATAPLANE}, timeout=10)
    assert errors(dataplane_contract.validate_response("ModelVersions_Get", 200, shared.json())) == []
    refused = arm.session.post(f"{mfe}/import", params={"api-version": DATAPLANE}, json={"properties": {}}, timeout=10)
    assert refused.status_code == 400
    import_op = "ResourceManagementAssetReference_Import"
    assert errors(dataplane_contract.validate_response(import_op, 400, refused.json())) == []


def test_the_checker_catches_a_broken_answer(stack: DevStack, registry: EmulatedRegistry, dataplane_contract: Contract):
    arm = ArmSession(stack, "https://management.azure.com")
    url = f"{stack.aml.url}/mferp/managementfrontend{registry.arm_id}/models/credit/versions/1"
    good = arm.session.get(url, params={"api-version": DATAPLANE}, timeout=10).json()
    broken: list[dict[str, Any]] = [copy.deepcopy(good) for _ in range(3)]
    broken[0]["properties"]["sampleCount"] = 3
    broken[1]["properties"]["tags"] = ["deploy"]
    del broken[2]["properties"]

    kinds = [{v.kind for v in errors(dataplane_contract.validate("ModelVersion", b))} for b in broken]

    assert errors(dataplane_contract.validate("ModelVersion", good)) == []
    assert kinds == [{"additionalProperties"}, {"type"}, {"required"}]


def _poll(arm: ArmSession, location: str) -> list[int]:
    """Follow ``Location`` until it stops answering 202 (bounded by the emulator's import time)."""
    import time

    statuses: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = arm.session.get(location, timeout=10).status_code
        statuses.append(status)
        if status != 202:
            return statuses
        time.sleep(0.05)  # the poller's own pause (the emulator says retry-after-ms)
    raise AssertionError(f"the import did not end: {statuses}")
