"""Every emulator answer to the app's ARM sequences validates against the 2023-04-01 contract the SDK carries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from devkit.contract import Contract, Violation, errors
from devkit.stack import RESOURCE_GROUP, WORKSPACE_NAME, DevStack
from tests.contract.conftest import Exchange, Recorder
from tests.devkit.arm_session import ArmSession

if TYPE_CHECKING:
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

pytestmark = pytest.mark.integration

RG, WS = RESOURCE_GROUP, WORKSPACE_NAME
_OPERATION_STATUS_URL = re.compile(r"/locations/[^/]+/mfeOperationsStatus/[^/?]+", re.IGNORECASE)
#: What the app's sequences must have exercised (operationId, status): a missing one means the drive changed.
EXPECTED = {
    ("Workspaces_Get", 200),
    ("OnlineEndpoints_CreateOrUpdate", 201),
    ("OnlineEndpoints_CreateOrUpdate", 200),
    ("OnlineEndpoints_Get", 200),
    ("OnlineEndpoints_Get", 404),
    ("OnlineEndpoints_List", 200),
    ("OnlineEndpoints_Update", 202),
    ("OnlineEndpoints_ListKeys", 200),
    ("OnlineEndpoints_Delete", 202),
    ("OnlineDeployments_CreateOrUpdate", 201),
    ("OnlineDeployments_CreateOrUpdate", 409),
    ("OnlineDeployments_Get", 200),
    ("OnlineDeployments_List", 200),
    ("OnlineDeployments_Update", 202),
    ("OnlineDeployments_GetLogs", 200),
    ("OnlineDeployments_Delete", 202),
    ("ModelContainers_Get", 200),
    ("ModelContainers_List", 200),
    ("ModelVersions_Get", 200),
    ("ModelVersions_List", 200),
    ("ModelVersions_CreateOrUpdate", 201),
    ("ComponentContainers_Get", 200),
    ("ComponentContainers_List", 200),
    ("ComponentVersions_Get", 200),
    ("ComponentVersions_List", 200),
    ("Jobs_CreateOrUpdate", 201),
    ("Jobs_Get", 200),
    ("Jobs_List", 200),
    ("Jobs_Cancel", 202),
    ("OperationStatus", 200),
}


def check_exchange(contract: Contract, exchange: Exchange) -> tuple[str, list[Violation]]:
    """The operation an exchange belongs to and everything in the answer that breaks the contract."""
    if _OPERATION_STATUS_URL.search(exchange.url):
        return "OperationStatus", errors(contract.validate("OperationStatus", exchange.body))
    op = contract.find_operation(exchange.method, exchange.url)
    if op is None:
        return "", [Violation("operation", exchange.url, f"no operation in the contract for {exchange.method}")]
    found = errors(contract.validate_response(op.operation_id, exchange.status, exchange.body))
    found += _check_lro_headers(contract, op.operation_id, exchange)
    return op.operation_id, found


def _check_lro_headers(contract: Contract, operation_id: str, exchange: Exchange) -> list[Violation]:
    """A long-running operation's 201/202 carries the polling header the SDK reads from it."""
    declared = contract.operation(operation_id).headers.get(exchange.status, ())
    headers = {k.lower(): v for k, v in exchange.headers.items()}
    found = [
        Violation("header", name, f"the SDK reads {name} from a {exchange.status}; the answer has none")
        for name in declared
        if name.lower() in {"azure-asyncoperation", "location"} and name.lower() not in headers
    ]
    retry_after = headers.get("retry-after")
    if retry_after is not None and not retry_after.isdigit():
        found.append(Violation("header", "Retry-After", f"{retry_after!r} is not an integer number of seconds"))
    return found


def _report(exchanges: Iterable[Exchange], contract: Contract) -> tuple[set[tuple[str, int]], list[str]]:
    seen: set[tuple[str, int]] = set()
    problems = []
    for exchange in exchanges:
        operation_id, violations = check_exchange(contract, exchange)
        seen.add((operation_id, exchange.status))
        problems += [f"{exchange.method} {exchange.url.split('?')[0]} -> {exchange.status}: {v}" for v in violations]
    return seen, problems


def _drive_rollout(stack: DevStack, mgmt: MachineLearningServicesMgmtClient, arm: ArmSession) -> None:
    """The app's rollout sequence (ARM_SEQUENCES.md) plus the reads and writes around it, through the real SDK."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.machinelearningservices import models

    aml = stack.aml
    aml.seed_model("fraud.model", 3)
    mgmt.workspaces.get(RG, WS)
    mgmt.model_versions.get(RG, WS, "fraud.model", "3")
    list(mgmt.model_versions.list(RG, WS, "fraud.model", order_by="createdtime desc", top=1))
    mgmt.model_containers.get(RG, WS, "fraud.model")
    list(mgmt.model_containers.list(RG, WS))
    mgmt.model_versions.create_or_update(
        RG,
        WS,
        "fraud.model",
        "4",
        models.ModelVersion(
            properties=models.ModelVersionProperties(
                model_type="mlflow_model", model_uri="azureml://jobs/run-1/outputs/artifacts/paths/model", tags={}
            )
        ),
    )
    with pytest.raises(ResourceNotFoundError):
        mgmt.online_endpoints.get(RG, WS, "ep-contract")
    endpoint = models.OnlineEndpoint(
        location="eastus",
        identity=models.ManagedServiceIdentity(type="SystemAssigned"),
        properties=models.OnlineEndpointProperties(auth_mode="Key", traffic={}),
    )
    created = mgmt.online_endpoints.begin_create_or_update(RG, WS, "ep-contract", endpoint, polling=False)
    del created
    status_url = _last(mgmt).headers.get("Azure-AsyncOperation") or ""
    _record(mgmt, arm, status_url)  # the poll azure-ai-ml would send, while the operation runs
    aml.wait_idle()
    _record(mgmt, arm, status_url)  # and once it has ended
    model_id = f"{aml.workspace_id}/models/fraud.model/versions/3"

    def deployment(name: str) -> models.OnlineDeployment:
        return models.OnlineDeployment(
            location="eastus",
            sku=models.Sku(name="Default", capacity=1),
            properties=models.ManagedOnlineDeployment(model=model_id, instance_type="Standard_DS3_v2"),
        )

    mgmt.online_deployments.begin_create_or_update(RG, WS, "ep-contract", "blue", deployment("blue"), polling=False)
    with pytest.raises(HttpResponseError):  # one operation at a time per endpoint: 409
        mgmt.online_deployments.begin_create_or_update(
            RG, WS, "ep-contract", "green", deployment("green"), polling=False
        )
    aml.wait_idle()
    mgmt.online_deployments.begin_create_or_update(RG, WS, "ep-contract", "green", deployment("green"), polling=False)
    aml.wait_idle()
    mgmt.online_endpoints.get(RG, WS, "ep-contract")
    list(mgmt.online_endpoints.list(RG, WS))
    list(mgmt.online_deployments.list(RG, WS, "ep-contract"))
    mgmt.online_deployments.get(RG, WS, "ep-contract", "blue")
    endpoint.properties.traffic = {"blue": 100}
    endpoint.properties.mirror_traffic = {"green": 10}
    mgmt.online_endpoints.begin_create_or_update(RG, WS, "ep-contract", endpoint, polling=False)
    aml.wait_idle()
    mgmt.online_endpoints.list_keys(RG, WS, "ep-contract")
    mgmt.online_deployments.get_logs(
        RG, WS, "ep-contract", "blue", models.DeploymentLogsRequest(container_type="InferenceServer", tail=20)
    )
    mgmt.online_endpoints.begin_update(
        RG, WS, "ep-contract", models.PartialMinimalTrackedResourceWithIdentity(tags={"a": "b"}), polling=False
    )
    aml.wait_idle()
    mgmt.online_deployments.begin_update(
        RG,
        WS,
        "ep-contract",
        "blue",
        models.PartialMinimalTrackedResourceWithSku(sku=models.PartialSku(capacity=2)),
        polling=False,
    )
    aml.wait_idle()
    # A deployment that fails: the status body carries ARM's error object.
    aml.fail_deployments("red")
    mgmt.online_deployments.begin_create_or_update(RG, WS, "ep-contract", "red", deployment("red"), polling=False)
    failed_url = _last(mgmt).headers.get("Azure-AsyncOperation") or ""
    aml.wait_idle()
    _record(mgmt, arm, failed_url)
    mgmt.online_deployments.get(RG, WS, "ep-contract", "red")
    mgmt.online_deployments.get_logs(RG, WS, "ep-contract", "red", models.DeploymentLogsRequest(tail=50))
    mgmt.online_deployments.begin_delete(RG, WS, "ep-contract", "red", polling=False)
    aml.wait_idle()
    mgmt.online_endpoints.begin_delete(RG, WS, "ep-contract", polling=False)
    aml.wait_idle()


def _drive_loop(stack: DevStack, mgmt: MachineLearningServicesMgmtClient) -> None:
    """The retraining loop's reads and writes: component lookup, pipeline job submit, status, cancel."""
    from azure.mgmt.machinelearningservices import models

    aml = stack.aml
    aml.seed_component("retrain", 2, inputs=["drift_run"])
    mgmt.component_containers.get(RG, WS, "retrain")
    list(mgmt.component_containers.list(RG, WS))
    mgmt.component_versions.get(RG, WS, "retrain", "2")
    list(mgmt.component_versions.list(RG, WS, "retrain", order_by="createdtime desc", top=1))
    job = models.JobBase(
        properties=models.PipelineJob(
            component_id=f"{aml.workspace_id}/components/retrain/versions/2",
            experiment_name="retrain",
            inputs={"drift_run": models.LiteralJobInput(value="run-7")},
            settings={"default_compute": f"{aml.workspace_id}/computes/cpu"},
            tags={"trigger": "drift"},
        )
    )
    mgmt.jobs.create_or_update(RG, WS, "retrain-run-7", job)
    mgmt.jobs.get(RG, WS, "retrain-run-7")
    list(mgmt.jobs.list(RG, WS))
    mgmt.jobs.begin_cancel(RG, WS, "retrain-run-7", polling=False)


def _last(mgmt: MachineLearningServicesMgmtClient) -> Exchange:
    recorder: Recorder = mgmt._config.custom_hook_policy._response_callback
    return recorder.exchanges[-1]


def _record(mgmt: MachineLearningServicesMgmtClient, arm: ArmSession, url: str) -> None:
    """GET an operation-status URL and add the answer to the recording (the app itself never polls)."""
    assert url, "the long-running operation's answer carried no Azure-AsyncOperation header"
    response = arm.session.get(url, timeout=10)
    recorder: Recorder = mgmt._config.custom_hook_policy._response_callback
    recorder.exchanges.append(
        Exchange("GET", url, response.status_code, dict(response.headers), response.json() if response.text else None)
    )


def test_every_answer_to_the_apps_sequences_validates_against_the_contract(
    stack: DevStack,
    recorded_mgmt: MachineLearningServicesMgmtClient,
    recorder: Recorder,
    arm: ArmSession,
    contract: Contract,
) -> None:
    _drive_rollout(stack, recorded_mgmt, arm)
    _drive_loop(stack, recorded_mgmt)

    seen, problems = _report(recorder.exchanges, contract)

    assert not problems, "\n".join(problems)
    assert EXPECTED - seen == set(), "the drive no longer exercises these operations"


def test_the_answers_azure_ai_ml_reads_validate_against_the_contract(stack: DevStack, contract: Contract) -> None:
    """azure-ai-ml reads at preview api-versions; the emulator's answers still hold to the stable shapes."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
    from azure.identity import DefaultAzureCredential

    from devkit.stack import SUBSCRIPTION_ID

    recorder = Recorder()
    ml = MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RG, WS, raw_response_hook=recorder)
    stack.aml.seed_model("churn", 1)
    ml.models.get("churn", "1")
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="ep-sdk", auth_mode="key")).result()
    ml.online_deployments.begin_create_or_update(
        ManagedOnlineDeployment(
            name="blue", endpoint_name="ep-sdk", model="azureml:churn:1", instance_type="Standard_DS3_v2"
        )
    ).result()
    ml.online_endpoints.get("ep-sdk")
    ml.online_endpoints.get_keys("ep-sdk")
    ml.online_deployments.get_logs("blue", "ep-sdk", lines=10)

    seen, problems = _report(recorder.exchanges, contract)

    assert not problems, "\n".join(problems)
    assert {
        ("ModelVersions_Get", 200),
        ("OnlineEndpoints_CreateOrUpdate", 201),
        ("OnlineDeployments_CreateOrUpdate", 201),
        ("OperationStatus", 200),
        ("OnlineEndpoints_ListKeys", 200),
        ("OnlineDeployments_GetLogs", 200),
    } <= seen
