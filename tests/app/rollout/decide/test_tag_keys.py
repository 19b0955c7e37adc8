"""Tag keys: a misspelled tag of the contract is refused with a suggestion, users' own keys pass, strict mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.rollout.decide.model import ModelInfo, Reject, RolloutPlan, Skip
from app.rollout.decide.plan import plan_rollout
from app.rollout.decide.tag_keys import KNOWN_TAGS, TagKeyProblem, check_tag_keys
from tests.fakes import WORKSPACE, make_settings

pytestmark = pytest.mark.fast

README = Path(__file__).parents[4] / "README.md"


def _plan(tags: dict[str, str], **settings: object) -> RolloutPlan | Skip | Reject:
    model = ModelInfo(name="credit", version="7", type="mlflow_model", tags=tags)
    return plan_rollout(WORKSPACE, model, make_settings(**settings))


def _suggestions(tags: dict[str, str], strict: bool = False) -> dict[str, str | None]:
    return {problem.key: problem.suggestion for problem in check_tag_keys(tags, strict=strict)}


def test_the_reviewed_misspellings_no_longer_go_live_at_100_percent() -> None:
    result = _plan({"deploy": "true", "trafic": "20", "bake_time": "10m"})
    assert isinstance(result, Reject)
    assert len(result.problems) == 2
    assert _suggestions({"deploy": "true", "trafic": "20", "bake_time": "10m"}) == {
        "trafic": "traffic",
        "bake_time": "bake",
    }


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("trafic", "traffic"),
        ("Traffic_Step", "traffic_steps"),
        ("traffic-steps", "traffic_steps"),
        ("trafficsteps", "traffic_steps"),
        ("bake_time", "bake"),
        ("bake-duration", "bake"),
        ("traffic_percent", "traffic"),
        ("mirror_pct", "mirror"),
        ("instanceType", "instance_type"),
        ("instance_cout", "instance_count"),
        ("endpoint_name", "endpoint"),
        ("endpionts", "endpoint"),
        ("smoke_requst", "smoke_request"),
        ("max_p95_ms", "max_p99_ms"),
        ("max_error_rte", "max_error_rate"),
        ("mirrors", "mirror"),
    ],
)
def test_a_key_close_to_a_known_tag_is_refused_with_what_was_meant(key: str, meant: str) -> None:
    assert _suggestions({"deploy": "true", key: "1"}) == {key: meant}
    result = _plan({"deploy": "true", key: "1"})
    assert isinstance(result, Reject)


@pytest.mark.parametrize(
    "key",
    [
        "owner",
        "team",
        "framework",
        "dataset",
        "accuracy",
        "base",  # one letter from ``bake``: short tags only match as written or spelled with separators
        "license",
        "git_commit",
        "mlflow.source.git.commit",
        "task",
        "training_stage_duration",
        "deployment_notes",
        "endpoint_url",
        "graphic",
        "strategy",  # a user's own key, unless its value names a deployment strategy (below)
    ],
)
def test_users_own_keys_still_pass(key: str) -> None:
    assert check_tag_keys({"deploy": "true", key: "xgboost"}, strict=False) == []
    assert isinstance(_plan({"deploy": "true", key: "xgboost"}), RolloutPlan)


@pytest.mark.parametrize("value", ["shadow", "Blue/Green", "canary", "dark", "mirror", "A/B"])
def test_a_strategy_key_naming_a_deployment_strategy_is_refused(value: str) -> None:
    # ``strategy=shadow`` went live at 100%: the app has no such tag; the plan says which tags do it.
    [problem] = check_tag_keys({"deploy": "true", "strategy": value}, strict=False)
    assert problem.key == "strategy" and problem.suggestion in KNOWN_TAGS
    assert isinstance(_plan({"deploy": "true", "strategy": value}), Reject)


@pytest.mark.parametrize(
    ("tags", "problem_tag"),
    [
        ({"traffic": "shadow"}, "traffic"),
        ({"mirror": "all"}, "mirror"),
        ({"traffic_steps": "canary"}, "traffic_steps"),
        ({"bake": "forever"}, "bake"),
        ({"instance_count": "many"}, "instance_count"),
    ],
)
def test_unknown_values_of_known_tags_were_already_refused(tags: dict[str, str], problem_tag: str) -> None:
    result = _plan({"deploy": "true", **tags})
    assert isinstance(result, Reject)
    assert check_tag_keys({"deploy": "true", **tags}, strict=False) == []  # the key is right; the value is not
    assert any(problem.startswith(f"tag '{problem_tag}'") for problem in result.problems)


def test_strict_mode_refuses_every_unknown_key_and_still_suggests() -> None:
    problems = check_tag_keys({"deploy": "true", "owner": "ml-team", "trafic": "5", "traffic": "10"}, strict=True)
    assert {(p.key, p.suggestion) for p in problems} == {("owner", None), ("trafic", "traffic")}
    assert all(isinstance(p, TagKeyProblem) for p in problems)
    assert isinstance(_plan({"deploy": "true", "owner": "ml-team"}, strict_tags=True), Reject)
    assert isinstance(_plan({"deploy": "true", "owner": "ml-team"}), RolloutPlan)  # off by default
    assert isinstance(_plan({"DEPLOY": "true", "Traffic": "10"}, strict_tags=True), RolloutPlan)  # case-insensitive


def test_a_misspelled_opt_in_with_true_is_refused_not_silently_skipped() -> None:
    result = _plan({"deplyo": "true", "traffic": "10"})
    assert isinstance(result, Reject)
    assert _suggestions({"deplyo": "true"}) == {"deplyo": "deploy"}
    assert isinstance(_plan({"deplyo": "false"}), Skip)  # no sign the model was meant to deploy
    assert isinstance(_plan({"owner": "x"}), Skip)


def test_every_problem_names_the_key_as_written() -> None:
    [problem] = check_tag_keys({"deploy": "true", "Bake_Time": "10m"}, strict=False)
    assert problem.key == "Bake_Time"
    assert "Bake_Time" in problem.message and "bake" in problem.message


def test_the_known_tags_are_the_readmes_tag_table() -> None:
    section = README.read_text().split("## The tag contract", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) \|", section, re.MULTILINE)
    documented = {name for cell in cells for name in re.findall(r"`([a-z0-9_]+)`", cell)}  # a row may name several
    # ``ncd`` is documented in the ``deploy`` row as the original sample's opt-in.
    assert documented | {"ncd"} == set(KNOWN_TAGS)
