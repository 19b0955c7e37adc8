"""The tag contract, table-driven: every row and every invalid value."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.model import ModelInfo, Reject, RolloutPlan, Skip
from app.rollout.decide.naming import endpoint_name
from app.rollout.decide.plan import plan_rollout
from tests.fakes import WORKSPACE, make_settings

pytestmark = pytest.mark.fast

CREATED = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _plan(tags: dict[str, str], model_type: str = "mlflow_model", **settings: object) -> RolloutPlan | Skip | Reject:
    model = ModelInfo(name="credit_risk.v2", version="7", type=model_type, tags=tags, created_at=CREATED)
    return plan_rollout(WORKSPACE, model, make_settings(**settings))


def test_defaults() -> None:
    plan = _plan({"deploy": "true"})
    assert isinstance(plan, RolloutPlan) and plan.endpoint == "credit-risk-v2-5dc172"  # slug + workspace suffix
    assert plan == RolloutPlan(
        workspace_id=WORKSPACE.arm_id,
        endpoint=endpoint_name("credit_risk.v2", WORKSPACE.arm_id),
        deployment="credit-risk-v2-v7",
        model_name="credit_risk.v2",
        model_version="7",
        model_type="mlflow_model",
        model_created_at=CREATED.isoformat(),
        instance_type="Standard_DS3_v2",
        instance_count=1,
        traffic=100,
        mirror=0,
    )


@pytest.mark.parametrize("tags", [{"deploy": "true"}, {"ncd": "true"}, {"Deploy": "TRUE"}, {"deploy": " true "}])
def test_opt_in(tags: dict[str, str]) -> None:
    assert isinstance(_plan(tags), RolloutPlan)


@pytest.mark.parametrize("tags", [{}, {"deploy": "false"}, {"deploy": "yes"}, {"deploy": "1"}, {"ncd": "no"}])
def test_not_opted_in_is_skipped(tags: dict[str, str]) -> None:
    result = _plan(tags)
    assert isinstance(result, Skip)
    assert "deploy=true" in result.reason  # the tag that opts in


def test_stage_must_match_when_set() -> None:
    assert isinstance(_plan({"deploy": "true", "stage": "Prod"}, deploy_stage="prod"), RolloutPlan)
    skipped = _plan({"deploy": "true", "stage": "dev"}, deploy_stage="prod")
    assert isinstance(skipped, Skip)
    assert "DEPLOY_STAGE" in skipped.reason
    assert isinstance(_plan({"deploy": "true"}, deploy_stage="prod"), Skip)
    assert isinstance(_plan({"deploy": "true", "stage": "anything"}), RolloutPlan)


@pytest.mark.parametrize("model_type", ["MLFlow_Model", "Triton_Model", "MLFLOW_MODEL"])
def test_the_model_type_is_compared_case_insensitively(model_type: str) -> None:
    plan = _plan({"deploy": "true"}, model_type)
    assert isinstance(plan, RolloutPlan), plan


@pytest.mark.parametrize("model_type", ["mlflow_model", "triton_model"])
def test_no_code_types_are_planned(model_type: str) -> None:
    assert isinstance(_plan({"deploy": "true"}, model_type), RolloutPlan)


@pytest.mark.parametrize("model_type", ["custom_model", "", "uri_folder"])
def test_other_types_are_skipped_with_a_reason(model_type: str) -> None:
    result = _plan({"deploy": "true"}, model_type)
    assert isinstance(result, Skip)
    assert "mlflow_model" in result.reason and "triton_model" in result.reason  # the types that are deployed


@pytest.mark.parametrize(
    ("tags", "field", "value"),
    [
        ({"endpoint": "Credit"}, "endpoint", "credit"),
        ({"instance_type": "Standard_F4s_v2"}, "instance_type", "Standard_F4s_v2"),
        ({"instance_count": "3"}, "instance_count", 3),
        ({"traffic": "20"}, "traffic", 20),
        ({"traffic": "20%"}, "traffic", 20),
        ({"traffic": "0"}, "traffic", 0),
        ({"traffic": "0", "mirror": "50"}, "mirror", 50),
        ({"traffic": "100"}, "traffic", 100),
    ],
)
def test_valid_tags(tags: dict[str, str], field: str, value: object) -> None:
    plan = _plan({"deploy": "true", **tags})
    assert isinstance(plan, RolloutPlan)
    assert getattr(plan, field) == value


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"endpoint": "ab"}, "tag 'endpoint'='ab': must be 3-32 characters"),
        ({"endpoint": "1credit"}, "tag 'endpoint'='1credit'"),
        ({"endpoint": "credit_risk"}, "tag 'endpoint'='credit_risk'"),
        ({"endpoint": "credit-"}, "tag 'endpoint'='credit-'"),
        ({"endpoint": "x" * 33}, "tag 'endpoint'"),
        (
            {"instance_type": "Standard_NC24ads_A100_v4"},
            "tag 'instance_type'='Standard_NC24ads_A100_v4': not in ALLOWED_INSTANCE_TYPES",
        ),
        ({"instance_count": "0"}, "tag 'instance_count'='0': must be a whole number from 1 to 3 (MAX_INSTANCE_COUNT)"),
        ({"instance_count": "4"}, "tag 'instance_count'='4': must be a whole number from 1 to 3"),
        ({"instance_count": "two"}, "tag 'instance_count'='two'"),
        ({"instance_count": "-1"}, "tag 'instance_count'='-1'"),
        ({"instance_count": "1.5"}, "tag 'instance_count'='1.5'"),
        ({"traffic": "101"}, "tag 'traffic'='101': must be a whole number from 0 to 100"),
        ({"traffic": "-5"}, "tag 'traffic'='-5'"),
        ({"traffic": "half"}, "tag 'traffic'='half'"),
        ({"mirror": "51", "traffic": "0"}, "tag 'mirror'='51': must be a whole number from 0 to 50"),
        ({"mirror": "10"}, "tag 'mirror'='10': mirror traffic is only allowed with traffic=0"),
        ({"mirror": "10", "traffic": "20"}, "only allowed with traffic=0"),
    ],
)
def test_invalid_tags_are_rejected_naming_tag_value_and_rule(tags: dict[str, str], message: str) -> None:
    result = _plan({"deploy": "true", **tags}, allowed_instance_types=frozenset({"standard_ds3_v2", "standard_f4s_v2"}))
    assert isinstance(result, Reject)
    assert any(message in problem for problem in result.problems), result.problems
    assert all(any(f"'{tag}'" in problem for tag in tags) for problem in result.problems)  # each names its tag


def test_every_problem_is_reported_at_once() -> None:
    result = _plan({"deploy": "true", "instance_count": "9", "traffic": "500", "endpoint": "?"})
    assert isinstance(result, Reject)
    assert len(result.problems) == 3
    assert result.plan.endpoint == endpoint_name("credit_risk.v2", WORKSPACE.arm_id)  # valid keys for the ledger


def test_the_registered_models_tags_are_authoritative_not_the_events() -> None:
    # plan_rollout is given only the model as read back from AML; the event's tags are not an input.
    assert "tags" not in plan_rollout.__code__.co_varnames[: plan_rollout.__code__.co_argcount]


@pytest.mark.parametrize(
    "instance_type",
    [
        "Standard_Imaginary_v9",
        "Standard_B1s",  # a VM size, but not for endpoints
        "big",
        "Standard DS3 v2",
        "Standard_DS3_v2\n<!channel> deploy me",
    ],
)
def test_instance_type_is_a_managed_sku_even_with_no_allowed_list(instance_type: str) -> None:
    result = _plan({"deploy": "true", "instance_type": instance_type})  # ALLOWED_INSTANCE_TYPES empty
    assert isinstance(result, Reject)
    [problem] = result.problems
    assert "'instance_type'" in problem
    assert result.plan.instance_type == "Standard_DS3_v2"  # the bad value is not carried on


def test_sizes_the_managed_list_supports_pass_in_any_case() -> None:
    for size in ("Standard_DS3_v2", "standard_f4s_v2", "Standard_NC24ads_A100_v4", "Standard_E2s_v3"):
        plan = _plan({"deploy": "true", "instance_type": size})
        assert isinstance(plan, RolloutPlan) and plan.instance_type == size


def test_the_operators_allowed_list_wins_over_the_built_in_one() -> None:
    # A size Azure supports since the built-in list was written: the operator allows it explicitly.
    plan = _plan({"deploy": "true", "instance_type": "Standard_D4as_v5"}, allowed_instance_types={"standard_d4as_v5"})
    assert isinstance(plan, RolloutPlan)


def test_a_bad_default_instance_type_names_the_setting() -> None:
    result = _plan({"deploy": "true"}, default_instance_type="Standard_Nope_v1")
    assert isinstance(result, Reject)
    assert "DEFAULT_INSTANCE_TYPE" in result.problems[0] and "Standard_Nope_v1" in result.problems[0]


@pytest.mark.parametrize(
    "tags",
    [
        {"deploy": "true", "instance_type": "Standard_DS3_v2\n<!channel> *urgent* <https://evil.example|log in>"},
        {"deploy": "true", "traffic": "10\n<!here>"},
        {"deploy": "true", "endpoint": "x\n<@U123>&amp;"},
        {"deploy": "nope\n<!channel>"},
    ],
)
def test_tag_values_reach_reasons_quoted_on_one_line_with_no_slack_markup(tags: dict[str, str]) -> None:
    result = _plan(tags)
    assert isinstance(result, Reject | Skip)
    text = result.reason
    assert "\n" not in text and "<" not in text and ">" not in text and "&" not in text, text
    assert "\\n" in text  # shown escaped, so an operator still sees what the tag holds
