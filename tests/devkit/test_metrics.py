"""Synthetic load and deployment health, read back through Azure Monitor's metrics API (raw REST and the SDK)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import pytest

from devkit.aml_emulator.state import _iso
from devkit.stack import SUBSCRIPTION_ID, DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint, set_traffic

pytestmark = pytest.mark.integration

SPLIT = "deployment eq '*' and statusCodeClass eq '*'"


def _frozen_at_minute(stack: DevStack) -> float:
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    return start


def _metrics(arm: ArmSession, endpoint: str, start: float, end: float, **query: str) -> Any:
    params = {"api-version": "2024-02-01", "timespan": f"{_iso(start)}/{_iso(end)}", "interval": "PT1M", **query}
    url = f"{arm.workspace}/onlineEndpoints/{endpoint}/providers/Microsoft.Insights/metrics"
    response = arm.session.get(url, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _totals(body: Any) -> dict[tuple[str, ...], float]:
    """Sum of ``total`` per series of the first metric, keyed by its dimension values."""
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for series in body["value"][0]["timeseries"]:
        key = tuple(m["value"] for m in series["metadatavalues"])
        sums[key] += sum(point.get("total", 0.0) for point in series["data"])
    return dict(sums)


def _canary(stack: DevStack, arm: ArmSession, name: str, green: dict[str, str]) -> float:
    make_endpoint(stack, arm, name, {"blue": {}, "green": green}, traffic={"blue": 90, "green": 10})
    start = _frozen_at_minute(stack)
    stack.aml.start_load(name, rpm=600, seed=1)
    stack.aml.advance_clock(600)
    return start


def test_load_and_health_show_in_requests_per_minute(stack: DevStack, arm: ArmSession) -> None:
    start = _canary(stack, arm, "ep-rpm", {"emulator.error_rate": "20"})
    body = _metrics(arm, "ep-rpm", start, start + 600, metricnames="RequestsPerMinute", aggregation="Total",
                    **{"$filter": SPLIT})  # fmt: skip

    metric = body["value"][0]
    assert (metric["name"]["value"], metric["unit"]) == ("RequestsPerMinute", "Count")
    assert body["namespace"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert all(len(series["data"]) == 10 for series in metric["timeseries"])
    assert metric["timeseries"][0]["data"][0]["timeStamp"] == _iso(start)
    totals = _totals(body)
    assert sum(totals.values()) == 6000  # 600 a minute for 10 minutes, exactly
    assert 0.08 < (totals[("green", "2xx")] + totals[("green", "4xx")]) / 6000 < 0.12
    # A model error is a 424 from the endpoint (status class 4xx), with the model's 500 in modelStatusCode.
    assert 0.15 < totals[("green", "4xx")] / (totals[("green", "2xx")] + totals[("green", "4xx")]) < 0.25
    assert ("blue", "4xx") not in totals and ("green", "5xx") not in totals

    by_model = _metrics(arm, "ep-rpm", start, start + 600, metricnames="RequestsPerMinute", aggregation="Total",
                        **{"$filter": "deployment eq 'green' and modelStatusCode eq '*'"})  # fmt: skip
    assert set(_totals(by_model)) == {("200",), ("500",)}
    assert _totals(by_model)[("500",)] == totals[("green", "4xx")]


def test_latency_percentiles_follow_each_deployments_health(stack: DevStack, arm: ArmSession) -> None:
    start = _canary(stack, arm, "ep-lat", {"emulator.p50_ms": "200", "emulator.p99_ms": "800"})
    set_traffic(stack, arm, "ep-lat", {"blue": 50, "green": 50})
    stack.aml.advance_clock(600)
    body = _metrics(arm, "ep-lat", start + 600, start + 1200, metricnames="RequestLatency_P50,RequestLatency_P99",
                    aggregation="Average", **{"$filter": "deployment eq '*'"})  # fmt: skip

    assert [m["name"]["value"] for m in body["value"]] == ["RequestLatency_P50", "RequestLatency_P99"]
    assert body["value"][1]["unit"] == "MilliSeconds"
    means = {}
    for metric in body["value"]:
        for series in metric["timeseries"]:
            values = [p["average"] for p in series["data"]]
            means[(metric["name"]["value"], series["metadatavalues"][0]["value"])] = sum(values) / len(values)
    assert means[("RequestLatency_P50", "blue")] == pytest.approx(20, rel=0.2)
    assert means[("RequestLatency_P99", "blue")] == pytest.approx(60, rel=0.3)
    assert means[("RequestLatency_P50", "green")] == pytest.approx(200, rel=0.2)
    assert means[("RequestLatency_P99", "green")] == pytest.approx(800, rel=0.3)


def test_traffic_change_applies_from_its_time(stack: DevStack, arm: ArmSession) -> None:
    start = _canary(stack, arm, "ep-step", {})
    set_traffic(stack, arm, "ep-step", {"blue": 50, "green": 50})
    stack.aml.advance_clock(600)
    before = _totals(_metrics(arm, "ep-step", start, start + 600, aggregation="Total", **{"$filter": SPLIT}))
    after = _totals(_metrics(arm, "ep-step", start + 600, start + 1200, aggregation="Total", **{"$filter": SPLIT}))
    assert 0.08 < before[("green", "2xx")] / 6000 < 0.12
    assert 0.45 < after[("green", "2xx")] / 6000 < 0.55


def test_lag_hides_the_newest_minutes(stack: DevStack, arm: ArmSession) -> None:
    start = _canary(stack, arm, "ep-lag", {})
    stack.aml.set_metric_lag(120)

    def minutes() -> int:
        body = _metrics(arm, "ep-lag", start, start + 900, aggregation="Total")
        return len(body["value"][0]["timeseries"][0]["data"])

    assert minutes() == 8  # 10 minutes have passed; the last two are not in Azure Monitor yet
    stack.aml.advance_clock(60)
    assert minutes() == 9
    stack.aml.set_metric_lag(0)
    assert minutes() == 11


def test_same_seed_same_metrics(stack: DevStack, arm: ArmSession) -> None:
    # One start for every run: a run that crossed a wall-clock minute would otherwise shift the timestamps.
    start = math.ceil(time.time() / 60) * 60 + 600

    def run(seed: int) -> Any:
        stack.reset()
        make_endpoint(stack, arm, "ep-seed", {"blue": {"emulator.error_rate": "3"}, "green": {}}, {"blue": 70,
                      "green": 30})  # fmt: skip
        stack.aml.set_clock(start, frozen=True)
        stack.aml.start_load("ep-seed", rpm=300, seed=seed)
        stack.aml.advance_clock(300)
        query = {"metricnames": "RequestsPerMinute,RequestLatency_P99", "aggregation": "Total,Average"}
        body = _metrics(arm, "ep-seed", start, start + 300, **query, **{"$filter": "deployment eq '*'"})
        return [m["timeseries"] for m in body["value"]]

    first = run(5)
    assert run(5) == first
    assert run(6) != first


def test_bad_queries_name_the_problem(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-bad", {"blue": {}}, traffic={"blue": 100})
    url = f"{arm.workspace}/onlineEndpoints/ep-bad/providers/Microsoft.Insights/metrics"
    cases = [
        ({"metricnames": "Requests"}, "Valid metrics"),
        ({"metricnames": "RequestLatency_P99", "$filter": "statusCode eq '*'"}, "dimension"),
        ({"$filter": "deployment ne 'blue'"}, "$filter"),
        ({"interval": "PT30S"}, "whole minutes"),
        ({"aggregation": "median"}, "aggregation"),
    ]
    for query, fragment in cases:
        response = arm.session.get(url, params={"api-version": "2024-02-01", **query}, timeout=5)
        assert response.status_code == 400, query
        assert fragment in response.json()["error"]["message"], query
    missing = arm.session.get(url.replace("ep-bad", "ep-nope"), params={"api-version": "2024-02-01"}, timeout=5)
    assert missing.status_code == 404


def test_azure_mgmt_monitor_reads_the_metrics(stack: DevStack, arm: ArmSession) -> None:
    monitor = pytest.importorskip(
        "azure.mgmt.monitor", reason="azure-mgmt-monitor is not installed (requirements.in: azure-mgmt-monitor>=7)"
    )
    from azure.identity import DefaultAzureCredential

    endpoint = make_endpoint(stack, arm, "ep-sdk", {"blue": {}, "green": {"emulator.error_rate": "50"}},
                             traffic={"blue": 90, "green": 10})  # fmt: skip
    start = _frozen_at_minute(stack)
    stack.aml.start_load("ep-sdk", rpm=120, seed=2)
    stack.aml.advance_clock(300)
    stack.aml.clear_requests()

    client = monitor.MonitorManagementClient(DefaultAzureCredential(), SUBSCRIPTION_ID, base_url=stack.aml.url)
    result = client.metrics.list(
        endpoint["id"],
        timespan=f"{_iso(start)}/{_iso(start + 300)}",
        interval="PT1M",
        metricnames="RequestsPerMinute",
        aggregation="Total",
        filter="deployment eq '*' and modelStatusCode eq '*'",
    )

    (sent,) = stack.aml.requests()
    assert sent.path == f"{endpoint['id']}/providers/Microsoft.Insights/metrics"
    assert sent.query["$filter"] == "deployment eq '*' and modelStatusCode eq '*'"
    assert sent.api_version == "2024-02-01"
    (metric,) = result.value
    assert metric.name.value == "RequestsPerMinute"
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for series in metric.timeseries:
        key = tuple(m.value for m in series.metadatavalues)
        assert [m.name.value for m in series.metadatavalues] == ["deployment", "modelStatusCode"]
        assert len(series.data) == 5 and series.data[0].time_stamp.timestamp() == start
        totals[key] += sum(point.total or 0 for point in series.data)  # type: ignore[index]
    assert sum(totals.values()) == 600
    assert set(totals) == {("blue", "200"), ("green", "200"), ("green", "500")}
