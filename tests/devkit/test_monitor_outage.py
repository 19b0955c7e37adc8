"""Azure Monitor outages on the emulator: metrics reads refused with 5xx, 429 or 403 for a window of emulated time."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest
from azure.core.exceptions import HttpResponseError

from app.azure.metrics import MetricsReader
from devkit.stack import SUBSCRIPTION_ID, DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration


def _reader() -> MetricsReader:
    from azure.identity import DefaultAzureCredential

    return MetricsReader(DefaultAzureCredential(), SUBSCRIPTION_ID)


def _endpoint(stack: DevStack, arm: ArmSession, name: str) -> tuple[str, dt.datetime]:
    endpoint = make_endpoint(stack, arm, name, {"blue": {}}, traffic={"blue": 100})
    start = math.ceil(time.time() / 60) * 60 + 60
    stack.aml.set_clock(start, frozen=True)
    stack.aml.start_load(name, rpm=120, seed=5)
    stack.aml.advance_clock(300)
    return endpoint["id"], dt.datetime.fromtimestamp(start, dt.UTC)


def _read(endpoint_id: str, start: dt.datetime) -> int:
    """How many requests the window holds, read through azure-mgmt-monitor."""
    window = _reader().read_window(endpoint_id, start, start + dt.timedelta(minutes=4))
    return round(sum(point.count for point in window.requests))


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_outage_refuses_metrics_reads_until_its_window_ends(stack: DevStack, arm: ArmSession, status: int) -> None:
    endpoint_id, start = _endpoint(stack, arm, f"ep-mon-{status}")
    stack.aml.monitor_outage(status, seconds=120, retry_after_s=0)

    with pytest.raises(HttpResponseError) as refused:
        _read(endpoint_id, start)
    assert refused.value.status_code == status
    [window] = stack.aml.monitor_outages()
    assert window["hits"] == 4  # the reader's bounded retries (3) all met the outage
    # Azure ML's own routes are not part of the outage.
    assert arm.call("GET", f"/onlineEndpoints/ep-mon-{status}").status_code == 200

    stack.aml.advance_clock(120)  # the window is emulated time: it ends when the clock passes it
    assert _read(endpoint_id, start) == 120 * 4


def test_a_lost_role_answers_403_naming_the_metrics_read_action(stack: DevStack, arm: ArmSession) -> None:
    endpoint_id, start = _endpoint(stack, arm, "ep-mon-403")
    stack.aml.monitor_outage(403, count=1)

    with pytest.raises(HttpResponseError) as refused:
        _read(endpoint_id, start)
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Insights/metrics/read" in str(refused.value.message)
    assert _read(endpoint_id, start) == 120 * 4  # count=1: the next read is served


def test_an_outage_can_start_later_and_is_scripted_over_http(stack: DevStack, arm: ArmSession) -> None:
    endpoint_id, start = _endpoint(stack, arm, "ep-mon-http")
    control = f"{stack.aml.url}/_emulator/monitor/outage"
    put = arm.session.put(control, json={"status": 503, "seconds": 60, "starts_in": 60, "retry_after_s": 0})
    assert put.status_code == 201 and put.json()["id"]

    assert _read(endpoint_id, start) == 120 * 4  # not yet
    stack.aml.advance_clock(60)
    with pytest.raises(HttpResponseError):
        _read(endpoint_id, start)
    assert arm.session.get(control).json()["value"][0]["hits"] >= 1
    assert arm.session.delete(control).status_code == 204
    assert _read(endpoint_id, start) == 120 * 4

    bad = arm.session.put(control, json={"status": 404})
    assert bad.status_code == 400
