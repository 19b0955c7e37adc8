"""The runbooks in docs/operations.md work: their HTTP calls against the unchanged app served over HTTP, their
ledger surgery against Azurite, their dead-letter replay with ``python -m tools.replay``, and their KQL matches
lines the code really writes."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app.intake.events import envelope_from_function_event, parse
from devkit import runner
from devkit.harness import app_environment, model_registered
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_ID, WORKSPACE_NAME, DevStack
from tools import replay

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
FUNCTION_KEY = "runbook-function-key"
EVENTGRID_KEY = "runbook-eventgrid-key"
MASTER_KEY = "runbook-master-key"

# The extra properties Event Grid adds to a dead-lettered event, per schema, as Microsoft's "Dead-letter events"
# (learn.microsoft.com/azure/event-grid/delivery-and-retry#dead-letter-events) shows them.
DEAD_LETTER_EVENTGRID = {
    "deadLetterReason": "MaxDeliveryAttemptsExceeded",
    "deliveryAttempts": 30,
    "lastDeliveryOutcome": "Probation",
    "lastHttpStatusCode": 500,
    "publishTime": "2026-11-22T10:15:31.0265758Z",
    "lastDeliveryAttemptTime": "2026-11-23T10:15:31.0465788Z",
}
DEAD_LETTER_CLOUDEVENTS = {
    "deadletterreason": "MaxDeliveryAttemptsExceeded",
    "deliveryattempts": 30,
    "lastdeliveryoutcome": "Probation",
    "publishtime": "2026-11-22T10:15:31.0265758Z",
}


def runbooks() -> str:
    text = OPERATIONS.read_text()
    return text[text.index("## Runbooks") : text.index("\n## Logs")]


def dead_letter_blob(*events: dict[str, Any]) -> list[dict[str, Any]]:
    """A dead-letter blob's content: the events as published, each with the dead-letter properties added."""
    return [{**e, **(DEAD_LETTER_CLOUDEVENTS if "specversion" in e else DEAD_LETTER_EVENTGRID)} for e in events]


# ------------------------------------------------------------------------------------------ offline, no stack


def test_the_runbooks_have_a_table_of_contents_that_links_each_one() -> None:
    text = runbooks()
    headings = re.findall(r"^### (.+)$", text, re.MULTILINE)
    assert len(headings) == 9, headings  # "Before you start" and the eight runbooks
    for heading in headings[1:]:
        anchor = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        assert f"(#{anchor})" in text.split("### Before you start")[0], f"no table-of-contents entry for {heading}"


def test_every_storage_command_in_the_runbooks_signs_in_with_entra_id() -> None:
    # Shared keys are off on the account: without --auth-mode login az tries listKeys and fails.
    commands = re.findall(r"^az storage .*$", runbooks(), re.MULTILINE)
    assert commands
    assert all("--auth-mode login" in command for command in commands), commands


def test_the_runbooks_kql_matches_lines_the_code_writes() -> None:
    """Each ``message has "..."`` literal of the runbooks is a part of a line the code really logs."""
    engine = (ROOT / "app" / "rollout" / "run" / "records.py").read_text()
    transition = '"rollout %s/%s is now %s: %s"'
    assert transition in engine, "the rollout transition line changed: update the runbooks' KQL"
    rollout_line = json.loads(transition) % ("credit", "credit-v7", "live", "traffic set")
    event = runner.to_function_event(model_registered("credit_risk", 7, eid="evt-1"))
    event_line = f"handled {parse(envelope_from_function_event(event)).label}"
    literals = re.findall(r'message has "([^"]+)"', runbooks())
    assert len(literals) >= 3, literals
    for literal in literals:
        expected = literal.replace("<event id>", "evt-1")
        assert expected in rollout_line or expected in event_line, f"{literal!r} matches no line the app writes"


def test_replay_reads_a_dead_letter_blob_of_either_schema(tmp_path: Path) -> None:
    blob = dead_letter_blob(
        model_registered("credit_risk", 7, eid="evt-eg"), model_registered("credit_risk", 8, schema="CloudEvents")
    )
    path = tmp_path / "dead.json"
    path.write_text(json.dumps(blob))
    events = replay.read_events(path)
    assert [e["deadLetterReason" if "eventType" in e else "deadletterreason"] for e in events] == [
        "MaxDeliveryAttemptsExceeded"
    ] * 2
    parsed = [parse(envelope_from_function_event(runner.to_function_event(e))) for e in events]
    assert [(p.data.model_name, p.data.model_version) for p in parsed] == [("credit_risk", "7"), ("credit_risk", "8")]


# ------------------------------------------------------------------------------------------ against the dev kit


@pytest.fixture
def hosted(stack: DevStack) -> Iterator[Any]:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    from acceptance.dryrun import HostedApp

    with app_environment(stack):
        ml = MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)
        with HostedApp(stack, ml, function_key=FUNCTION_KEY, eventgrid_key=EVENTGRID_KEY, master_key=MASTER_KEY) as app:
            yield app


def status(url: str, **params: str) -> dict[str, Any]:
    """``curl -fsS -H "x-functions-key: $KEY" "$URL/api/rollouts?..."``."""
    response = requests.get(f"{url}/api/rollouts", params=params, headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.integration
def test_a_dead_letter_blob_is_replayed_and_found_by_event_id_and_model_version(
    hosted: Any, stack: DevStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.aml.seed_model("credit_risk", 7, tags={"deploy": "true", "endpoint": "credit"})
    path = tmp_path / "dead.json"
    path.write_text(json.dumps(dead_letter_blob(model_registered("credit_risk", 7, eid="evt-dead-1"))))

    code = replay.main([str(path), "--to", hosted.url, "--key", EVENTGRID_KEY])

    assert code == replay.EXIT_OK, capsys.readouterr().out
    assert "evt-dead-1 Microsoft.MachineLearningServices.ModelRegistered -> HTTP 202" in capsys.readouterr().out
    # "The rollouts an event asked for": jq '.rollouts[] | select(.eventIds | index($id))'
    by_event = [r for r in status(hosted.url)["rollouts"] if "evt-dead-1" in r["eventIds"]]
    assert [(r["endpoint"], r["model"], r["version"]) for r in by_event] == [("credit", "credit_risk", "7")]
    # "Every rollout of one model, and one version of it"
    by_model = [r for r in status(hosted.url, model="credit_risk")["rollouts"] if r["version"] == "7"]
    assert by_model == [r for r in by_model if r["deployment"] == by_event[0]["deployment"]] and by_model
    # A wrong key is refused, as the host refuses it.
    assert (
        requests.get(f"{hosted.url}/api/rollouts", headers={"x-functions-key": "nope"}, timeout=30).status_code == 401
    )


@pytest.mark.integration
def test_retry_without_the_controls_deletes_the_ledger_row_and_the_resync_brings_the_rollout_back(
    hosted: Any, stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.data.tables import TableClient

    stack.aml.seed_model("credit_risk", 7, tags={"deploy": "true", "endpoint": "credit"})
    runner.deliver([model_registered("credit_risk", 7, eid="evt-first")])
    (rollout,) = status(hosted.url, endpoint="credit")["rollouts"]
    deployment = rollout["deployment"]

    # The runbook's query and delete, as `az storage entity query/delete --auth-mode login` send them.
    text = runbooks()
    assert "--filter \"Endpoint eq 'credit' and RowKey eq 'credit-v7'\"" in text
    table = TableClient.from_connection_string(stack.env["AzureWebJobsStorage"], "rollouts")
    rows = list(table.query_entities(f"Endpoint eq 'credit' and RowKey eq '{deployment}'", select=["PartitionKey"]))
    assert len(rows) == 1 and rows[0]["PartitionKey"].endswith("~credit")
    table.delete_entity(partition_key=rows[0]["PartitionKey"], row_key=deployment)
    assert status(hosted.url, endpoint="credit")["rollouts"] == []

    # "Run the resync now": POST /admin/functions/resync_models with the master key.
    response = requests.post(
        f"{hosted.url}/admin/functions/resync_models",
        headers={"x-functions-key": MASTER_KEY, "Content-Type": "application/json"},
        json={"input": ""},
        timeout=60,
    )

    assert response.status_code == 202
    (again,) = status(hosted.url, endpoint="credit")["rollouts"]
    assert again["deployment"] == deployment
    assert again["eventIds"] == ["resync:credit_risk:7"]
    assert again["state"] in ("pending", "deploying", "live")
    assert WORKSPACE_ID.lower() == again["workspace"].lower()


def control(url: str, endpoint: str, deployment: str, action: str, reason: str = "") -> tuple[int, dict[str, Any]]:
    """``curl -X POST -H "x-functions-key: $KEY" -d '{"reason": ...}' "$URL/api/rollouts/{e}/{d}/{action}"``."""
    response = requests.post(
        f"{url}/api/rollouts/{endpoint}/{deployment}/{action}",
        headers={"x-functions-key": FUNCTION_KEY, "Content-Type": "application/json"},
        json={"reason": reason} if reason else None,
        timeout=60,
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.mark.integration
def test_the_kill_switch_holds_every_rollout_and_the_controls_steer_one_over_http(hosted: Any, stack: DevStack) -> None:
    stack.aml.seed_model("credit_risk", 7, tags={"deploy": "true", "endpoint": "credit"})
    with app_environment(stack, DEPLOY_MODE="hold"):
        runner.deliver([model_registered("credit_risk", 7, eid="evt-held")])
        runner.tick()
        (held,) = status(hosted.url, endpoint="credit")["rollouts"]
        assert held["state"] == "pending" and "DEPLOY_MODE=hold" in held["reason"], held
        assert stack.aml.endpoint_state("credit") is None, "hold wrote to Azure ML"
        deployment = held["deployment"]

        assert control(hosted.url, "credit", "no-such", "abort")[0] == 404
        code, paused = control(hosted.url, "credit", deployment, "pause", reason="incident")
        assert code == 202 and paused["action"] == "pause", paused
        code, again = control(hosted.url, "credit", deployment, "pause")
        assert code == 202 and again["effect"] == "none", again  # idempotent, as the runbook says
        assert control(hosted.url, "credit", deployment, "resume")[0] == 202
        code, aborted = control(hosted.url, "credit", deployment, "abort", reason="stop here")
        assert code == 202 and aborted["rollout"]["state"] == "aborted", aborted
        code, refused = control(hosted.url, "credit", deployment, "pause")
        assert code == 409 and refused["error"], refused
        code, retried = control(hosted.url, "credit", deployment, "retry", reason="quota raised")
        assert code == 202 and retried["rollout"]["state"] == "pending", retried
    # Resume everything: DEPLOY_MODE=apply again, and the next tick carries the rollout on.
    runner.tick()
    (resumed,) = status(hosted.url, endpoint="credit")["rollouts"]
    assert resumed["state"] != "aborted" and "DEPLOY_MODE=hold" not in resumed["reason"], resumed


# ------------------------------------------------------------------------------ every CLI line, against the dev kit


def cli_blocks() -> list[tuple[str, list[list[str]]]]:
    """(runbook, commands) for each code block with ``aml-rollouts`` lines, in order, and each mention in the prose.

    A line is cut at a comment or a pipe: what runs is the command itself (``-o json | jq ...`` runs ``-o json``).
    """
    found: list[tuple[str, list[list[str]]]] = []
    for section in re.split(r"^### ", runbooks(), flags=re.MULTILINE)[1:]:
        heading = section.splitlines()[0]
        parts = section.split("```")
        for block in parts[1::2]:  # inside the fences
            lines = [line for line in block.splitlines() if line.startswith("aml-rollouts ")]
            if lines:
                found.append((heading, [shlex.split(line.split(" #")[0].split(" |")[0])[1:] for line in lines]))
        for prose in parts[0::2]:
            found += [(heading, [shlex.split(span)]) for span in re.findall(r"`aml-rollouts ([^`]+)`", prose)]
    return found


CLI_BLOCKS = cli_blocks()


def test_each_runbook_shows_the_command_line_beside_the_raw_http_call() -> None:
    text = runbooks()
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    with_curl = [s.splitlines()[0] for s in sections if "curl " in s]
    with_cli = {heading for heading, _ in CLI_BLOCKS}
    assert with_curl and set(with_curl) <= with_cli, set(with_curl) - with_cli
    assert len(CLI_BLOCKS) >= 12


def _wait(state: str, deployment: str = "credit-v7") -> None:
    deadline = time.monotonic() + 60
    while True:
        rows = [r for r in runner.get_status({"endpoint": "credit"})[1]["rollouts"] if r["deployment"] == deployment]
        if rows and rows[0]["state"] == state:
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def _register(stack: DevStack, version: int, model: str = "credit", **tags: str) -> None:
    all_tags = {"deploy": "true", "endpoint": "credit", **tags}
    stack.aml.seed_model(model, version, tags=all_tags)
    assert runner.deliver([model_registered(model, version, all_tags)])[0].acknowledged


def _canary(stack: DevStack, **tags: str) -> None:
    _register(stack, 6)
    _wait("live", "credit-v6")
    _register(stack, 7, **tags)


def _failed(stack: DevStack) -> None:
    stack.aml.end_next_operations("credit", "credit-v7", state="Failed")
    _register(stack, 7)
    _wait("failed")


#: The situation each runbook is for, made on the dev kit before each of its blocks runs.
SETUPS: dict[str, Any] = {
    "Before you start": lambda stack: None,
    "Roll back a bad model": lambda stack: (_canary(stack, traffic="20"), _wait("canary")),
    "Promote or stop a canary": lambda stack: (_canary(stack, traffic_steps="10,50,100", bake="10m"), _wait("baking")),
    "Retry a failed rollout": _failed,
    "Pause everything, and resume": lambda stack: _register(stack, 7),
    "Find everything about one event id, or one model version": lambda stack: _register(stack, 7, model="credit_risk"),
    "Replay a dead-lettered event": lambda stack: _register(stack, 7),
    "Recover after a permission or regional outage": _failed,
    "The status disagrees with what Azure ML shows": lambda stack: (_canary(stack), _wait("live")),
}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("runbook", "commands"), CLI_BLOCKS, ids=[f"{h[:24]}-{i}" for i, (h, _) in enumerate(CLI_BLOCKS)]
)
def test_every_command_line_of_the_runbooks_works_against_the_dev_kit(
    stack: DevStack, runbook: str, commands: list[list[str]]
) -> None:
    from devkit.host import HostKeys, LocalHost
    from tests.tools.conftest import run_cli

    hold = {"DEPLOY_MODE": "hold"} if runbook.startswith("Pause everything") else {}
    keys = HostKeys(function=FUNCTION_KEY)
    with app_environment(stack, **hold), LocalHost(stack, keys=keys, tick_s=0.2, followup_s=0.1) as host:
        SETUPS[runbook](stack)
        env = {"AML_ROLLOUTS_URL": host.url, "AML_ROLLOUTS_KEY": FUNCTION_KEY}
        for argv in commands:
            ran = run_cli(argv, env, sleep=time.sleep)
            assert ran.code == 0, (argv, ran.out, ran.err)
