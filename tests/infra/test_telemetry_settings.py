"""The template turns on OpenTelemetry the way Azure Functions documents it for Python, and samples nothing out."""

from __future__ import annotations

import json

import pytest

from tests.infra.test_bicep import INFRA, ROOT, variable

pytestmark = pytest.mark.fast


def test_the_host_and_the_python_worker_send_opentelemetry_and_keep_every_span() -> None:
    assert json.loads((ROOT / "host.json").read_text())["telemetryMode"] == "OpenTelemetry"
    settings = variable(INFRA / "app/function.bicep", "hostSettings")
    # The worker configures the Azure Monitor distro and streams the app's logs itself (no duplicate host lines).
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    # The distro's default keeps 5 traces a second; a fixed 100% keeps the spans of every decision.
    assert settings["OTEL_TRACES_SAMPLER"] == "microsoft.fixed_percentage"
    assert float(settings["OTEL_TRACES_SAMPLER_ARG"]) == 1.0
