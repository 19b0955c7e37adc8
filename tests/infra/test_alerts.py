"""Alerts on by default and decision logs never sampled out: infra/app/alerts.bicep, its wiring, host.json."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from tests.infra.test_bicep import INFRA, ROOT, only, parse, resources, variable

pytestmark = pytest.mark.fast


def test_host_json_never_samples_out_traces_requests_or_exceptions() -> None:
    # The decision log lines ("rollout x/y is now failed: ...", "reconcile: ...") are traces; the KQL recipes in
    # docs/operations.md and the log alerts count them, so a sampled-out line is a missed alert.
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert {"Trace", "Request", "Exception"} <= excluded
    # Dependencies (every ARM and storage call) stay sampled: they are the volume sampling exists for.
    assert sampling["isEnabled"] is True
    assert "Dependency" not in excluded


ALERTS = INFRA / "app/alerts.bicep"
DEADLETTER_ALERT = INFRA / "app/deadletter-alert.bicep"
LOG_ALERT = "Microsoft.Insights/scheduledQueryRules"
KQL_REGEX = re.compile(r'@"([^"]+)"')


def rule(symbol: str) -> dict[str, Any]:
    found = resources(ALERTS)[symbol]
    assert found["type"] == LOG_ALERT
    return found["config"]


def query(symbol: str) -> str:
    [criterion] = rule(symbol)["properties"]["criteria"]["allOf"]
    return str(variable(ALERTS, criterion["query"]))


def engine_log_formats(module: str) -> list[str]:
    """The %-format strings the app's loggers are called with, read from the module's source."""
    tree = ast.parse((ROOT / module).read_text())
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"info", "warning", "error"}
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


def test_main_deploys_the_action_group_and_log_alerts_on_its_application_insights() -> None:
    module = parse(INFRA / "main.bicep")["modules"]["alerts"]["config"]
    assert module["scope"] == "rg"
    params = module["params"]
    insights = params["applicationInsightsId"]["operator"]["operands"]
    assert insights["operand_1"] == "monitoring"
    assert insights["operand_2"]["operator"]["operands"]["operand_2"] == "applicationInsightsId"
    assert (params["alertEmail"], params["extraActionGroupId"]) == ("alertEmail", "alertExtraActionGroupId")
    main_params = parse(INFRA / "main.bicep")["parameters"]
    for name in ("alertEmail", "alertExtraActionGroupId", "reconcilerSilenceWindow"):
        assert any(d["type"] == "description" for d in main_params[name]["decorators"]), name
    # No prompt from azd: an empty email is a choice (alerts fire in Azure Monitor, and the hook says so).
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["alertEmail"]["value"] == "${ALERT_EMAIL=}"
    assert main_params["alertEmail"]["default"] == ""


def test_the_action_group_emails_the_alert_address_when_one_is_given() -> None:
    group = only(ALERTS, "Microsoft.Insights/actionGroups")
    assert group["location"] == "global"
    assert group["properties"]["enabled"] is True
    receivers = variable(ALERTS, group["properties"]["emailReceivers"])["operator"]["operands"]
    assert receivers["condition"] == {"function": {"type": "empty", "parameters": {"item_to_test": "alertEmail"}}}
    assert receivers["true_value"] == []
    assert receivers["false_value"] == [
        {"name": "operator", "emailAddress": "alertEmail", "useCommonAlertSchema": True}
    ]


@pytest.mark.parametrize("symbol", ["functionFailures", "rolloutsFailed", "reconcilerSilent"])
def test_each_log_alert_watches_the_apps_insights_and_notifies_the_action_group(symbol: str) -> None:
    props = rule(symbol)["properties"]
    assert props["enabled"] is True
    assert props["scopes"] == ["applicationInsightsId"]
    assert props["actions"]["actionGroups"] == "actionGroupIds"
    ids = variable(ALERTS, "actionGroupIds")["operator"]["operands"]
    own = {"operator": {"type": "property_accessor", "operands": {"operand_1": "actionGroup", "operand_2": "id"}}}
    assert ids["true_value"] == [own]
    assert ids["false_value"] == [own, "extraActionGroupId"]
    assert rule(symbol)["kind"] == "LogAlert"


def test_function_failures_count_failed_invocations_exceptions_and_permanent_failures() -> None:
    kql = query("functionFailures")
    assert "requests | where success == false" in kql
    assert "exceptions |" in kql
    # The dispatcher's line for an event it acknowledged after a permanent failure.
    assert '"permanently, acknowledged"' in kql
    assert any("permanently, acknowledged" in fmt for fmt in engine_log_formats("app/intake/dispatch.py"))
    [criterion] = rule("functionFailures")["properties"]["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0)


def test_the_rollout_alert_matches_the_engines_transition_line_for_failed_and_rolled_back_only() -> None:
    from app.rollout.decide.model import State

    kql = query("rolloutsFailed")
    [where, rollout, state] = (re.compile(pattern) for pattern in KQL_REGEX.findall(kql))
    [transition] = [fmt for fmt in engine_log_formats("app/rollout/run/records.py") if " is now " in fmt]
    assert State.FAILED.value == "failed"
    for value in ("failed", "rolled_back"):
        line = transition % ("credit", "credit-v2", value, "AML refused: 400 BadRequest")
        assert where.search(line), line
        assert rollout.search(line).group(1) == "credit/credit-v2"  # type: ignore[union-attr]
        assert state.search(line).group(1) == value  # type: ignore[union-attr]
    for other in State:
        if other.value not in ("failed", "rolled_back"):
            assert not where.search(transition % ("credit", "credit-v2", other.value, "fine"))
    [criterion] = rule("rolloutsFailed")["properties"]["criteria"]["allOf"]
    assert criterion["dimensions"] == [{"name": "rollout", "operator": "Include", "values": ["*"]}]


def test_the_heartbeat_alert_fires_when_no_reconcile_line_arrives_in_its_window() -> None:
    kql = query("reconcilerSilent")
    [literal] = re.findall(r'contains_cs "([^"]+)"', kql)
    formats = engine_log_formats("app/rollout/run/reconcile.py")
    # Every line the reconciler writes counts as a heartbeat, the idle one included.
    assert formats and all(fmt.startswith(literal) for fmt in formats)
    assert "reconcile: 0 endpoint(s), nothing to do" in formats
    props = rule("reconcilerSilent")["properties"]
    [criterion] = props["criteria"]["allOf"]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == ("Count", "LessThan", 1)
    assert props["windowSize"] == "reconcilerSilenceWindow"
    window = parse(ALERTS)["parameters"]["reconcilerSilenceWindow"]["default"]
    schedule = parse(INFRA / "main.bicep")["parameters"]["reconcileSchedule"]["default"]
    assert (window, schedule) == ("PT15M", "0 */1 * * * *")  # 15 missed ticks, not one late one


def test_dead_letters_alert_on_the_system_topics_dead_lettered_count_for_the_apps_subscription() -> None:
    alert = only(DEADLETTER_ALERT, "Microsoft.Insights/metricAlerts")
    props = alert["properties"]
    assert props["scopes"] == [
        {"operator": {"type": "property_accessor", "operands": {"operand_1": "systemTopic", "operand_2": "id"}}}
    ]
    topic = resources(DEADLETTER_ALERT)["systemTopic"]
    assert (topic["type"], topic["existing"]) == ("Microsoft.EventGrid/systemTopics", True)
    [criterion] = props["criteria"]["allOf"]
    assert criterion["metricNamespace"] == "Microsoft.EventGrid/systemTopics"
    assert criterion["metricName"] == "DeadLetteredCount"
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == ("Total", "GreaterThan", 0)
    assert criterion["dimensions"] == [
        {"name": "EventSubscriptionName", "operator": "Include", "values": ["eventSubscriptionName"]}
    ]
    assert "actionGroupIds" in json.dumps(props["actions"])
    # Wired from workspace.bicep with the topic and subscription it just created, and the ids main.bicep output.
    module = parse(INFRA / "workspace.bicep")["modules"]["deadLetterAlert"]["config"]
    params = module["config"]["params"]
    assert "events" in json.dumps(params["systemTopicName"]) and "systemTopicName" in json.dumps(
        params["systemTopicName"]
    )
    assert "eventSubscriptionId" in json.dumps(params["eventSubscriptionName"])
    assert "alertActionGroupIds" in json.dumps(params["actionGroupIds"])
    assert "ALERT_ACTION_GROUP_IDS" in parse(INFRA / "main.bicep")["outputs"]
    for hook in ("postdeploy.sh", "postdeploy.ps1"):
        assert "alertActionGroupIds=" in (INFRA / "hooks" / hook).read_text(), hook
