"""The emulator's ``metrics:getBatch`` answers hold to the contract of the pinned azure-monitor-querymetrics
(api-version 2024-02-01), and the app's batch requests to its request model."""

from __future__ import annotations

import datetime as dt
import math
import time
from urllib.parse import urlsplit

import pytest

from app.azure.metrics_batch import MAX_RESOURCES, NAMESPACE, QUERIES, BatchMetricsReader
from devkit.contract import Contract, errors
from devkit.contract_batch import BATCH_API_VERSION, batch_metrics_contract
from devkit.stack import WORKSPACE_ID, DevStack
from tests.contract.conftest import Recorder
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def batch_contract() -> Contract:
    return batch_metrics_contract()


def test_the_contract_is_the_client_s_models(batch_contract: Contract) -> None:
    item = batch_contract.definition("MetricResultsResponseValuesItem")
    assert set(item["required"]) == {"starttime", "endtime", "value"}
    assert set(batch_contract.definition("Metric")["required"]) == {"id", "type", "name", "unit", "timeseries"}
    assert batch_contract.definition("MetricValue")["required"] == ["timeStamp"]
    assert "resourceids" in batch_contract.definition("ResourceIdList")["properties"]


def test_every_batch_answer_the_gates_read_holds_to_the_client_s_models(
    stack: DevStack, arm: ArmSession, batch_contract: Contract
) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential

    for name in ("ep-batch-a", "ep-batch-b"):
        make_endpoint(stack, arm, name, {"blue": {}, "green": {"emulator.error_rate": "20"}},
                      traffic={"blue": 90, "green": 10})  # fmt: skip
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    for name in ("ep-batch-a", "ep-batch-b"):
        stack.aml.start_load(name, rpm=600, seed=3)
    stack.aml.advance_clock(600)
    recorder = Recorder()
    reader = BatchMetricsReader(
        DefaultAzureCredential(), stack.env["METRICS_BATCH_ENDPOINT"], retry_total=0, raw_response_hook=recorder
    )
    ids = [f"{WORKSPACE_ID}/onlineEndpoints/{name}" for name in ("ep-batch-a", "ep-batch-b", "ep-gone")]
    windows = reader.read_windows(
        "eastus", ids, dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(start + 600, dt.UTC)
    )
    assert len(windows) == 3 and windows[ids[0].lower()].requests, "the drive produced no data to check"
    assert not windows[ids[2].lower()].requests  # a missing endpoint: an empty window, never evidence
    client = reader._client("eastus")
    with pytest.raises(HttpResponseError) as refused:
        client.query_resources(resource_ids=ids[:1], metric_namespace=NAMESPACE, metric_names=["RequestsPerHour"])
    assert refused.value.status_code == 400

    assert len(recorder.exchanges) == len(QUERIES) + 1
    assert {e.url.split("api-version=")[1][:10] for e in recorder.exchanges} == {BATCH_API_VERSION}
    problems = []
    for exchange in recorder.exchanges:
        path = "/" + urlsplit(exchange.url).path.split("/", 2)[2]  # without the emulator's region segment
        op = batch_contract.find_operation(exchange.method, path)
        assert op is not None and op.operation_id == "MetricsBatch_Batch", exchange.url
        violations = errors(batch_contract.validate_response(op.operation_id, exchange.status, exchange.body))
        problems += [f"{exchange.status}: {v}" for v in violations]
    for sent in stack.aml.requests(method="POST", path_contains="metrics:getBatch"):
        problems += [f"request: {v}" for v in errors(batch_contract.validate_request("MetricsBatch_Batch", sent.body))]
    assert not problems, "\n".join(problems)


def test_the_batch_contract_catches_what_the_client_would_misread(batch_contract: Contract) -> None:
    good = {
        "values": [
            {
                "starttime": "2026-11-26T10:00:00Z",
                "endtime": "2026-11-26T10:10:00Z",
                "resourceid": "/x",
                "value": [
                    {
                        "id": "/x/providers/Microsoft.Insights/metrics/RequestsPerMinute",
                        "type": "Microsoft.Insights/metrics",
                        "name": {"value": "RequestsPerMinute"},
                        "unit": "Count",
                        "timeseries": [{"data": [{"timeStamp": "2026-11-26T10:00:00Z", "total": 54.0}]}],
                    }
                ],
            }
        ]
    }
    assert not errors(batch_contract.validate_response("MetricsBatch_Batch", 200, good))
    item = good["values"][0]
    broken = {**item["value"][0], "timeseries": [{"data": [{"total": "1"}]}]}
    bad = {"values": [{**item, "cost": 10, "value": [broken]}]}
    found = {(v.kind, v.path) for v in errors(batch_contract.validate_response("MetricsBatch_Batch", 200, bad))}
    assert ("additionalProperties", "/values/0/cost") in found
    assert ("required", "/values/0/value/0/timeseries/0/data/0/timeStamp") in found
    assert ("type", "/values/0/value/0/timeseries/0/data/0/total") in found
    assert MAX_RESOURCES == 50
