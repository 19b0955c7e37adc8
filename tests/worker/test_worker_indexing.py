"""The app as Azure's Python worker runtime indexes and invokes it (Python >= 3.13, no .NET host)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.worker_host import WorkerHost, unavailable_reason
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID

ROOT = Path(__file__).parents[2]
EVENTS = sorted((ROOT / "tests" / "events").glob("*.json"))

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"worker runtime: {unavailable_reason()}")


def app_settings() -> dict[str, str]:
    """The sample app settings, as the host would hand them to the worker's environment."""
    values = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    # Events come from WORKSPACE_ID; allowing only another workspace makes the dispatcher ignore them (no Azure).
    return {**values, "AML_ALLOWED_WORKSPACES": OTHER_WORKSPACE_ID, "DEPLOY_MODE": "plan"}


@pytest.fixture(scope="module")
def host() -> Iterator[WorkerHost]:
    with WorkerHost(ROOT, env=app_settings()) as running:
        yield running


def test_the_worker_indexes_every_function_with_the_bindings_azure_will_register(host: WorkerHost) -> None:
    bindings = {name: list(fn.bindings) for name, fn in host.functions.items()}
    assert bindings == {
        "on_aml_event": [{"direction": "IN", "type": "eventGridTrigger", "name": "event"}],
        "reconcile_rollouts": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%RECONCILE_SCHEDULE%",
                "runOnStartup": False,
                "useMonitor": True,
            }
        ],
        "follow_up_rollout": [
            {
                "direction": "IN",
                "type": "queueTrigger",
                "name": "message",
                "queueName": "%ROLLOUT_QUEUE%",
                "connection": "AzureWebJobsStorage",
            }
        ],
        "resync_models": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%RESYNC_SCHEDULE%",
                "runOnStartup": False,
                "useMonitor": True,
            }
        ],
        "purge_history": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%RETENTION_SCHEDULE%",
                "runOnStartup": False,
                "useMonitor": True,
            }
        ],
        "rollout_status": [
            {
                "direction": "IN",
                "type": "httpTrigger",
                "name": "req",
                "methods": ["GET"],
                "authLevel": "FUNCTION",
                "route": "rollouts",
            },
            {"direction": "OUT", "type": "http", "name": "$return"},
        ],
        "rollout_control": [
            {
                "direction": "IN",
                "type": "httpTrigger",
                "name": "req",
                "methods": ["POST"],
                "authLevel": "FUNCTION",
                "route": "rollouts/{endpoint}/{deployment}/{action}",
            },
            {"direction": "OUT", "type": "http", "name": "$return"},
        ],
    }


def test_the_timer_schedule_resolves_to_a_six_field_ncrontab_from_the_app_settings(host: WorkerHost) -> None:
    # The host replaces %NAME% with the app setting; Azure's timer trigger wants NCRONTAB's six fields.
    schedule = host.functions["reconcile_rollouts"].trigger["schedule"]
    resolved = app_settings()[schedule.strip("%")]
    assert len(resolved.split()) == 6, resolved


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_an_event_in_either_schema_reaches_the_dispatcher_through_the_worker(host: WorkerHost, path: Path) -> None:
    [event] = json.loads(path.read_text(encoding="utf-8"))[:1]
    invocation = host.deliver_event("on_aml_event", event)
    assert invocation.succeeded, invocation.error
    dispatcher_lines = [log.message for log in invocation.logs if log.category == "app.intake.dispatch"]
    assert dispatcher_lines == [
        f"id={event['id']} type={event.get('eventType') or event.get('type')} subject={event['subject']} "
        f"ignored: workspace {WORKSPACE_ID} is not in AML_ALLOWED_WORKSPACES"
    ]


def test_an_event_sent_as_a_plain_string_is_refused_by_the_worker_not_the_app(host: WorkerHost) -> None:
    # The host must send Event Grid events as JSON TypedData: the worker's converter refuses anything else.
    event = json.loads((ROOT / "tests" / "events" / "run_completed.eventgrid.camel.json").read_text())[0]
    invocation = host.invoke("on_aml_event", {"event": host.protos.TypedData(string=json.dumps(event))})
    assert not invocation.succeeded
    assert "unable to decode incoming TypedData" in invocation.error
    assert not [log for log in invocation.logs if log.category.startswith("app.")]


def test_rollout_status_answers_an_http_request_through_the_worker(host: WorkerHost) -> None:
    # A bad filter is answered before the ledger is read, so no storage is needed.
    invocation = host.http("rollout_status", "GET", "http://localhost/api/rollouts", query={"state": "bogus"})
    assert invocation.succeeded, invocation.error
    assert invocation.http_status == 400
    assert dict(invocation.return_value.http.headers) == {"content-type": "application/json"}
    error = json.loads(invocation.http_body)["error"]
    assert "state" in error and "bogus" in error  # the parameter and its value


def test_the_reconciler_timer_fires_through_the_worker(host: WorkerHost) -> None:
    invocation = host.fire_timer("reconcile_rollouts")
    assert invocation.succeeded, invocation.error
    assert [log.message for log in invocation.logs if log.category == "app.rollout.run.reconcile"] == [
        "reconcile: DEPLOY_MODE=plan, nothing is applied"
    ]
