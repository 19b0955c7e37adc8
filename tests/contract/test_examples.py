"""Requests in the shape of Microsoft's official examples are accepted, and answered in the contract's shape.

The official examples live in azure-rest-api-specs (commit ``cbbe228fd422db02b65e2748f83df5f2bcad7581``, under
:data:`EXAMPLES`); each body below names the example whose shape it follows. The examples themselves are not in
this repository: they reach us only through the workplace's ``fetch`` tool, whose terms let nothing it brings be
committed, and our rule is to copy none of a public project's text. So every body here is our own: the same keys
and nesting as the example's request, with our values (the examples' placeholders, such as ``"string"`` for
``instanceType``, would be refused by AML for reasons unrelated to the shape anyway).

What "answered in the contract's shape" means here:
- the emulator answers with one of the statuses the official example lists for the operation;
- the answer validates against the contract (devkit/contract.py: the SDK's models), errors only;
- each key we sent, at the envelope and the ``properties`` level, comes back: in the PUT's answer and in a later
  GET or list of the same resource (ARM answers with the resource as stored);
- the server-filled keys the official example's answer shows (:data:`SERVER_FILLED`) are there.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit.contract import Contract, errors
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession

pytestmark = pytest.mark.integration

Body = dict[str, Any]
EXAMPLES = (
    "specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2023-04-01/"
    "examples"
)
MODEL = ("example-model", "1")
ENVELOPE = ("id", "name", "type", "systemData")
#: Keys the server fills that the official example's answer shows, per resource (``properties/x`` is nested).
#: AML's workspace example also shows serviceProvisionedResourceGroup, privateLinkCount and
#: privateEndpointConnections; the contract marks them read-only and optional, and the app never reads them, so
#: the emulator does not serve them and they are not asked for here.
SERVER_FILLED: dict[str, tuple[str, ...]] = {
    "OnlineEndpoint": (*ENVELOPE, "properties/provisioningState", "properties/scoringUri", "properties/swaggerUri"),
    "OnlineDeployment": (*ENVELOPE, "properties/provisioningState"),
    "ModelContainer": ENVELOPE,
    "ModelVersion": ENVELOPE,
    "CommandJob": (*ENVELOPE, "properties/status", "properties/parameters"),
    "PipelineJob": (*ENVELOPE, "properties/status"),
    "Workspace": ("id", "name", "type"),
}


class ShapeCheck:
    """Sends our example-shaped requests and collects every way an answer falls short of the contract."""

    def __init__(self, contract: Contract, arm: ArmSession) -> None:
        self.contract, self.arm = contract, arm
        self.problems: list[str] = []

    def send(
        self, operation_id: str, path: str, body: Body | None = None, *, statuses: tuple[int, ...] = (200,)
    ) -> Any:
        """One request; its status and its answer's schema are checked. Returns the answer's JSON (or None)."""
        op = self.contract.operation(operation_id)
        response = self.arm.call(op.method, path, body)
        where = f"{operation_id} {path}"
        if response.status_code not in statuses:
            self.problems.append(f"{where}: {response.status_code} {response.text[:300]} (example: {statuses})")
            return None
        answer = response.json() if response.text else None
        self.problems += [
            f"{where}: {v}" for v in errors(self.contract.validate_response(operation_id, response.status_code, answer))
        ]
        return answer

    def has_shape(self, where: str, answer: Any, sent: Body | None, server_filled: str) -> None:
        """``answer`` carries every key of ``sent`` and the server-filled keys of its kind."""
        if not isinstance(answer, dict):
            self.problems.append(f"{where}: no resource in the answer")
            return
        for key in sent or {}:
            if key not in answer:
                self.problems.append(f"{where}: /{key} was sent and is missing")
        for key in (sent or {}).get("properties", {}):
            if key not in answer.get("properties", {}):
                self.problems.append(f"{where}: /properties/{key} was sent and is missing")
        for path in SERVER_FILLED[server_filled]:
            node: Any = answer
            for part in path.split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                self.problems.append(f"{where}: /{path} is missing (the official example's answer has it)")

    def first_item(self, where: str, page: Any) -> Any:
        if not isinstance(page, dict) or not page.get("value"):
            self.problems.append(f"{where}: the page is empty")
            return None
        return page["value"][0]


@pytest.fixture
def check(contract: Contract, arm: ArmSession, stack: DevStack) -> ShapeCheck:
    stack.aml.seed_model(*MODEL)
    return ShapeCheck(contract, arm)


def _endpoint_body(auth_mode: str = "Key") -> Body:
    # Shape of {EXAMPLES}/Workspace/OnlineEndpoint/createOrUpdate.json (Kubernetes-only `compute` left out).
    return {
        "location": "westeurope",
        "kind": "Managed",
        "tags": {"team": "payments"},
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "Default", "tier": "Standard", "capacity": 1},
        "properties": {
            "description": "Scores card payments for fraud",
            "authMode": auth_mode,
            "properties": {"owner": "mlops"},
            "traffic": {},  # AML requires traffic to name existing deployments; there are none yet
        },
    }


def _deployment_body(stack: DevStack) -> Body:
    # Shape of {EXAMPLES}/OnlineDeployment/ManagedOnlineDeployment/createOrUpdate.json.
    ws = stack.aml.workspace_id
    return {
        "location": "westeurope",
        "kind": "Managed",
        "tags": {"ring": "canary"},
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "Default", "tier": "Standard", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "description": "Fraud model, version 1",
            "properties": {"commit": "4f2a9e1"},
            "codeConfiguration": {"codeId": f"{ws}/codes/scorer/versions/3", "scoringScript": "score.py"},
            "environmentId": f"{ws}/environments/sklearn-env/versions/2",
            "environmentVariables": {"WORKER_COUNT": "2"},
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": {
                "maxQueueWait": "PT2S",
                "requestTimeout": "PT15S",
                "maxConcurrentRequestsPerInstance": 2,
            },
            "appInsightsEnabled": True,
            "livenessProbe": {
                "failureThreshold": 5,
                "successThreshold": 1,
                "timeout": "PT3S",
                "period": "PT20S",
                "initialDelay": "PT30S",
            },
            "readinessProbe": {
                "failureThreshold": 10,
                "successThreshold": 1,
                "timeout": "PT3S",
                "period": "PT15S",
                "initialDelay": "PT5S",
            },
            "instanceType": "Standard_DS3_v2",
            "model": f"{ws}/models/{MODEL[0]}/versions/{MODEL[1]}",
            "modelMountPath": "/var/azureml-app/models",
        },
    }


def test_online_endpoint_requests(check: ShapeCheck, stack: DevStack) -> None:
    body = _endpoint_body()
    answer = check.send("OnlineEndpoints_CreateOrUpdate", "/onlineEndpoints/ep-example", body, statuses=(200, 201))
    check.has_shape("PUT endpoint", answer, body, "OnlineEndpoint")
    stack.aml.wait_idle()
    check.has_shape(
        "GET endpoint", check.send("OnlineEndpoints_Get", "/onlineEndpoints/ep-example"), body, "OnlineEndpoint"
    )
    # {EXAMPLES}/Workspace/OnlineEndpoint/list.json
    page = check.send("OnlineEndpoints_List", "/onlineEndpoints")
    check.has_shape("list endpoints", check.first_item("list endpoints", page), body, "OnlineEndpoint")
    # {EXAMPLES}/Workspace/OnlineEndpoint/update.json
    patch = {"tags": {"team": "payments", "stage": "prod"}, "identity": {"type": "SystemAssigned"}}
    check.send("OnlineEndpoints_Update", "/onlineEndpoints/ep-example", patch, statuses=(200, 202))
    stack.aml.wait_idle()
    updated = check.send("OnlineEndpoints_Get", "/onlineEndpoints/ep-example")
    if updated and updated.get("tags") != patch["tags"]:
        check.problems.append(f"PATCH endpoint: tags are {updated.get('tags')}, not the patched {patch['tags']}")
    # {EXAMPLES}/Workspace/OnlineEndpoint/listKeys.json
    keys = check.send("OnlineEndpoints_ListKeys", "/onlineEndpoints/ep-example/listKeys")
    if not (keys and keys.get("primaryKey") and keys.get("secondaryKey")):
        check.problems.append(f"listKeys: {keys} lacks primaryKey or secondaryKey")
    # {EXAMPLES}/Workspace/OnlineEndpoint/delete.json
    check.send("OnlineEndpoints_Delete", "/onlineEndpoints/ep-example", statuses=(200, 202, 204))

    assert not check.problems, "\n".join(check.problems)


def test_online_deployment_requests(check: ShapeCheck, arm: ArmSession, stack: DevStack) -> None:
    assert arm.call("PUT", "/onlineEndpoints/ep-deploy", _endpoint_body()).status_code == 201
    stack.aml.wait_idle()
    body = _deployment_body(stack)
    path = "/onlineEndpoints/ep-deploy/deployments/blue"
    answer = check.send("OnlineDeployments_CreateOrUpdate", path, body, statuses=(200, 201))
    check.has_shape("PUT deployment", answer, body, "OnlineDeployment")
    stack.aml.wait_idle()
    # {EXAMPLES}/OnlineDeployment/ManagedOnlineDeployment/get.json and {EXAMPLES}/OnlineDeployment/list.json
    check.has_shape("GET deployment", check.send("OnlineDeployments_Get", path), body, "OnlineDeployment")
    page = check.send("OnlineDeployments_List", "/onlineEndpoints/ep-deploy/deployments")
    check.has_shape("list deployments", check.first_item("list deployments", page), body, "OnlineDeployment")
    # {EXAMPLES}/OnlineDeployment/getLogs.json
    logs = check.send("OnlineDeployments_GetLogs", f"{path}/getLogs", {"containerType": "InferenceServer", "tail": 25})
    if not (logs and isinstance(logs.get("content"), str)):
        check.problems.append(f"getLogs: {logs} has no content")
    # {EXAMPLES}/OnlineDeployment/ManagedOnlineDeployment/update.json
    patch = {"tags": {"ring": "main"}, "sku": {"name": "Default", "tier": "Standard", "capacity": 2}}
    check.send("OnlineDeployments_Update", path, patch, statuses=(200, 202))
    stack.aml.wait_idle()
    updated = check.send("OnlineDeployments_Get", path)
    if updated and (updated.get("sku") or {}).get("capacity") != 2:
        check.problems.append(f"PATCH deployment: sku is {updated.get('sku')}, not capacity 2")
    # {EXAMPLES}/Workspace/OnlineDeployment/delete.json
    check.send("OnlineDeployments_Delete", path, statuses=(200, 202, 204))

    assert not check.problems, "\n".join(check.problems)


def test_model_requests(check: ShapeCheck) -> None:
    # {EXAMPLES}/Workspace/ModelContainer/createOrUpdate.json
    container = {"properties": {"description": "Card fraud classifier", "tags": {"domain": "payments"}}}
    answer = check.send("ModelContainers_CreateOrUpdate", "/models/fraud-clf", container, statuses=(200, 201))
    check.has_shape("PUT model container", answer, container, "ModelContainer")
    # {EXAMPLES}/Workspace/ModelVersion/createOrUpdate.json
    version = {
        "properties": {
            "description": "Trained on March data",
            "tags": {"auc": "0.91"},
            "properties": {"trainingRun": "run-42"},
            "isAnonymous": False,
            "flavors": {"python_function": {"data": {"loader_module": "mlflow.sklearn"}}},
            "modelType": "mlflow_model",
            "modelUri": "azureml://jobs/run-42/outputs/artifacts/paths/model",
        }
    }
    path = "/models/fraud-clf/versions/7"
    answer = check.send("ModelVersions_CreateOrUpdate", path, version, statuses=(200, 201))
    check.has_shape("PUT model version", answer, version, "ModelVersion")
    # {EXAMPLES}/Workspace/ModelContainer/get.json and list.json; ModelVersion/get.json and list.json
    check.has_shape(
        "GET model container", check.send("ModelContainers_Get", "/models/fraud-clf"), container, "ModelContainer"
    )
    check.first_item("list model containers", check.send("ModelContainers_List", "/models"))
    check.has_shape("GET model version", check.send("ModelVersions_Get", path), version, "ModelVersion")
    page = check.send("ModelVersions_List", "/models/fraud-clf/versions")
    check.has_shape("list model versions", check.first_item("list model versions", page), version, "ModelVersion")

    assert not check.problems, "\n".join(check.problems)


def test_component_reads(check: ShapeCheck, stack: DevStack) -> None:
    # {EXAMPLES}/Workspace/ComponentContainer/{get,list}.json and ComponentVersion/{get,list}.json
    stack.aml.seed_component("example-component", 1, inputs=["data"], description="seeded")
    check.send("ComponentContainers_Get", "/components/example-component")
    check.first_item("list component containers", check.send("ComponentContainers_List", "/components"))
    check.send("ComponentVersions_Get", "/components/example-component/versions/1")
    page = check.send("ComponentVersions_List", "/components/example-component/versions")
    check.first_item("list component versions", page)

    assert not check.problems, "\n".join(check.problems)


def _command_job(stack: DevStack) -> Body:
    # Shape of {EXAMPLES}/Job/CommandJob/createOrUpdate.json (its `services` and `identity` left out).
    ws = stack.aml.workspace_id
    return {
        "properties": {
            "jobType": "Command",
            "description": "Nightly retrain",
            "tags": {"trigger": "schedule"},
            "properties": {"dataset": "payments-2024-03"},
            "displayName": "retrain-nightly",
            "experimentName": "fraud-retrain",
            "computeId": f"{ws}/computes/cpu-cluster",
            "resources": {"instanceCount": 1},
            "codeId": f"{ws}/codes/trainer/versions/5",
            "command": "python train.py --epochs ${{inputs.epochs}}",
            "environmentId": f"{ws}/environments/sklearn-env/versions/2",
            "inputs": {"epochs": {"jobInputType": "literal", "value": "12"}},
            "outputs": {"model": {"jobOutputType": "uri_folder", "mode": "ReadWriteMount"}},
            "distribution": {"distributionType": "PyTorch", "processCountPerInstance": 1},
            "limits": {"jobLimitsType": "Command", "timeout": "PT45M"},
            "environmentVariables": {"SEED": "7"},
        }
    }


def _pipeline_job(stack: DevStack) -> Body:
    # Shape of {EXAMPLES}/Job/PipelineJob/createOrUpdate.json (its `services` left out).
    return {
        "properties": {
            "jobType": "Pipeline",
            "description": "Retrain on drift",
            "tags": {"trigger": "drift"},
            "properties": {"driftRun": "run-7"},
            "displayName": "retrain-on-drift",
            "experimentName": "fraud-retrain",
            "computeId": f"{stack.aml.workspace_id}/computes/cpu-cluster",
            "settings": {},
            "inputs": {"drift_run": {"jobInputType": "literal", "value": "run-7"}},
            "outputs": {"report": {"jobOutputType": "uri_file", "mode": "Upload"}},
        }
    }


@pytest.mark.parametrize("kind", ["Command", "Pipeline"])
def test_job_requests(check: ShapeCheck, stack: DevStack, kind: str) -> None:
    body = _command_job(stack) if kind == "Command" else _pipeline_job(stack)
    path = f"/jobs/job-{kind.lower()}"
    answer = check.send("Jobs_CreateOrUpdate", path, body, statuses=(200, 201))
    check.has_shape(f"PUT {kind} job", answer, body, f"{kind}Job")
    # {EXAMPLES}/Job/{kind}Job/get.json and list.json
    check.has_shape(f"GET {kind} job", check.send("Jobs_Get", path), body, f"{kind}Job")
    check.has_shape(
        f"list {kind} jobs", check.first_item("list jobs", check.send("Jobs_List", "/jobs")), body, f"{kind}Job"
    )
    # {EXAMPLES}/Job/cancel.json
    check.send("Jobs_Cancel", f"{path}/cancel", statuses=(200, 202))

    assert not check.problems, "\n".join(check.problems)


def test_workspace_read(check: ShapeCheck) -> None:
    # {EXAMPLES}/Workspace/get.json
    check.has_shape("GET workspace", check.send("Workspaces_Get", ""), None, "Workspace")

    assert not check.problems, "\n".join(check.problems)


def test_every_server_filled_key_is_read_only_in_the_contract(contract: Contract) -> None:
    """The list above can only name keys the contract has, and marks server-populated."""
    kinds = {
        "OnlineEndpoint": ("OnlineEndpoint", {}),
        "OnlineDeployment": ("OnlineDeployment", {"properties": {"endpointComputeType": "Managed"}}),
        "ModelContainer": ("ModelContainer", {}),
        "ModelVersion": ("ModelVersion", {}),
        "CommandJob": ("JobBase", {"properties": {"jobType": "Command"}}),
        "PipelineJob": ("JobBase", {"properties": {"jobType": "Pipeline"}}),
        "Workspace": ("Workspace", {"properties": {}}),
    }
    for kind, paths in SERVER_FILLED.items():
        model, sample = kinds[kind]
        for path in paths:
            *parents, leaf = path.split("/")
            schema: Any = {"$ref": model}
            value: Any = sample
            for part in parents:
                schema = contract.property_schema(schema, part, value)
                value = value.get(part, {})
            assert leaf in contract.read_only_keys(schema, value), f"{kind}: {path}"
