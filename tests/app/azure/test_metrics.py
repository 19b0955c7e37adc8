"""The metrics reader against the emulator's Azure Monitor API (real azure-mgmt-monitor), feeding the gate."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import pytest

from app.azure.metrics import MetricsReader
from app.rollout.decide.gate import GatePolicy, Outcome, evaluate_gate
from devkit.stack import SUBSCRIPTION_ID, DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

pytestmark = pytest.mark.integration

BAKE = dt.timedelta(minutes=10)
POLICY = GatePolicy(metric_lag=dt.timedelta(0))


def _reader() -> MetricsReader:
    from azure.identity import DefaultAzureCredential

    return MetricsReader(DefaultAzureCredential(), SUBSCRIPTION_ID)


def _bake(stack: DevStack, arm: ArmSession, name: str, green: dict[str, str], rpm: float) -> tuple[Any, dt.datetime]:
    """blue 90 / green 10, ``rpm`` synthetic requests a minute for one 10-minute bake; the endpoint and bake start.

    The bake starts 30 s into a minute, as a traffic write lands at any time: the partial minute is left out.
    """
    endpoint = make_endpoint(stack, arm, name, {"blue": {}, "green": green}, traffic={"blue": 90, "green": 10})
    start = math.ceil(time.time() / 60) * 60 + 60 + 30
    stack.aml.set_clock(start, frozen=True)
    stack.aml.start_load(name, rpm=rpm, seed=7)
    stack.aml.advance_clock(BAKE.total_seconds() + 30)
    return endpoint, dt.datetime.fromtimestamp(start, dt.UTC)


def _judge(stack: DevStack, endpoint: Any, start: dt.datetime, policy: GatePolicy = POLICY) -> Any:
    end = start + BAKE
    window = _reader().read_window(endpoint["id"], start, end)
    now = dt.datetime.fromtimestamp(stack.aml.clock_now(), dt.UTC)
    return window, evaluate_gate(window, "green", ["blue"], policy, now)


def test_a_healthy_canary_passes(stack: DevStack, arm: ArmSession) -> None:
    endpoint, start = _bake(stack, arm, "ep-good", {}, rpm=600)
    stack.aml.clear_requests()

    _, result = _judge(stack, endpoint, start)

    assert result.outcome is Outcome.PASS, result.reasons
    # 9 whole minutes lie inside a bake that started at :30; green has ~10% of 600 a minute.
    assert 0.08 * 5400 < result.evidence.new_requests < 0.12 * 5400
    assert result.evidence.stable_requests + result.evidence.new_requests == 5400
    assert result.evidence.baseline and result.evidence.latency_ratio is not None
    # One query per metric, each asking for every series.
    sent = stack.aml.requests()
    assert [r.query["metricnames"] for r in sent] == ["RequestsPerMinute", "RequestLatency_P99"]
    assert all(r.query["top"] == "1000" and r.path.endswith("/providers/Microsoft.Insights/metrics") for r in sent)
    assert "modelStatusCode eq '*'" in sent[0].query["$filter"]


def test_a_crashing_model_fails_although_the_endpoint_answers_4xx(stack: DevStack, arm: ArmSession) -> None:
    endpoint, start = _bake(stack, arm, "ep-5xx", {"emulator.error_rate": "20"}, rpm=600)

    window, result = _judge(stack, endpoint, start)

    assert result.outcome is Outcome.FAIL
    assert 15 < (result.evidence.error_share_pct or 0) < 25
    assert (result.evidence.error_share_pct or 0) > result.evidence.max_error_rate
    # Azure ML answers 424 for a model error: no green point has statusCodeClass 5xx at all.
    green = [p for p in window.requests if p.deployment == "green"]
    assert {p.status_class for p in green} == {"2xx", "4xx"}
    assert {p.model_status for p in green if p.status_class == "4xx"} == {"500"}


def test_a_slow_canary_fails_on_latency(stack: DevStack, arm: ArmSession) -> None:
    endpoint, start = _bake(stack, arm, "ep-slow", {"emulator.p50_ms": "200", "emulator.p99_ms": "800"}, rpm=600)

    _, result = _judge(stack, endpoint, start)

    assert result.outcome is Outcome.FAIL
    assert result.evidence.error_share_pct == 0
    assert (result.evidence.latency_ratio or 0) > 5 > result.evidence.max_latency_ratio


def test_low_traffic_is_inconclusive(stack: DevStack, arm: ArmSession) -> None:
    endpoint, start = _bake(stack, arm, "ep-quiet", {}, rpm=20)

    _, result = _judge(stack, endpoint, start)

    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.evidence.new_requests < result.evidence.min_requests == 100
    assert "GATE_MIN_REQUESTS" in result.reasons[0]  # the setting to change


def test_the_gate_and_azure_monitor_agree_on_lag(stack: DevStack, arm: ArmSession) -> None:
    endpoint, start = _bake(stack, arm, "ep-lag", {}, rpm=600)
    stack.aml.set_metric_lag(120)

    _, result = _judge(stack, endpoint, start, GatePolicy(metric_lag=dt.timedelta(minutes=2)))

    # The bake ended 30 s ago; both Azure Monitor and the gate count through now - 2 minutes = end - 90 s: the
    # 8 whole minutes from the first after the bake's start, and no point the gate has to drop itself.
    assert result.evidence.counted_until == start + BAKE - dt.timedelta(seconds=90)
    assert result.evidence.stable_requests + result.evidence.new_requests == 600 * 8
    assert result.evidence.points_dropped_for_lag == 0
    assert result.outcome is Outcome.PASS


@pytest.mark.parametrize(("tag", "status"), [("emulator.timeout_rate", "408"), ("emulator.overload_rate", "429")])
def test_a_canary_that_times_out_or_is_overloaded_fails_on_its_status_codes(
    stack: DevStack, arm: ArmSession, tag: str, status: str
) -> None:
    endpoint, start = _bake(stack, arm, f"ep-{status}", {tag: "100"}, rpm=600)

    window, result = _judge(stack, endpoint, start)

    assert result.outcome is Outcome.FAIL
    assert result.evidence.new_errors == result.evidence.new_requests > 0
    green = {(p.status_class, p.status_code, p.model_status) for p in window.requests if p.deployment == "green"}
    assert green == {("4xx", status, "0")}  # the endpoint's own answer: only the status code tells it apart
