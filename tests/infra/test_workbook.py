"""The Azure Monitor workbook: valid against its schema, reading only metrics, dimensions and log lines the app
really writes, and deployed by main.bicep over the app's Application Insights. (It was never rendered: no Azure.)"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.infra.test_bicep import INFRA, ROOT, only, parse

WORKBOOK = INFRA / "app" / "workbook.json"
# The app's metrics: the platform's (ARM requests) and the rollout's (outcomes, time to live, gates, waiting).
TELEMETRY = "\n".join(
    (ROOT / path).read_text() for path in ("app/platform/telemetry.py", "app/rollout/run/telemetry.py")
)


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbook_check", INFRA / "workbook_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workbook() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(WORKBOOK.read_text())
    return body


def queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in workbook()["items"] if item["type"] == 3}


def test_the_workbook_is_valid_against_its_schema() -> None:
    check = checker()
    assert check.problems(workbook(), json.loads(check.SCHEMA.read_text())) == []
    assert check.main() == 0


def test_the_check_names_each_problem_it_finds() -> None:
    check = checker()
    schema = json.loads(check.SCHEMA.read_text())
    broken = copy.deepcopy(workbook())
    first = next(i for i in broken["items"] if i["type"] == 3)
    first["content"]["visualization"] = "sparkles"
    assert any(p.startswith("items/2/content/visualization: 'sparkles'") for p in check.problems(broken, schema))
    broken = copy.deepcopy(workbook())
    query = next(i for i in broken["items"] if i["type"] == 3)
    query["content"]["timeContextFromParameter"] = "Window"
    query["content"]["query"] += " | where endpoint == '{Endpoint}'"
    found = check.problems(broken, schema)
    assert f"{query['name']}: time parameter 'Window' is not declared" in found
    assert f"{query['name']}: the query uses {{Endpoint}}, which is not a declared parameter" in found


def test_it_shows_rollouts_by_state_gate_verdicts_time_to_live_and_notifications() -> None:
    kql = "\n".join(queries().values())
    for metric in ("rollouts", "rollouts.gate_evaluations", "rollouts.time_to_live"):
        assert f'name == "{metric}"' in kql, metric
    assert 'message startswith "notify "' in kql


def test_every_metric_and_dimension_it_reads_is_one_the_app_records() -> None:
    recorded = set(re.findall(r'create_(?:counter|histogram|observable_gauge)\(\s*"([^"]+)"', TELEMETRY))
    read = {name for query in queries().values() for name in re.findall(r'name == "([^"]+)"', query)}
    assert read and read <= recorded, read - recorded
    dimensions = {d for query in queries().values() for d in re.findall(r'customDimensions\["([^"]+)"\]', query)}
    assert dimensions and all(f'"{d}":' in TELEMETRY for d in dimensions), dimensions


def test_its_log_queries_match_lines_the_app_writes() -> None:
    notify = (ROOT / "app" / "notify" / "notifier.py").read_text()
    assert '"notify %s subject=%s source_event=%s: %s"' in notify  # parse message with "notify " kind " subject="
    assert '"notification %s to %s failed' in notify  # startswith "notification " and has " failed"


def test_main_deploys_it_over_the_app_s_application_insights() -> None:
    module = parse(INFRA / "main.bicep")["modules"]["workbook"]
    assert module["detail"]["path"] == "app/workbook.bicep"
    source = module["config"]["params"]["applicationInsightsId"]["operator"]["operands"]
    assert source["operand_1"] == "monitoring" and "applicationInsightsId" in json.dumps(source["operand_2"])
    resource = only(INFRA / "app" / "workbook.bicep", "Microsoft.Insights/workbooks")
    assert resource["kind"] == "shared" and resource["properties"]["category"] == "workbook"
    assert "loadTextContent('workbook.json')" in (INFRA / "app" / "workbook.bicep").read_text()
    assert Path(INFRA / "app" / "workbook.json").is_file()
