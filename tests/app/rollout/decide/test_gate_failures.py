"""The gate's error rule counts what Azure ML documents as the deployment's own failures (408, 429 by default, a
setting), and a P99 limit applies when there is no baseline and no GATE_MAX_P99_MS."""

from __future__ import annotations

import datetime as dt

import pytest

from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from app.rollout.decide.gate import (
    GatePolicy,
    LatencyPoint,
    MetricWindow,
    Outcome,
    RequestPoint,
    evaluate_gate,
)
from app.rollout.decide.gate_statuses import NO_BASELINE_MAX_P99_MS
from app.rollout.decide.policy import policy_from_settings
from tests.fakes import WORKSPACE_ID, make_settings

pytestmark = pytest.mark.fast

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
END = T0 + 10 * MINUTE
NO_LAG = GatePolicy(metric_lag=dt.timedelta(0))


def _window(new_points: list[RequestPoint], new_p99: float = 60, stable_p99: float | None = 50) -> MetricWindow:
    requests = list(new_points)
    latency = [LatencyPoint("green", T0 + m * MINUTE, new_p99) for m in range(10)]
    if stable_p99 is not None:
        requests += [RequestPoint("blue", T0 + m * MINUTE, "2xx", "200", 900, "200") for m in range(10)]
        latency += [LatencyPoint("blue", T0 + m * MINUTE, stable_p99) for m in range(10)]
    return MetricWindow(T0, END, tuple(requests), tuple(latency))


def _answers(status: int, model_status: str = "0", per_minute: float = 100) -> list[RequestPoint]:
    """Every request of the new deployment answered ``status`` by the endpoint."""
    return [
        RequestPoint("green", T0 + m * MINUTE, f"{status // 100}xx", model_status, per_minute, str(status))
        for m in range(10)
    ]


@pytest.mark.parametrize(
    ("status", "model_status"),
    [
        (408, "0"),  # the model took longer than request_timeout_ms
        (429, "0"),  # too many pending requests for max_concurrent_requests_per_instance x instance_count
        (424, "429"),  # the model container itself answered 429
        (424, "408"),
    ],
)
def test_a_deployment_answering_every_request_with_a_timeout_or_overload_fails(status: int, model_status: str) -> None:
    result = evaluate_gate(_window(_answers(status, model_status)), "green", ["blue"], NO_LAG, END)
    assert result.outcome is Outcome.FAIL
    assert result.evidence.new_errors == result.evidence.new_requests == 1000


@pytest.mark.parametrize(("status", "model_status"), [(400, "0"), (401, "0"), (404, "0"), (424, "400"), (200, "200")])
def test_the_callers_errors_do_not_count_by_default(status: int, model_status: str) -> None:
    result = evaluate_gate(_window(_answers(status, model_status)), "green", ["blue"], NO_LAG, END)
    assert result.evidence.new_errors == 0
    assert result.outcome is Outcome.PASS


def test_the_counted_classes_are_a_setting() -> None:
    only_5xx = GatePolicy(metric_lag=dt.timedelta(0), error_status_codes=frozenset({"5xx"}))
    assert evaluate_gate(_window(_answers(408)), "green", ["blue"], only_5xx, END).outcome is Outcome.PASS
    with_4xx = GatePolicy(metric_lag=dt.timedelta(0), error_status_codes=frozenset({"5xx", "4xx"}))
    assert evaluate_gate(_window(_answers(404)), "green", ["blue"], with_4xx, END).outcome is Outcome.FAIL
    assert evaluate_gate(_window(_answers(503, "0")), "green", ["blue"], only_5xx, END).outcome is Outcome.FAIL


def test_points_without_a_status_code_are_judged_by_class_and_model_status() -> None:
    # Windows read before the status code was split out, and the fakes, carry no status code.
    points = [RequestPoint("green", T0 + m * MINUTE, "4xx", "500", 100) for m in range(10)]
    assert evaluate_gate(_window(points), "green", ["blue"], NO_LAG, END).outcome is Outcome.FAIL


def test_the_evidence_names_the_counted_statuses() -> None:
    evidence = evaluate_gate(_window(_answers(200, "200")), "green", ["blue"], NO_LAG, END).as_dict()["evidence"]
    assert evidence["thresholds"]["countedStatuses"] == ["408", "429", "5xx"]


def test_settings_read_the_counted_statuses_and_refuse_what_is_no_status() -> None:
    base = {"AML_ALLOWED_WORKSPACES": WORKSPACE_ID}
    assert settings_from_env(base).gate_error_status_codes == frozenset({"5xx", "408", "429"})
    custom = settings_from_env({**base, "GATE_ERROR_STATUS_CODES": " 5XX, 504 ,424"})
    assert custom.gate_error_status_codes == frozenset({"5xx", "504", "424"})
    assert policy_from_settings(custom).error_status_codes == custom.gate_error_status_codes
    for bad in ("5xx,abc", "302", "6xx", "4xx,999", "5x"):
        with pytest.raises(SettingsError) as raised:
            settings_from_env({**base, "GATE_ERROR_STATUS_CODES": bad})
        assert "GATE_ERROR_STATUS_CODES" in str(raised.value)


def test_without_a_baseline_or_a_limit_a_p99_near_the_scoring_timeout_fails() -> None:
    # The final step at 100% (or a new endpoint): no stable deployment served requests, GATE_MAX_P99_MS unset.
    slow = _window(_answers(200, "200"), new_p99=NO_BASELINE_MAX_P99_MS + 1, stable_p99=None)
    result = evaluate_gate(slow, "green", ["blue"], NO_LAG, END)
    assert result.outcome is Outcome.FAIL
    assert result.evidence.max_p99_ms == NO_BASELINE_MAX_P99_MS and result.evidence.baseline is False
    fast = _window(_answers(200, "200"), new_p99=NO_BASELINE_MAX_P99_MS, stable_p99=None)
    assert evaluate_gate(fast, "green", ["blue"], NO_LAG, END).outcome is Outcome.PASS


def test_the_no_baseline_limit_gives_way_to_a_setting_and_to_a_baseline() -> None:
    slow = _window(_answers(200, "200"), new_p99=6000, stable_p99=None)
    set_limit = GatePolicy(metric_lag=dt.timedelta(0), max_p99_ms=10_000)
    assert evaluate_gate(slow, "green", [], set_limit, END).outcome is Outcome.PASS
    # With a baseline the ratio judges latency: a model that is slow and always was is not failed for it.
    baseline = _window(_answers(200, "200"), new_p99=6000, stable_p99=5500)
    assert evaluate_gate(baseline, "green", ["blue"], NO_LAG, END).outcome is Outcome.PASS


def test_the_no_baseline_limit_needs_no_latency_data_it_does_not_have() -> None:
    # Without a latency series no latency rule of the platform applies: the error share decides, as before.
    window = MetricWindow(T0, END, tuple(_answers(200, "200")), ())
    assert evaluate_gate(window, "green", [], NO_LAG, END).outcome is Outcome.PASS


def test_the_platform_policy_carries_the_default_limit() -> None:
    policy = policy_from_settings(make_settings())
    assert policy.max_p99_ms is None and policy.no_baseline_max_p99_ms == NO_BASELINE_MAX_P99_MS
