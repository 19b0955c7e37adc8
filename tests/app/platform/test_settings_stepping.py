"""The progressive-delivery settings: defaults that keep today's behaviour, parsing, and errors naming the variable."""

from __future__ import annotations

import datetime as dt

import pytest

from app.platform.durations import format_duration, parse_duration
from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from tests.fakes import WORKSPACE_ID

pytestmark = pytest.mark.fast

BASE = {"AML_ALLOWED_WORKSPACES": WORKSPACE_ID}


def test_unconfigured_app_neither_bakes_nor_requires_a_smoke_sample() -> None:
    settings = settings_from_env(BASE)
    assert settings.bake_default == dt.timedelta(0)
    assert (settings.smoke_required, settings.smoke_timeout_seconds) == (False, 30.0)
    assert (settings.gate_max_error_rate, settings.gate_max_latency_ratio, settings.gate_max_p99_ms) == (1.0, 1.5, None)
    assert (settings.gate_min_requests, settings.gate_max_extensions, settings.gate_inconclusive) == (100, 2, "hold")
    assert settings.gate_metric_lag == dt.timedelta(minutes=2)


def test_values_are_parsed() -> None:
    settings = settings_from_env(
        BASE
        | {
            "SMOKE_REQUIRED": "true",
            "SMOKE_TIMEOUT_SECONDS": "12.5",
            "BAKE_DEFAULT": "1h30m",
            "GATE_MAX_ERROR_RATE": "0.5",
            "GATE_MAX_LATENCY_RATIO": "2",
            "GATE_MAX_P99_MS": "800",
            "GATE_MIN_REQUESTS": "20",
            "GATE_METRIC_LAG": "0s",
            "GATE_MAX_EXTENSIONS": "0",
            "GATE_INCONCLUSIVE": "Rollback",
        }
    )
    assert settings.smoke_required and settings.smoke_timeout_seconds == 12.5
    assert settings.bake_default == dt.timedelta(minutes=90)
    assert (settings.gate_max_error_rate, settings.gate_max_latency_ratio, settings.gate_max_p99_ms) == (0.5, 2, 800)
    assert (settings.gate_min_requests, settings.gate_max_extensions, settings.gate_inconclusive) == (20, 0, "rollback")
    assert settings.gate_metric_lag == dt.timedelta(0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMOKE_REQUIRED", "maybe"),
        ("SMOKE_TIMEOUT_SECONDS", "0"),
        ("SMOKE_TIMEOUT_SECONDS", "soon"),
        ("BAKE_DEFAULT", "10"),
        ("BAKE_DEFAULT", "10 minutes"),
        ("BAKE_DEFAULT", "25h"),
        ("GATE_MAX_ERROR_RATE", "101"),
        ("GATE_MAX_ERROR_RATE", "-1"),
        ("GATE_MAX_LATENCY_RATIO", "0.9"),
        ("GATE_MAX_P99_MS", "0"),
        ("GATE_MAX_P99_MS", "fast"),
        ("GATE_MIN_REQUESTS", "0"),
        ("GATE_METRIC_LAG", "2 minutes"),
        ("GATE_METRIC_LAG", "2h"),
        ("GATE_MAX_EXTENSIONS", "-1"),
        ("GATE_INCONCLUSIVE", "wait"),
    ],
)
def test_a_bad_value_is_reported_with_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env(BASE | {name: value})
    assert len(caught.value.problems) == 1 and name in caught.value.problems[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2h0m5s", 7205), (" 5M ", 300)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)
    assert parse_duration(format_duration(dt.timedelta(seconds=seconds))) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "1.5h", "10m1h", "5m5m", "-1m", "PT10M", "1d"])
def test_bad_durations_state_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="a duration such as 90s, 10m, 1h"):
        parse_duration(text)
