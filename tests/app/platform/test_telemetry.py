"""Telemetry set-up: which exporter the settings choose, the console exporter, gate metrics, and cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.platform import telemetry as telemetry_module
from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from app.rollout.run import telemetry as rollout_telemetry
from tests.conftest import Telemetry

ROOT = Path(__file__).parents[3]
CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"


@pytest.mark.parametrize(
    ("env", "installed", "expected"),
    [
        ({}, False, "off"),
        ({"TELEMETRY_CONSOLE": "true"}, False, "console"),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, False, "azure-monitor"),
        # Azure wins over the console: the console is for local runs, and would duplicate the host's log lines.
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION, "TELEMETRY_CONSOLE": "true"}, False, "azure-monitor"),
        # The Functions worker configured the distro (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY): never twice.
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, True, "existing"),
        ({"TELEMETRY_CONSOLE": "true"}, True, "existing"),
    ],
)
def test_the_exporter_follows_the_settings(env: dict[str, str], installed: bool, expected: str) -> None:
    assert telemetry_module.choose_exporter(settings_from_env(env), installed) == expected


def test_a_bad_console_setting_is_named_and_the_connection_string_is_never_shown() -> None:
    with pytest.raises(SettingsError, match="TELEMETRY_CONSOLE='maybe' is not a boolean"):
        settings_from_env({"TELEMETRY_CONSOLE": "maybe"})
    settings = settings_from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})
    assert settings.appinsights_connection_string == CONNECTION
    assert "InstrumentationKey" not in repr(settings)


def test_gate_evaluations_are_counted_by_gate_and_outcome(telemetry: Telemetry) -> None:
    # The instrument the rollout gates report to: one point per gate, outcome and endpoint.
    key = (("endpoint", "gates-ep"), ("gate", "latency_p99"), ("outcome", "inconclusive"))
    before = telemetry.points("rollouts.gate_evaluations").get(key)
    rollout_telemetry.gate_evaluated("latency_p99", "inconclusive", "gates-ep")
    rollout_telemetry.gate_evaluated("latency_p99", "inconclusive", "gates-ep")
    rollout_telemetry.gate_evaluated("latency_p99", "passed", "gates-ep")
    assert telemetry.points("rollouts.gate_evaluations")[key].value == (before.value if before else 0) + 2


CONSOLE_SCRIPT = """
from app.platform import telemetry
from app.intake.events import Envelope
from app.intake.outcome import OutcomeKind
from app.platform.settings_reader import settings_from_env
settings = settings_from_env({"TELEMETRY_CONSOLE": "true"})
print("exporter:", telemetry.setup(settings))
envelope = Envelope("evt-1", "ModelRegistered", "models/m:1", None, "t", "EventGrid", {})
with telemetry.event_span(envelope) as span:
    telemetry.set_outcome(span, "ignored: a test", OutcomeKind.IGNORED)
"""


def test_the_console_exporter_prints_each_span_as_it_ends() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    first, rest = out.split("\n", 1)
    assert first == "exporter: console"
    span = json.loads(rest)
    assert span["name"] == "aml_event"
    assert span["attributes"]["aml.event.id"] == "evt-1"
    assert span["attributes"]["aml.event.outcome_kind"] == "ignored"


def test_importing_the_app_loads_no_opentelemetry_module() -> None:
    # Cold start: the API, the SDK and the distro load at the first invocation, not when the host imports the app.
    probe = "import sys, function_app; print([m for m in sys.modules if m.startswith(('opentelemetry', 'azure.mon'))])"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


FAILING_SETUP_SCRIPT = """
import logging
from app.platform import telemetry
from app.platform.settings_reader import settings_from_env
logging.basicConfig(level=logging.ERROR, format="%(message)s")
print(telemetry.setup(settings_from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "not-a-connection-string"})))
"""


def test_a_bad_connection_string_is_logged_and_the_app_runs_on_without_telemetry() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", FAILING_SETUP_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "off"
    assert "ValueError" in done.stderr  # logged at ERROR (the script shows only that level), naming the error
    assert "not-a-connection-string" not in done.stderr
