"""The replay CLI: clear one-line errors, exit codes, local.settings.json as `func start` reads it, --offline, --to."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.intake.outcome import OutcomeKind
from devkit import local_settings, runner
from devkit.stack import WORKSPACE_ID
from tests.receiver import Receiver, running
from tools import replay

EVENTS = Path(__file__).parents[1] / "events"
MODEL_REGISTERED = EVENTS / "model_registered.eventgrid.camel.json"
# A completion notifies without any Azure call (a run failure is re-read from Azure ML first).
RUN_COMPLETED = EVENTS / "run_completed.eventgrid.pascal.json"
APP_ENV = (
    "AML_ALLOWED_WORKSPACES",
    "DEPLOY_MODE",
    "NOTIFY_TOPIC_ENDPOINT",
    "NOTIFY_WEBHOOK_URL",
    "AzureWebJobsStorage",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No local.settings.json of the developer's, and no app settings from the outer environment."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(local_settings, "APP_ROOT", tmp_path / "no-app-root")
    for name in APP_ENV:
        monkeypatch.delenv(name, raising=False)
    return work


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[runner.Delivery]:
    """What replay's deliveries came to, as the dev kit's runner recorded them (kinds, errors)."""
    seen: list[runner.Delivery] = []
    deliver = runner.deliver

    def recording(*args: Any, **kwargs: Any) -> list[runner.Delivery]:
        deliveries = deliver(*args, **kwargs)
        seen.extend(deliveries)
        return deliveries

    monkeypatch.setattr(runner, "deliver", recording)
    return seen


def write(path: Path, body: Any) -> Path:
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def settings_file(path: Path, **values: str) -> Path:
    return write(path, {"IsEncrypted": False, "Values": values})


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = replay.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


# ---------------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.json", None, "no such file; check the path"),
        ("broken.json", '[{"id": "a",', "not valid JSON (line 1, column 13"),
        ("empty-object.json", {}, "not an event, it has no eventType or type"),
        ("numbers.json", [1, 2], "item 0: is a JSON number, not an event"),
        ("empty-array.json", [], "an empty array holds no event"),
        ("no-type.json", {"id": "x", "subject": "models/a:1", "data": {}}, "not an event, it has no eventType or type"),
        ("folder", "dir", "is a directory; name the event files in it"),
    ],
)
def test_a_bad_file_is_one_line_naming_it_the_problem_and_the_fix(
    isolated: Path, capsys: pytest.CaptureFixture[str], name: str, content: Any, problem: str
) -> None:
    path = isolated / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        write(path, content)
    code, out, err = run(capsys, str(MODEL_REGISTERED), str(path))
    assert code == replay.EXIT_BAD_INPUT
    assert out == []  # nothing was delivered, not even the good first file
    assert len(err) == 1, err
    assert err[0].startswith(f"replay: {path}")
    assert problem in err[0]
    if content not in (None, "dir") and "JSON" not in problem:
        assert "eventType (Event Grid schema) or type (CloudEvents)" in err[0]  # the fix: what an event looks like


def test_a_broken_local_settings_json_is_one_line_and_exit_2(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(isolated / "local.settings.json", '{"Values": {"DEPLOY_MODE": "apply",}}')
    code, _, err = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_BAD_INPUT
    assert len(err) == 1
    assert "local.settings.json: not valid JSON (line 1" in err[0]
    assert "local.settings.sample.json" in err[0]


def test_a_setting_that_is_not_a_string_is_named(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(isolated / "local.settings.json", {"Values": {"MAX_INSTANCE_COUNT": 3}})
    code, _, err = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_BAD_INPUT
    assert err == [
        f"replay: {isolated / 'local.settings.json'}: Values.MAX_INSTANCE_COUNT is not a string; "
        'quote it (app settings are strings, e.g. "3", "true")'
    ]


def test_an_unusable_to_url_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--to", "file:///etc/passwd", str(RUN_COMPLETED))
    assert code == replay.EXIT_BAD_INPUT
    assert err == [
        "replay: --to must be an http(s) URL of a Functions host, got 'file:///etc/passwd'; e.g. http://localhost:7071"
    ]


# ---------------------------------------------------------------------------------------------- exit codes


def test_a_rejected_event_exits_1(
    isolated: Path, capsys: pytest.CaptureFixture[str], delivered: list[runner.Delivery]
) -> None:
    event = json.loads(MODEL_REGISTERED.read_text())[0]
    event["subject"] = "not-a-model"
    event["data"] = {"modelTags": {}}
    settings_file(isolated / "local.settings.json", AML_ALLOWED_WORKSPACES=event["topic"])
    code, out, err = run(capsys, str(write(isolated / "bad-event.json", [event])))
    assert code == replay.EXIT_FAILED
    assert [d.kind for d in delivered] == [OutcomeKind.REJECTED]
    assert out[-1].startswith("model-registered-camel-0001-eg ModelRegistered not-a-model -> ")  # one line per event
    assert not [line for line in err if "Traceback" in line]


def test_redelivery_until_it_gives_up_exits_1(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    delivered: list[runner.Delivery],
) -> None:
    from app import handlers
    from app.intake.events import RUN_COMPLETED as RUN_COMPLETED_TYPE
    from app.platform.errors import RetryableError

    def outage(event: object, deps: object) -> str:
        raise RetryableError("storage is down")  # what a retry can fix: the dispatcher raises, the host answers 500

    monkeypatch.setitem(handlers.HANDLERS, RUN_COMPLETED_TYPE, outage)  # type: ignore[index]
    settings_file(isolated / "local.settings.json", AML_ALLOWED_WORKSPACES=WORKSPACE_ID)
    code, out, err = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_FAILED
    [delivery] = delivered
    assert not delivery.acknowledged and len(delivery.errors) == 3
    assert all(isinstance(e, RetryableError) for e in delivery.errors)
    assert out[-1].endswith("after 3 deliveries; gave up, as Event Grid would after its retries")
    assert not [line for line in err if "Traceback" in line]


@pytest.mark.parametrize("offline", [False, True], ids=["in-process", "offline"])
def test_an_invalid_setting_is_one_line_exit_2_and_nothing_is_delivered(
    isolated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    delivered: list[object] = []
    monkeypatch.setattr(replay.runner, "deliver", lambda *a, **k: delivered.append(a) or [])
    if offline:
        monkeypatch.setattr(replay, "_offline", _no_stack)
    path = settings_file(isolated / "mine.json", AML_ALLOWED_WORKSPACES=WORKSPACE_ID, DEPLOY_MODE="yolo")
    code, out, err = run(capsys, *(["--offline"] if offline else []), "--settings", str(path), str(RUN_COMPLETED))
    assert code == replay.EXIT_BAD_INPUT
    assert len(err) == 1 and err[0].startswith("replay: invalid app settings: DEPLOY_MODE='yolo'"), err
    assert "fix it" in err[0]
    assert not [line for line in out if "DEPLOY_MODE=yolo" in line]  # not also "recorded, not applied"
    assert delivered == []


@contextlib.contextmanager
def _no_stack(events: object) -> Iterator[None]:
    """--offline without starting a stack: the settings are checked before anything else happens."""
    yield None


def test_handled_events_exit_0_with_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, delivered: list[runner.Delivery]
) -> None:
    from app.wiring import reset_production_deps

    monkeypatch.setenv("AML_ALLOWED_WORKSPACES", WORKSPACE_ID)
    reset_production_deps()
    code, out, _ = run(capsys, str(RUN_COMPLETED), str(EVENTS / "model_deployed.cloudevents.camel.json"))
    assert code == replay.EXIT_OK
    assert out[0] == "settings: no local.settings.json here; using the environment only"
    assert [d.kind for d in delivered] == [OutcomeKind.HANDLED] * 2
    # One line per event, naming it and ending with its outcome.
    assert len(out) == 3
    assert all(d.event_id in line and line.endswith(d.outcome) for d, line in zip(delivered, out[1:], strict=True))


# ---------------------------------------------------------------------------------------------- local.settings.json


def test_local_settings_values_apply_as_func_start_does(
    isolated: Path, capsys: pytest.CaptureFixture[str], delivered: list[runner.Delivery]
) -> None:
    settings_file(isolated / "local.settings.json", AML_ALLOWED_WORKSPACES=WORKSPACE_ID)
    code, out, _ = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_OK
    assert out[0] == f"settings: 1 values from {isolated / 'local.settings.json'}"
    assert [d.kind for d in delivered] == [OutcomeKind.HANDLED]  # the file's allowlist applied


def test_the_environment_wins_over_local_settings(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    delivered: list[runner.Delivery],
) -> None:
    other = WORKSPACE_ID.replace("mlw-devkit", "mlw-elsewhere")
    settings_file(isolated / "local.settings.json", AML_ALLOWED_WORKSPACES=other)
    monkeypatch.setenv("AML_ALLOWED_WORKSPACES", WORKSPACE_ID)
    code, out, _ = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_OK
    assert out[0].endswith("; the environment wins for AML_ALLOWED_WORKSPACES")
    assert [d.kind for d in delivered] == [OutcomeKind.HANDLED]  # not ignored: the workspace is allowed


def test_an_empty_environment_variable_is_filled_from_the_file_like_core_tools() -> None:
    env = {"DEPLOY_MODE": "", "DEPLOY_STAGE": "prod"}
    applied, skipped = local_settings.apply({"DEPLOY_MODE": "apply", "DEPLOY_STAGE": "dev", "NEW": "x"}, env)
    assert env == {"DEPLOY_MODE": "apply", "DEPLOY_STAGE": "prod", "NEW": "x"}
    assert (applied, skipped) == (["DEPLOY_MODE", "NEW"], ["DEPLOY_STAGE"])


def test_replay_leaves_the_environment_as_it_found_it(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    settings_file(isolated / "local.settings.json", AML_ALLOWED_WORKSPACES=WORKSPACE_ID, REPLAY_TEST_ONLY="1")
    before = dict(os.environ)
    run(capsys, str(RUN_COMPLETED))
    assert dict(os.environ) == before


def test_an_encrypted_local_settings_file_says_how_to_decrypt(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(isolated / "local.settings.json", {"IsEncrypted": True, "Values": {"DEPLOY_MODE": "abc=="}})
    code, _, err = run(capsys, str(RUN_COMPLETED))
    assert code == replay.EXIT_BAD_INPUT
    assert err[0].endswith("its values are encrypted; run `func settings decrypt` first")


# ---------------------------------------------------------------------------------------------- credential


class _NoIdentity(BaseHTTPRequestHandler):
    """A managed-identity endpoint that has no identity to give: 400, as App Service answers an unknown client."""

    def do_GET(self) -> None:
        body = b'{"error": "invalid_request", "error_description": "no identity here"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def no_identity() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoIdentity)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/msi/token"
    finally:
        server.shutdown()
        server.server_close()


def test_the_credential_chains_failure_is_printed_once_with_what_to_do(
    isolated: Path, capsys: pytest.CaptureFixture[str], no_identity: str
) -> None:
    settings_file(
        isolated / "local.settings.json",
        AML_ALLOWED_WORKSPACES=WORKSPACE_ID,
        DEPLOY_MODE="apply",
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        # Only the managed identity, at an endpoint that refuses: no developer sign-in on this machine is used.
        AZURE_TOKEN_CREDENTIALS="ManagedIdentityCredential",
        IDENTITY_ENDPOINT=no_identity,
        IDENTITY_HEADER="test",
        AZUREML_DEV_URL_MFE="https://127.0.0.1:9",
    )
    code, out, err = run(capsys, str(MODEL_REGISTERED), str(EVENTS / "model_registered.cloudevents.camel.json"))
    assert code == replay.EXIT_FAILED
    assert err.count(replay.CREDENTIAL_HINT) == 1
    assert "az login" in replay.CREDENTIAL_HINT and "--offline" in replay.CREDENTIAL_HINT
    assert not [line for line in err if "Traceback" in line or "Attempted credentials" in line]
    assert [line.split(" -> ")[1] for line in out[1:]] == ["failed: no Azure credential (see above)"] * 2


def test_the_console_shows_app_problems_one_line_each_without_tracebacks() -> None:
    import io
    import logging

    stream = io.StringIO()
    console = replay.Console(stream)
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError:
        record = logging.LogRecord("shared.x", logging.ERROR, __file__, 1, "boom: %s", ("first\nsecond",), None)
        import sys

        record.exc_info = sys.exc_info()
    console.emit(record)
    assert stream.getvalue() == "  log error shared.x: boom: first\n"


# ---------------------------------------------------------------------------------------------- --offline


def test_offline_says_which_of_your_settings_it_overrides_and_keeps_the_rest() -> None:
    user = {
        "AZUREML_DEV_URL_MFE": "https://my-proxy:8443",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "NOTIFY_WEBHOOK_URL": "https://hooks.example/abc",
        "AZURE_CLIENT_SECRET": "not-for-the-dev-kit",
        "DEPLOY_MODE": "plan",
        "MAX_INSTANCE_COUNT": "2",
    }
    stack_env = {
        "AZUREML_DEV_URL_MFE": "https://127.0.0.1:5000",
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http",
    }
    env, notes = replay.offline_env(user, stack_env)
    assert notes == [
        "offline: overriding your AZUREML_DEV_URL_MFE: Azure ML calls go to the dev kit's emulator",
        "offline: overriding your AzureWebJobsStorage: the rollout ledger lives in the dev kit's own Azurite",
        "offline: overriding your NOTIFY_WEBHOOK_URL: notifications must not reach your real webhook",
        "offline: ignoring your AZURE_CLIENT_SECRET: it would keep DefaultAzureCredential from the dev kit's tokens",
        "offline: DEPLOY_MODE=plan (yours): rollouts are recorded, not applied; "
        "set DEPLOY_MODE=apply to see them deploy",
    ]
    assert "DEPLOY_MODE" not in env and "MAX_INSTANCE_COUNT" not in env  # the user's own choices stand
    assert env["NOTIFY_WEBHOOK_URL"] == ""
    # Without a choice of the user's, the dev kit's defaults apply, silently.
    env, notes = replay.offline_env({}, stack_env)
    assert env["DEPLOY_MODE"] == "apply"
    assert notes == []


@pytest.mark.integration
def test_offline_runs_the_reconciler_until_the_rollout_settles_and_prints_the_timeline(
    capsys: pytest.CaptureFixture[str], delivered: list[runner.Delivery]
) -> None:
    code, out, err = run(capsys, "--offline", str(MODEL_REGISTERED))
    assert code == replay.EXIT_OK, (out, err)
    [delivery] = delivered
    assert delivery.kind is OutcomeKind.HANDLED
    assert [line for line in out if " -> " in line] == [
        f"model-registered-camel-0001-eg ModelRegistered models/credit_risk.v2:1 -> {delivery.outcome}"
    ]
    ticks = [line for line in out if line.endswith("reconcile_rollouts")]
    assert 1 <= len(ticks) <= 3
    timeline = [line.split("s  ", 1)[1] for line in out if "credit-risk/credit-risk-v2-v1: " in line and "s  " in line]
    assert timeline[-1].startswith("credit-risk/credit-risk-v2-v1: live ")  # the rollout, and the state it ended in
    assert any("published AmlEvents.Rollout.Live: " in line for line in out)


@pytest.mark.integration
def test_offline_an_event_whose_data_is_not_an_object_is_rejected_by_the_app_without_a_traceback(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = json.loads(MODEL_REGISTERED.read_text())[0]
    event["data"] = ["not", "an", "object"]
    code, out, err = run(capsys, "--offline", str(write(isolated / "list-data.json", [event])))
    assert code == replay.EXIT_FAILED
    assert [line for line in out if " -> " in line] == [
        "model-registered-camel-0001-eg ModelRegistered models/credit_risk.v2:1 -> "
        "rejected: data: must be a JSON object"
    ]
    assert not [line for line in out + err if "Traceback" in line]


@pytest.mark.integration
def test_offline_in_hold_mode_says_once_that_the_rollouts_wait_and_ticks_nothing(
    isolated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks: list[bool] = []
    monkeypatch.setattr(replay.runner, "tick", lambda past_due=False: ticks.append(past_due))
    path = settings_file(isolated / "hold.json", DEPLOY_MODE="hold")
    code, out, _ = run(capsys, "--offline", "--settings", str(path), str(MODEL_REGISTERED))
    assert code == replay.EXIT_OK
    assert ticks == []
    assert replay.HOLD_NOTE in out
    assert not [line for line in out if "tick " in line or "raise --max-ticks" in line]


# ---------------------------------------------------------------------------------------------- --to a host


@pytest.fixture
def host() -> Iterator[Receiver]:
    with running(default_status=202) as server:
        yield server


def test_posts_each_event_as_event_grid_does(host: Receiver) -> None:
    events = [
        json.loads((EVENTS / "run_completed.eventgrid.camel.json").read_text())[0],
        json.loads((EVENTS / "run_completed.cloudevents.camel.json").read_text())[0],
    ]
    posted = replay.post_to_host(host.url, events)
    assert [call.path for call in host.received] == ["/runtime/webhooks/EventGrid?functionName=on_aml_event"] * 2
    assert all(call.headers["aeg-event-type"] == "Notification" for call in host.received)
    assert host.bodies == [[events[0]], [events[1]]]  # an array of one, per request
    assert posted[0].line.endswith("-> HTTP 202")
    assert all(item.ok for item in posted)


def test_a_5xx_is_redelivered_and_a_4xx_is_not(host: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay.time, "sleep", lambda seconds: None)
    event = json.loads((EVENTS / "run_completed.eventgrid.camel.json").read_text())[0]
    host.statuses = [500, 500]
    assert replay.post_to_host(host.url, [event], max_deliveries=3)[0].line.endswith("-> HTTP 202")
    assert len(host.received) == 3
    host.received.clear()
    host.statuses = [400]
    [rejected] = replay.post_to_host(host.url, [event], max_deliveries=3)
    assert rejected.line.endswith("-> HTTP 400")
    assert not rejected.ok
    assert len(host.received) == 1


def test_a_host_that_refuses_or_is_down_exits_1(
    host: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay.time, "sleep", lambda seconds: None)
    host.statuses = [500, 500, 500]
    code, out, _ = run(capsys, "--to", host.url, str(RUN_COMPLETED))
    assert code == replay.EXIT_FAILED
    assert out[-1].endswith("-> HTTP 500 after 3 deliveries")
    code, out, _ = run(capsys, "--to", "http://127.0.0.1:9", "--max-deliveries", "1", str(RUN_COMPLETED))
    assert code == replay.EXIT_FAILED
    assert " -> unreachable: " in out[-1]
