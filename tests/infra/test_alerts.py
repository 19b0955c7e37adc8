"""Alerts on by default and decision logs never sampled out: infra/app/alerts.bicep, its wiring, host.json."""

from __future__ import annotations

import json

from tests.infra.test_bicep import ROOT


def test_host_json_never_samples_out_traces_requests_or_exceptions() -> None:
    # The decision log lines ("rollout x/y is now failed: ...", "reconcile: ...") are traces; the KQL recipes in
    # docs/operations.md and the log alerts count them, so a sampled-out line is a missed alert.
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert {"Trace", "Request", "Exception"} <= excluded
    # Dependencies (every ARM and storage call) stay sampled: they are the volume sampling exists for.
    assert sampling["isEnabled"] is True
    assert "Dependency" not in excluded
