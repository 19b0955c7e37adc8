"""The Function App surface: the functions it exposes, cold-start cost, and in-process invocation."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from app.intake.outcome import OutcomeKind
from app.platform.errors import SettingsError
from app.wiring import reset_production_deps
from devkit import runner
from tests.fakes import WORKSPACE_ID

ROOT = Path(__file__).parents[1]


def test_importing_function_app_does_not_import_heavy_sdks() -> None:
    code = (
        "import sys, function_app; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0:2] in "
        "(['azure','ai'], ['azure','core'], ['azure','identity'], ['azure','eventgrid'], ['azure','data'], "
        "['azure','mgmt']))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_importing_function_app_loads_none_of_the_app_until_a_trigger_runs() -> None:
    """The host imports function_app at every cold start to index it: the app's modules load on first use."""
    code = (
        "import json, sys, function_app; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'app')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_on_aml_event_is_exposed() -> None:
    assert "on_aml_event" in runner.function_names()


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_runner_invokes_on_aml_event_for_each_event_of_an_array(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AML_ALLOWED_WORKSPACES", WORKSPACE_ID)
    for name in ("NOTIFY_TOPIC_ENDPOINT", "NOTIFY_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    reset_production_deps()
    first = runner.load_events(ROOT / "tests" / "events" / f"run_completed.{schema}.camel.json")[0]
    second = dict(first, id="second-id")
    try:
        deliveries = runner.deliver([first, second])
    finally:
        reset_production_deps()
    assert [d.event_id for d in deliveries] == [first["id"], "second-id"]
    assert all(d.acknowledged and d.kind is OutcomeKind.HANDLED for d in deliveries)


def test_invalid_settings_make_the_event_redeliverable_and_say_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AML_ALLOWED_WORKSPACES", WORKSPACE_ID)
    monkeypatch.setenv("MAX_INSTANCE_COUNT", "lots")
    reset_production_deps()
    event = runner.load_events(ROOT / "tests" / "events" / "run_completed.eventgrid.camel.json")[0]
    try:
        [delivery] = runner.deliver([event], max_attempts=2)
    finally:
        monkeypatch.delenv("MAX_INSTANCE_COUNT")
        reset_production_deps()
    assert not delivery.acknowledged
    # Raised on each delivery, naming the setting and its value; logged with the event's id.
    assert len(delivery.errors) == 2 and all(isinstance(err, SettingsError) for err in delivery.errors)
    assert all("MAX_INSTANCE_COUNT='lots'" in str(err) for err in delivery.errors)
    assert any(
        r.levelno == logging.ERROR and f"id={event['id']}" in r.getMessage() and "MAX_INSTANCE_COUNT" in r.getMessage()
        for r in caplog.records
    )
