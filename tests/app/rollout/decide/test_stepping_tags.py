"""The progressive-delivery tags on the plan: valid values, every rule's message, tighten-only, old ledger rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from app.rollout.decide.model import ModelInfo, Reject, RolloutPlan
from app.rollout.decide.plan import plan_rollout
from tests.fakes import WORKSPACE, make_settings

pytestmark = pytest.mark.fast


def _plan(tags: dict[str, str], **settings: object) -> RolloutPlan | Reject:
    model = ModelInfo(name="credit", version="7", type="mlflow_model", tags={"deploy": "true", **tags})
    result = plan_rollout(WORKSPACE, model, make_settings(**settings))
    assert isinstance(result, RolloutPlan | Reject)
    return result


def test_without_the_tags_the_plan_is_todays_single_step() -> None:
    plan = _plan({})
    assert isinstance(plan, RolloutPlan)
    assert (plan.traffic_steps, plan.steps, plan.bake_seconds, plan.smoke_request) == ((), (100,), 0, "")
    assert (plan.max_error_rate, plan.max_p99_ms) == (None, None)


def test_the_tags_land_on_the_plan() -> None:
    sample = '{"input_data": {"columns": ["a"], "data": [[1]]}}'
    plan = _plan(
        {
            "traffic": "50",
            "traffic_steps": "10, 25%,50",
            "bake": "90s",
            "smoke_request": sample,
            "max_error_rate": "0.5",
            "max_p99_ms": "250ms",
        },
        gate_max_p99_ms=400.0,
    )
    assert isinstance(plan, RolloutPlan)
    assert (plan.steps, plan.bake_seconds, plan.smoke_request) == ((10, 25, 50), 90, sample)
    assert (plan.max_error_rate, plan.max_p99_ms) == (0.5, 250)


def test_bake_defaults_to_the_setting() -> None:
    plan = _plan({}, bake_default=dt.timedelta(minutes=10))
    assert isinstance(plan, RolloutPlan) and plan.bake_seconds == 600
    assert isinstance(plan := _plan({"bake": "0s"}, bake_default=dt.timedelta(minutes=10)), RolloutPlan)
    assert plan.bake_seconds == 0


@pytest.mark.parametrize(
    ("tags", "settings", "message"),
    [
        ({"traffic_steps": "10,50"}, {}, "tag 'traffic_steps'='10,50': must be comma-separated whole percentages"),
        ({"traffic_steps": "50,10,100"}, {}, "strictly increasing"),
        ({"traffic_steps": "10,10,100"}, {}, "strictly increasing"),
        ({"traffic_steps": "0,100"}, {}, "from 1 to 100"),
        ({"traffic_steps": "10,fifty,100"}, {}, "whole percentages"),
        ({"traffic_steps": "10,,100"}, {}, "whole percentages"),
        ({"traffic_steps": ",".join(str(n) for n in range(5, 101, 5))}, {}, "at most 10"),
        ({"traffic_steps": "10", "traffic": "0"}, {}, "a dark rollout (traffic=0) has none"),
        ({"traffic_steps": "10,40", "traffic": "50"}, {}, "ending at the final share (tag 'traffic', here 50)"),
        ({"bake": "10"}, {}, "tag 'bake'='10': must be a duration such as 90s, 10m, 1h"),
        ({"bake": "2d"}, {}, "tag 'bake'='2d'"),
        ({"bake": "25h"}, {}, "at most 24h"),
        ({"smoke_request": "{not json"}, {}, "tag 'smoke_request'='{not json': must be inline JSON"),
        ({"smoke_request": '"just a string"'}, {}, "an object or an array"),
        ({"smoke_request": "[" * 100_001}, {}, "at most 100000"),
        (
            {"max_error_rate": "5"},
            {},
            "tag 'max_error_rate'='5': must be a percentage from 0 to 1 (GATE_MAX_ERROR_RATE",
        ),
        ({"max_error_rate": "-0.1"}, {}, "tag 'max_error_rate'"),
        ({"max_error_rate": "low"}, {}, "tag 'max_error_rate'"),
        ({"max_error_rate": "nan"}, {}, "tag 'max_error_rate'"),
        ({"max_p99_ms": "900"}, {"gate_max_p99_ms": 500.0}, "up to 500 (GATE_MAX_P99_MS; tags may only tighten"),
        ({"max_p99_ms": "0"}, {}, "tag 'max_p99_ms'='0': must be a number of milliseconds above 0"),
        ({"max_p99_ms": "fast"}, {}, "tag 'max_p99_ms'"),
    ],
)
def test_each_rule_names_the_tag_the_value_and_the_rule(
    tags: dict[str, str], settings: dict[str, object], message: str
) -> None:
    result = _plan(tags, **settings)
    assert isinstance(result, Reject), result
    assert len(result.problems) == 1 and message in result.problems[0], result.problems


def test_a_p99_tag_is_free_when_the_platform_sets_no_limit() -> None:
    plan = _plan({"max_p99_ms": "5000"})
    assert isinstance(plan, RolloutPlan) and plan.max_p99_ms == 5000


def test_the_plan_round_trips_through_json() -> None:
    plan = _plan({"traffic": "50", "traffic_steps": "10,50", "bake": "10m", "max_error_rate": "0.5"})
    assert isinstance(plan, RolloutPlan)
    assert RolloutPlan.from_json(plan.to_json()) == plan


def test_a_ledger_row_written_before_these_fields_still_decodes() -> None:
    plan = _plan({})
    assert isinstance(plan, RolloutPlan)
    old = json.loads(plan.to_json())
    for name in ("traffic_steps", "bake_seconds", "smoke_request", "max_error_rate", "max_p99_ms"):
        del old[name]
    decoded = RolloutPlan.from_json(json.dumps(old))
    assert decoded == plan and decoded.steps == (100,) and decoded.bake_seconds == 0


def test_a_row_from_a_newer_version_drops_fields_it_does_not_know() -> None:
    plan = _plan({})
    assert isinstance(plan, RolloutPlan)
    newer = json.loads(plan.to_json()) | {"some_future_field": 3}
    assert RolloutPlan.from_json(json.dumps(newer)) == plan
    assert "some_future_field" not in {f.name for f in dataclasses.fields(RolloutPlan)}


def test_smoke_required_rejects_a_model_without_a_sample_before_anything_is_written() -> None:
    rejected = _plan({}, smoke_required=True)
    assert isinstance(rejected, Reject)
    assert rejected.problems == (
        "tag 'smoke_request' is absent: SMOKE_REQUIRED=true needs a sample request for the smoke test; add "
        "smoke_request=<the JSON body of one scoring request>",
    )
    sample = '{"input_data": {"columns": ["a"], "data": [[1]]}}'
    assert isinstance(_plan({"smoke_request": sample}, smoke_required=True), RolloutPlan)
    assert isinstance(_plan({}, smoke_required=False), RolloutPlan)
