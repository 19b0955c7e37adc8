"""Static tests of infra/: the Bicep parses and says what the app and its reviewers rely on."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

AML_EVENT_TYPES = {
    "Microsoft.MachineLearningServices.ModelRegistered",
    "Microsoft.MachineLearningServices.ModelDeployed",
    "Microsoft.MachineLearningServices.RunCompleted",
    "Microsoft.MachineLearningServices.RunStatusChanged",
    "Microsoft.MachineLearningServices.DatasetDriftDetected",
}

# (scope resource type, built-in role definition id) -> how many assignments; the whole intended set. A custom
# role is named by its actions.
STORAGE = "Microsoft.Storage/storageAccounts"
PROMOTER_ROLE = "custom: " + ", ".join(
    (
        "Microsoft.MachineLearningServices/registries/read",
        "Microsoft.MachineLearningServices/registries/assets/read",
        "Microsoft.MachineLearningServices/registries/assets/write",
    )
)
EXPECTED_ROLES = Counter(
    {
        (STORAGE, "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"): 1,  # Storage Blob Data Owner
        (STORAGE, "974c5e8b-45b9-4653-ba55-5f855dd0fb88"): 1,  # Storage Queue Data Contributor
        (STORAGE, "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"): 1,  # Storage Table Data Contributor
        ("Microsoft.Insights/components", "3913510d-42f4-4e42-8a64-420c390055eb"): 1,  # Metrics Publisher
        ("Microsoft.EventGrid/topics", "d5a91429-5739-47e2-a06b-3470a27159e7"): 1,  # EventGrid Data Sender
        # AzureML Data Scientist, on the workspace only
        ("Microsoft.MachineLearningServices/workspaces", "f6c7c914-8db3-469d-8ca1-694a8f32e121"): 1,
        # Monitoring Reader, on the workspace only: the metric gates read endpoint metrics (metrics/read)
        ("Microsoft.MachineLearningServices/workspaces", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"): 1,
        # Storage Blob Data Contributor for the system topic, on the dead-letter container only
        (f"{STORAGE}/blobServices/containers", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"): 1,
        # Promotion: a staging app's custom role on its registry only (read it and its assets, write assets; no
        # deletes), and a production app's Reader on the registry it rolls versions out from.
        ("Microsoft.MachineLearningServices/registries", PROMOTER_ROLE): 1,
        ("Microsoft.MachineLearningServices/registries", "acdd72a7-3385-48ef-bd42-f606fba81ae7"): 1,
    }
)
# The optional on-call operator's roles (operatorPrincipalId), each on the one resource its runbook touches.
OPERATOR_ROLES = Counter(
    {
        # Storage Table Data Contributor, on the rollouts table only: ledger surgery
        (f"{STORAGE}/tableServices/tables", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"): 1,
        # Storage Blob Data Reader, on the dead-letter container only: download dead letters to replay
        (f"{STORAGE}/blobServices/containers", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"): 1,
        # Monitoring Reader, on Application Insights only: the runbooks' KQL
        ("Microsoft.Insights/components", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"): 1,
    }
)
OPERATOR_RBAC = INFRA / "app/operator-rbac.bicep"

# Used when app/platform/settings.py does not exist yet: the settings the app reads, per the design brief.
FALLBACK_CODE_SETTINGS = {
    "AML_ALLOWED_WORKSPACES",
    "DEPLOY_MODE",
    "DEPLOY_STAGE",
    "DEFAULT_INSTANCE_TYPE",
    "ALLOWED_INSTANCE_TYPES",
    "MAX_INSTANCE_COUNT",
    "KEEP_DEPLOYMENTS",
    "KEEP_FAILED_DEPLOYMENTS",
    "ROLLOUT_TIMEOUT_MINUTES",
    "ROLLOUT_MAX_ATTEMPTS",
    "ROLLOUT_TABLE",
    "IDEMPOTENCY_TABLE",
    "RECONCILE_SCHEDULE",
    "RECONCILE_BUDGET_SECONDS",
    "RECONCILE_CONCURRENCY",
    "EVENT_BUDGET_SECONDS",
    "NOTIFY_TOPIC_ENDPOINT",
    "NOTIFY_TOPIC_KEY",
    "NOTIFY_WEBHOOK_URL",
    "DRIFT_THRESHOLD",
    "RETRAIN_PIPELINE_COMPONENT",
    "RETRAIN_EXPERIMENT",
    "RETRAIN_COOLDOWN_MINUTES",
    "RETRAIN_COMPUTE",
    "AZURE_CLIENT_ID",
}

# UPPER_CASE env names, plus the host's AzureWebJobs* names that the app also reads.
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobs\w+")
SECRET_WORDS = re.compile(r"key|secret|password|connectionstring", re.IGNORECASE)
# Flex Consumption enforces no timeout but only guarantees 60 minutes of grace on scale-in.
FLEX_GUARANTEED_TIMEOUT_SECONDS = 60 * 60


@cache
def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def resources(path: Path) -> dict[str, dict[str, Any]]:
    """Resources of a file by symbolic name, with the body of conditional resources unwrapped."""
    found = {}
    for symbol, resource in parse(path).get("resources", {}).items():
        config = resource["config"]
        if "condition" in config:
            config = config["config"]
        found[symbol] = {"type": resource["type"], "existing": resource["existing"], "config": config}
    return found


def of_type(path: Path, resource_type: str) -> list[dict[str, Any]]:
    return [r["config"] for r in resources(path).values() if r["type"] == resource_type and not r["existing"]]


def only(path: Path, resource_type: str) -> dict[str, Any]:
    matches = of_type(path, resource_type)
    assert len(matches) == 1, f"{path.name}: expected one {resource_type}, found {len(matches)}"
    return matches[0]


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def keys_of(path: Path, name: str) -> set[str]:
    """Keys of an object variable, whose key literals pycep keeps unquoted."""
    return {key.strip("'") for key in variable(path, name)}


def test_there_is_a_bicep_file_per_concern() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "workspace.bicep", "app/function.bicep", "app/eventgrid.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_main_deploys_nothing_outside_its_own_resource_group() -> None:
    # `azd down` deletes every resource group its deployment touched (Azure/azure-dev#2916): a module
    # scoped to the workspace's resource group here would delete the workspace on teardown.
    modules = parse(INFRA / "main.bicep")["modules"]
    assert modules
    scopes = {}
    for name, module in modules.items():
        config = module["config"]
        scopes[name] = (config["config"] if "condition" in config else config).get("scope")
    assert scopes == dict.fromkeys(modules, "rg")
    declared = {r["type"] for r in resources(INFRA / "main.bicep").values()}
    assert declared == {"Microsoft.Resources/resourceGroups"}


def test_workspace_resources_follow_the_workspace_id() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["variables"]["workspaceIdParts"]["value"]["function"] == {
        "type": "split",
        "parameters": {"input_string": "amlWorkspaceId", "delimiter": "/"},
    }
    index = {
        name: out["value"]["operator"]["operands"]
        for name, out in main["outputs"].items()
        if name.startswith("AML_WORKSPACE_")
    }
    assert index == {
        "AML_WORKSPACE_SUBSCRIPTION_ID": {"operand_1": "workspaceIdParts", "operand_2": 2},
        "AML_WORKSPACE_RESOURCE_GROUP": {"operand_1": "workspaceIdParts", "operand_2": 4},
        "AML_WORKSPACE_NAME": {"operand_1": "workspaceIdParts", "operand_2": 8},
    }
    topic = only(INFRA / "app/eventgrid.bicep", "Microsoft.EventGrid/systemTopics")
    assert topic["properties"]["topicType"] == "Microsoft.MachineLearningServices.Workspaces"
    assert topic["identity"] == {"type": "SystemAssigned"}
    # A system topic must be in its source's region, which need not be the app's.
    assert topic["location"]["operator"]["operands"] == {"operand_1": "workspace", "operand_2": "location"}


def test_event_subscription_delivers_every_aml_event_to_on_aml_event_with_dead_letters() -> None:
    path = INFRA / "app/eventgrid.bicep"
    props = only(path, "Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]
    assert props["destination"]["endpointType"] == "AzureFunction"
    assert props["destination"]["properties"]["resourceId"] == "${functionAppId}/functions/on_aml_event"
    assert set(variable(path, props["filter"]["includedEventTypes"])) == AML_EVENT_TYPES
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead_letter = props["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    destination = dead_letter["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    assert destination["properties"]["blobContainerName"] == "deadLetterContainerName"


def test_the_subscribed_function_exists_in_the_app() -> None:
    app = ROOT / "function_app.py"
    if not app.exists():
        pytest.skip("function_app.py is not written yet")
    tree = ast.parse(app.read_text())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    names = functions | set(re.findall(r"function_name\(\s*(?:name\s*=\s*)?['\"](\w+)['\"]", app.read_text()))
    assert "on_aml_event" in names


def test_sample_advanced_filter_is_opt_in_and_matches_the_original_sample() -> None:
    path = INFRA / "app/eventgrid.bicep"
    advanced = only(path, "Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]["filter"]
    assert advanced["advancedFilters"]["operator"]["operands"] == {
        "condition": "enableSampleFilter",
        "true_value": "sampleFilters",
        "false_value": [],
    }
    assert variable(path, "sampleFilters") == [
        {"operatorType": "StringIn", "key": "data.modelTags.ncd", "values": ["true"]},
        {"operatorType": "StringIn", "key": "data.modelTags.stage", "values": ["production"]},
    ]
    assert parse(path)["parameters"]["enableSampleFilter"]["default"] is False
    assert parse(INFRA / "workspace.bicep")["parameters"]["enableSampleFilter"]["default"] == "false"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_parameter_or_output_carries_a_secret(path: Path) -> None:
    parsed = parse(path)
    for name, param in parsed.get("parameters", {}).items():
        assert not SECRET_WORDS.search(name), f"parameter {name}"
        assert not SECRET_WORDS.search(json.dumps(param.get("default"))), f"default of {name}"
        assert "secure" not in {d["type"] for d in param["decorators"]}, f"@secure() {name}"
    for name, output in parsed.get("outputs", {}).items():
        assert not SECRET_WORDS.search(name), f"output {name}"
        assert not SECRET_WORDS.search(json.dumps(output["value"])), f"value of output {name}"
    assert not re.search(r"\blist\w*\(", path.read_text()), "list*() functions return keys"


def role_assignments(path: Path) -> list[tuple[str, str]]:
    """(scope resource type, role id) of each role assignment, checking its shape on the way."""
    declared = resources(path)
    text = path.read_text()
    found = []
    for symbol, resource in declared.items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        scope = config["scope"]
        role_id = config["properties"]["roleDefinitionId"]
        if "operator" in role_id:  # a custom role defined beside it: ``role.id``
            found.append((declared[scope]["type"], _custom_role(path, declared, config, scope, symbol)))
            continue
        role_var = role_id["function"]["parameters"]["resource_name_1"]
        assert config["name"]["function"] == {
            "type": "guid",
            "parameters": {
                "base_string": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": scope, "operand_2": "id"},
                    }
                },
                "extra_string_1": "principalId",
                "extra_string_2": role_var,
            },
        }, f"{path.name}:{symbol} name must be guid(scope.id, principalId, roleId)"
        # The app's identities are service principals; the operator may be a user, a group or a service principal.
        expected_type = "principalType" if path == OPERATOR_RBAC else "ServicePrincipal"
        assert config["properties"]["principalType"] == expected_type
        assert config["properties"]["principalId"] == "principalId"
        preceding = text[: text.index(f"resource {symbol} ")].rstrip().splitlines()[-1]
        assert preceding.startswith("//"), f"{path.name}:{symbol} needs a comment justifying the role"
        found.append((declared[scope]["type"], variable(path, role_var)))
    return found


def _custom_role(
    path: Path, declared: dict[str, dict[str, Any]], config: dict[str, Any], scope: str, symbol: str
) -> str:
    """A custom role's assignment: named guid(scope.id, principalId, role.id), the role assignable on that scope
    alone, justified by a comment; the role is returned as its actions."""
    role = config["properties"]["roleDefinitionId"]["operator"]["operands"]["operand_1"]
    definition = declared[role]
    assert definition["type"] == "Microsoft.Authorization/roleDefinitions"
    accessor = {"operator": {"type": "property_accessor", "operands": {"operand_1": scope, "operand_2": "id"}}}
    assert definition["config"]["properties"]["assignableScopes"] == [accessor], f"{path.name}:{role} assignable"
    assert config["name"]["function"]["parameters"]["base_string"] == accessor, f"{path.name}:{symbol} name"
    assert config["properties"]["principalType"] == "ServicePrincipal"
    [permission] = definition["config"]["properties"]["permissions"]
    assert permission["notActions"] == [] and not permission.get("dataActions")
    text = path.read_text()
    for name in (role, symbol):
        preceding = text[: text.index(f"resource {name} ")].rstrip().splitlines()[-1]
        assert preceding.startswith("//"), f"{path.name}:{name} needs a comment justifying the role"
    return "custom: " + ", ".join(permission["actions"])


def test_role_assignments_are_exactly_the_intended_least_privilege_set() -> None:
    found = Counter(pair for path in BICEP_FILES if path != OPERATOR_RBAC for pair in role_assignments(path))
    assert found == EXPECTED_ROLES
    assert Counter(role_assignments(OPERATOR_RBAC)) == OPERATOR_ROLES


#: Actions and NotActions of the built-in roles the app holds on the workspace, as "Azure built-in roles" lists
#: them (AzureML Data Scientist f6c7c914-..., Monitoring Reader 43d0d8ad-...).
BUILT_IN_ROLE_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "f6c7c914-8db3-469d-8ca1-694a8f32e121": (
        (
            "Microsoft.MachineLearningServices/workspaces/*/read",
            "Microsoft.MachineLearningServices/workspaces/*/action",
            "Microsoft.MachineLearningServices/workspaces/*/delete",
            "Microsoft.MachineLearningServices/workspaces/*/write",
        ),
        (
            "Microsoft.MachineLearningServices/workspaces/delete",
            "Microsoft.MachineLearningServices/workspaces/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/delete",
            "Microsoft.MachineLearningServices/workspaces/computes/listKeys/action",
            "Microsoft.MachineLearningServices/workspaces/listKeys/action",
            "Microsoft.MachineLearningServices/workspaces/hubs/write",
            "Microsoft.MachineLearningServices/workspaces/hubs/delete",
            "Microsoft.MachineLearningServices/workspaces/featurestores/write",
            "Microsoft.MachineLearningServices/workspaces/featurestores/delete",
        ),
    ),
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": (
        ("*/read", "Microsoft.OperationalInsights/workspaces/search/action", "Microsoft.Support/*"),
        (),
    ),
}
#: What the app calls on the workspace and its endpoints (an action per client call), and who calls it.
WORKSPACE_ACTIONS_USED = {
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write": "rollout: create or update an endpoint",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write": "rollout: create a deployment",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete": "cleanup of old deployments",
    "Microsoft.MachineLearningServices/workspaces/models/versions/read": "plan: read the registered model",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action": "smoke test, key auth",
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action": "smoke test, Entra token auth",
    "Microsoft.Insights/metrics/read": "metric gates: endpoint metrics",
}


def _matches(pattern: str, action: str) -> bool:
    """Azure RBAC's wildcard match: ``*`` stands for any run of characters, case-insensitively."""
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("*"))
    return re.fullmatch(regex, action.lower()) is not None


def test_the_workspace_roles_grant_every_action_the_app_calls_and_no_workspace_or_monitoring_writes() -> None:
    roles = [role for scope, role in role_assignments(INFRA / "app/workspace-rbac.bicep")]

    def granted(action: str) -> bool:
        return any(
            any(_matches(p, action) for p in BUILT_IN_ROLE_ACTIONS[role][0])
            and not any(_matches(p, action) for p in BUILT_IN_ROLE_ACTIONS[role][1])
            for role in roles
        )

    missing = {action: why for action, why in WORKSPACE_ACTIONS_USED.items() if not granted(action)}
    assert not missing, f"no role on the workspace grants {missing}"
    for forbidden in (
        "Microsoft.MachineLearningServices/workspaces/write",
        "Microsoft.MachineLearningServices/workspaces/listKeys/action",
        "Microsoft.Insights/diagnosticSettings/write",
        "Microsoft.Insights/metricAlerts/write",
    ):
        assert not granted(forbidden), forbidden


def test_operator_roles_are_opt_in_and_scoped_to_the_app_s_own_resources() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["operatorPrincipalId"]["default"] == ""
    module = main["modules"]["operatorRbac"]["config"]
    assert "condition" in module, "the operator's roles are granted only when operatorPrincipalId is set"
    params = module["config"]["params"]
    assert params["rolloutTableName"] == "rolloutTableName"
    assert variable(INFRA / "main.bicep", "rolloutTableName") == "rollouts"
    assert module["config"]["scope"] == "rg"
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["operatorPrincipalId"]["value"] == "${OPERATOR_PRINCIPAL_ID=}"


def code_settings() -> set[str]:
    """Names the app reads: env-name literals in app/platform/settings.py and %NAME% in function_app.py."""
    settings_py = ROOT / "app" / "platform" / "settings_reader.py"
    if not settings_py.exists():
        return FALLBACK_CODE_SETTINGS
    literals = {
        node.value
        for node in ast.walk(ast.parse(settings_py.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    names = {value for value in literals if SETTING_NAME.fullmatch(value)}
    assert names, "no setting names found in app/platform/settings.py"
    app = ROOT / "function_app.py"
    if app.exists():
        names |= set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", app.read_text()))
    return names


def bicep_settings() -> set[str]:
    function = INFRA / "app/function.bicep"
    config = only(function, "Microsoft.Web/sites/config")
    assert config["name"] == "appsettings"
    assert config["properties"]["function"] == {
        "type": "union",
        "parameters": {"arg_1": "appSettings", "arg_2": "hostSettings"},
    }
    passed = parse(INFRA / "main.bicep")["modules"]["function"]["config"]["params"]["appSettings"]
    return keys_of(INFRA / "main.bicep", passed) | keys_of(function, "hostSettings")


def documented_optional_settings() -> set[str]:
    """Settings whose row in docs/configuration.md says who sets them in Azure (its last cell is not empty)."""
    text = (INFRA.parent / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `([A-Za-z][A-Za-z0-9_]+)` \|.*\|\s*([^|]*?)\s*\|\s*$", text, re.MULTILINE)
    assert rows, "docs/configuration.md needs the settings table"
    return {name for name, in_azure in rows if in_azure}


#: Set by the App Service platform itself on every Function App; the Bicep must not set them.
PLATFORM_SETTINGS = frozenset({"WEBSITE_HOSTNAME"})


def test_every_setting_the_code_reads_is_set_or_documented_as_optional() -> None:
    missing = code_settings() - bicep_settings() - documented_optional_settings() - PLATFORM_SETTINGS
    assert not missing, f"set these in infra/main.bicep or document them as optional: {sorted(missing)}"


def test_host_and_identity_settings_use_the_managed_identity() -> None:
    settings = variable(INFRA / "app/function.bicep", "hostSettings")
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert auth == "ClientId=${identityClientId};Authorization=AAD"
    everything = bicep_settings()
    assert "NOTIFY_TOPIC_KEY" not in everything, "the topic is reached with the identity, never a key"
    assert "AzureWebJobsStorage" not in everything, "a storage connection string means shared keys"
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & everything, "Flex rejects these"
    main = variable(INFRA / "main.bicep", "appSettings")
    assert main["AML_ALLOWED_WORKSPACES"] == "amlWorkspaceId"
    assert main["DEPLOY_MODE"] == "deployMode"
    assert parse(INFRA / "main.bicep")["parameters"]["deployMode"]["default"] == "plan"


def test_storage_and_monitoring_accept_entra_id_only() -> None:
    props = only(INFRA / "app/storage.bicep", STORAGE)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"
    tables = parse(INFRA / "main.bicep")["modules"]["storage"]["config"]["params"]["tableNames"]
    assert {variable(INFRA / "main.bicep", name) for name in tables} == {"rollouts", "idempotency"}
    insights = only(INFRA / "app/monitoring.bicep", "Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    topic = only(INFRA / "app/topic.bicep", "Microsoft.EventGrid/topics")["properties"]
    assert topic["inputSchema"] == "CloudEventSchemaV1_0"
    assert topic["disableLocalAuth"] is True


def test_function_app_runs_python_313_on_flex_consumption_for_azd() -> None:
    path = INFRA / "app/function.bicep"
    plan = only(path, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = only(path, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["tags"]["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "function"}
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert set(config["scaleAndConcurrency"]) == {"maximumInstanceCount", "instanceMemoryMB"}
    assert site["properties"]["httpsOnly"] is True


def test_parameters_file_feeds_main_bicep_from_the_azd_environment() -> None:
    params = parse(INFRA / "main.bicep")["parameters"]
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(values) <= set(params), "parameters file names a parameter main.bicep lacks"
    assert {name for name, p in params.items() if p["default"] is None} <= set(values)
    assert all(re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(=[^}]*)?\}", v["value"]) for v in values.values())
    assert values["amlWorkspaceId"]["value"] == "${AML_WORKSPACE_ID}"
    assert values["deployMode"]["value"] == "${DEPLOY_MODE=plan}"


def test_azd_project_and_postdeploy_hook_pass_what_workspace_bicep_needs() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert project["services"] == {"function": {"project": ".", "language": "python", "host": "function"}}
    hook = project["hooks"]["postdeploy"]
    assert hook["posix"]["run"] == "infra/hooks/postdeploy.sh"
    assert hook["windows"]["run"] == "infra/hooks/postdeploy.ps1"
    required = {n for n, p in parse(INFRA / "workspace.bicep")["parameters"].items() if p["default"] is None}
    main_outputs = set(parse(INFRA / "main.bicep")["outputs"])
    for script in (ROOT / hook["posix"]["run"], ROOT / hook["windows"]["run"]):
        text = script.read_text()
        assert {n for n in required if f"{n}=" not in text} == set(), script.name
        used = set(re.findall(r"(?:\$\{?|\$env:|')((?:AML|AZURE|APP|DEADLETTER)_[A-Z_]+)", text))
        # Anything else must be an output of main.bicep, or the hook reads a variable nobody sets.
        optional_inputs = {"AML_WORKSPACE_ID", "AZURE_ENV_NAME", "AML_EVENT_SAMPLE_FILTER"}
        assert used - main_outputs <= optional_inputs, script.name
    assert "set -euo pipefail" in (ROOT / hook["posix"]["run"]).read_text()


def duration_seconds(value: str) -> int:
    hours, minutes, seconds = (int(part) for part in value.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_host_json_fits_flex_consumption_and_keeps_requests_unsampled() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    timeout = duration_seconds(host["functionTimeout"])
    main = parse(INFRA / "main.bicep")
    budget_param = main["variables"]["appSettings"]["value"]["RECONCILE_BUDGET_SECONDS"]
    reconcile_budget = int(main["parameters"][budget_param]["default"])
    assert reconcile_budget < timeout <= FLEX_GUARANTEED_TIMEOUT_SECONDS
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Request" in sampling["excludedTypes"].split(";")


def test_the_promotion_subscription_delivers_only_promotions_as_cloud_events_with_dead_letters() -> None:
    path = INFRA / "promotion-events.bicep"
    props = only(path, "Microsoft.EventGrid/topics/eventSubscriptions")["properties"]
    assert props["destination"]["endpointType"] == "AzureFunction"
    assert props["destination"]["properties"]["resourceId"] == "${functionAppId}/functions/on_aml_event"
    assert props["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    assert props["filter"]["includedEventTypes"] == ["AmlEvents.Model.Promoted"]
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert props["deadLetterWithResourceIdentity"]["identity"] == {"type": "SystemAssigned"}


def test_the_postdeploy_hook_grants_the_registry_roles_and_subscribes_to_promotions_only_when_asked() -> None:
    registry = {n for n, p in parse(INFRA / "registry.bicep")["parameters"].items() if p["default"] is None}
    events = {n for n, p in parse(INFRA / "promotion-events.bicep")["parameters"].items() if p["default"] is None}
    guards = {"postdeploy.sh": 'if [[ -n "${{{}:-}}" ]]', "postdeploy.ps1": "if ($env:{})"}
    for name, guard in guards.items():
        text = (INFRA / "hooks" / name).read_text()
        assert {n for n in registry | events if f"{n}=" not in text} == set(), name
        for variable_name in ("PROMOTE_TO_REGISTRY_ID", "PROMOTION_REGISTRY_ID", "PROMOTION_SOURCE_TOPIC_ID"):
            assert guard.format(variable_name) in text, (name, variable_name)
        assert "registry.bicep" in text and "promotion-events.bicep" in text
