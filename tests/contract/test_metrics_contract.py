"""The emulator's Azure Monitor metrics answers hold to the contract of the pinned azure-mgmt-monitor (2024-02-01)."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest

from app.azure.metrics import LATENCY_FILTER, REQUESTS_FILTER, TOP
from devkit.contract import METRICS_API_VERSION, Contract, errors, metrics_contract
from devkit.stack import SUBSCRIPTION_ID, WORKSPACE_ID, DevStack
from tests.contract.conftest import Exchange, Recorder
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def monitor_contract() -> Contract:
    return metrics_contract()


def _problems(contract: Contract, exchanges: list[Exchange]) -> tuple[set[tuple[str, int]], list[str]]:
    seen, problems = set(), []
    for exchange in exchanges:
        op = contract.find_operation(exchange.method, exchange.url)
        assert op is not None, f"not a metrics call: {exchange.method} {exchange.url}"
        seen.add((op.operation_id, exchange.status))
        violations = errors(contract.validate_response(op.operation_id, exchange.status, exchange.body))
        problems += [f"{exchange.url.split('?')[0]} -> {exchange.status}: {v}" for v in violations]
    return seen, problems


def test_every_metrics_answer_the_gates_read_holds_to_the_sdk_s_models(
    stack: DevStack, arm: ArmSession, monitor_contract: Contract
) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.monitor import MonitorManagementClient

    make_endpoint(stack, arm, "ep-contract", {"blue": {}, "green": {"emulator.error_rate": "20"}},
                  traffic={"blue": 90, "green": 10})  # fmt: skip
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    stack.aml.start_load("ep-contract", rpm=600, seed=3)
    stack.aml.advance_clock(600)
    recorder = Recorder()
    client = MonitorManagementClient(
        DefaultAzureCredential(), SUBSCRIPTION_ID, base_url=stack.aml.url, retry_total=0, raw_response_hook=recorder
    )
    endpoint_id = f"{WORKSPACE_ID}/onlineEndpoints/ep-contract"
    window = f"{dt.datetime.fromtimestamp(start, dt.UTC):%Y-%m-%dT%H:%M:%SZ}/" \
             f"{dt.datetime.fromtimestamp(start + 600, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"  # fmt: skip
    # What app/azure/metrics.py asks for, plus the unsplit forms and every latency metric.
    for names, aggregation, filter_ in (
        ("RequestsPerMinute", "Total", REQUESTS_FILTER),
        ("RequestLatency_P99", "Average", LATENCY_FILTER),
        ("RequestsPerMinute", "Total", None),
        ("RequestLatency,RequestLatency_P50,RequestLatency_P90,RequestLatency_P95", "Average", LATENCY_FILTER),
    ):
        client.metrics.list(endpoint_id, timespan=window, interval="PT1M", metricnames=names,
                            aggregation=aggregation, filter=filter_, top=TOP)  # fmt: skip
    with pytest.raises(HttpResponseError) as refused:
        client.metrics.list(endpoint_id, timespan=window, metricnames="RequestsPerHour")
    assert refused.value.status_code == 400

    assert {e.url.split("api-version=")[1][:10] for e in recorder.exchanges} == {METRICS_API_VERSION}
    seen, problems = _problems(monitor_contract, recorder.exchanges)
    assert seen == {("Metrics_List", 200), ("Metrics_List", 400)}
    assert not problems, "\n".join(problems)
    answered = recorder.exchanges[0].body["value"][0]
    assert answered["timeseries"] and answered["timeseries"][0]["data"], "the drive produced no data to check"


def test_the_metrics_contract_catches_what_the_sdk_would_misread(monitor_contract: Contract) -> None:
    good = {
        "timespan": "2026-11-26T10:00:00Z/2026-11-26T10:10:00Z",
        "interval": "PT1M",
        "value": [
            {
                "id": "/x/providers/Microsoft.Insights/metrics/RequestsPerMinute",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": "RequestsPerMinute", "localizedValue": "Requests Per Minute"},
                "unit": "Count",
                "timeseries": [
                    {
                        "metadatavalues": [{"name": {"value": "deployment"}, "value": "blue"}],
                        "data": [{"timeStamp": "2026-11-26T10:00:00Z", "total": 54.0}],
                    }
                ],
            }
        ],
    }
    assert not errors(monitor_contract.validate_response("Metrics_List", 200, good))
    bad = {**good, "value": [{**good["value"][0], "timeseries": [{"data": [{"time": "10:00", "total": "54"}]}]}]}
    found = {(v.kind, v.path) for v in errors(monitor_contract.validate_response("Metrics_List", 200, bad))}
    assert ("required", "/value/0/timeseries/0/data/0/timeStamp") in found
    assert ("type", "/value/0/timeseries/0/data/0/total") in found
    assert not errors(monitor_contract.validate_response("Metrics_List", 400, {"error": {"code": "BadRequest"}}))
