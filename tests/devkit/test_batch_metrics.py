"""The emulator's ``metrics:getBatch``: Azure Monitor's batching rules, its own audience, and the same numbers as the
per-resource API."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import requests

from devkit.aml_emulator import ARM_AUDIENCE
from devkit.aml_emulator.server import METRICS_AUDIENCE
from devkit.stack import SUBSCRIPTION_ID, WORKSPACE_ID, DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration
NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"


def _batch(stack: DevStack, ids: list[str], region: str = "eastus", audience: str = METRICS_AUDIENCE,
           **query: Any) -> requests.Response:  # fmt: skip
    assert stack.ca is not None
    token, _ = stack.issuer.issue(audience)
    params = {"api-version": "2024-02-01", "metricnamespace": NAMESPACE, "metricnames": "RequestsPerMinute", **query}
    return requests.post(
        f"{stack.aml.url}/{region}/subscriptions/{SUBSCRIPTION_ID}/metrics:getBatch",
        params=params,
        json={"resourceids": ids},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(stack.ca.ca_path),
        timeout=10,
    )


def _endpoint_id(name: str, workspace_id: str = WORKSPACE_ID) -> str:
    return f"{workspace_id}/onlineEndpoints/{name}"


def test_one_call_answers_several_endpoints_with_the_per_resource_numbers(stack: DevStack, arm: ArmSession) -> None:
    for name in ("ep-one", "ep-two"):
        make_endpoint(stack, arm, name, {"blue": {}}, traffic={"blue": 100})
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    stack.aml.start_load("ep-one", rpm=120, seed=1)
    stack.aml.start_load("ep-two", rpm=60, seed=2)
    stack.aml.advance_clock(300)
    window = {"starttime": _iso(start), "endtime": _iso(start + 300), "aggregation": "Total"}
    answer = _batch(stack, [_endpoint_id("ep-one"), _endpoint_id("ep-two")], **window)
    assert answer.status_code == 200, answer.text
    values = answer.json()["values"]
    assert [v["resourceid"] for v in values] == [_endpoint_id("ep-one"), _endpoint_id("ep-two")]
    totals = [sum(p.get("total", 0) for s in v["value"][0]["timeseries"] for p in s["data"]) for v in values]
    assert totals == [600, 300]  # 5 minutes at 120 and at 60 a minute
    single = arm.call(
        "GET",
        "/onlineEndpoints/ep-one/providers/Microsoft.Insights/metrics",
        api_version="2024-02-01",
    )
    assert single.status_code == 200
    # The batch is a data-plane call: not an ARM request, so not counted against ARM's limits.
    counted = stack.aml.request_counts()
    assert counted["total"] == len([r for r in stack.aml.requests() if r.api == "arm"])
    assert [r.api for r in stack.aml.requests(path_contains="getBatch")] == ["metrics-batch"]


def test_the_batch_rules_are_enforced(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-rules", {"blue": {}}, traffic={"blue": 100})
    west = stack.aml.add_workspace("mlw-west", location="westus2")
    ids = [_endpoint_id(f"ep-{n:02d}") for n in range(51)]
    assert _batch(stack, ids).status_code == 400  # at most 50 resources
    assert _batch(stack, ids[:50]).status_code == 200
    west.seed_endpoint("ep-west", {}, {})
    west_id = _endpoint_id("ep-west", west.workspace_id)
    assert _batch(stack, [west_id], region="westus2").status_code == 200
    assert _batch(stack, [west_id]).status_code == 400  # every resource in the region of the endpoint called
    assert _batch(stack, [_endpoint_id("ep-rules"), west_id]).status_code == 400
    assert _batch(stack, [west_id], metricnamespace="Microsoft.Compute/virtualMachines").status_code == 400
    assert _batch(stack, ["/subscriptions/other/resourceGroups/rg/providers/x/y/z"]).status_code == 400
    assert _batch(stack, [_endpoint_id("ep-rules")], audience=ARM_AUDIENCE).status_code == 401
    missing = _batch(stack, [_endpoint_id("ep-missing")])
    assert missing.status_code == 200
    [item] = missing.json()["values"]
    assert item["value"][0]["errorCode"] == "ResourceNotFound" and item["value"][0]["timeseries"] == []


def test_the_workspaces_added_share_the_host_s_clock(stack: DevStack) -> None:
    west = stack.aml.add_workspace("mlw-west2", location="westus2")
    stack.aml.set_clock(2_000_000_000, frozen=True)
    assert west.clock_now() == 2_000_000_000
    stack.aml.advance_clock(60)
    assert west.clock_now() == 2_000_000_060


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def test_an_azure_monitor_outage_refuses_batch_reads_too(stack: DevStack, arm: ArmSession) -> None:
    """An outage window is Azure Monitor's, whichever of its APIs is read: getBatch answers it as metrics.list does."""
    make_endpoint(stack, arm, "ep-out", {"blue": {}}, traffic={"blue": 100})
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    stack.aml.advance_clock(120)
    window = {"starttime": _iso(start), "endtime": _iso(start + 120), "aggregation": "Total"}
    stack.aml.monitor_outage(503, count=1, retry_after_s=0)
    refused = _batch(stack, [_endpoint_id("ep-out")], **window)
    assert refused.status_code == 503
    assert stack.aml.monitor_outages()[0]["hits"] == 1
    assert _batch(stack, [_endpoint_id("ep-out")], **window).status_code == 200  # count=1: the next read is served
