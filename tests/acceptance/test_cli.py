"""The command line: clear errors for missing live settings and unknown scenarios; no live run without consent."""

from __future__ import annotations

import pytest

from acceptance.__main__ import main
from acceptance.live import REQUIRED

pytestmark = pytest.mark.fast

LIVE_ENV = {
    "ACCEPTANCE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "ACCEPTANCE_RESOURCE_GROUP": "rg-ml",
    "ACCEPTANCE_WORKSPACE": "mlw-prod",
    "ACCEPTANCE_APP_URL": "https://func-example.azurewebsites.net",
    "ACCEPTANCE_FUNCTION_KEY": "not-a-real-key",
}


def test_missing_live_settings_are_all_named_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--target", "live", "--yes"], env={})
    err = capsys.readouterr().err
    assert code == 2
    for name, _ in REQUIRED:
        assert name in err


def test_bad_live_values_name_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**LIVE_ENV, "ACCEPTANCE_APP_URL": "func-example", "ACCEPTANCE_POLL_SECONDS": "soon"}
    assert main(["--target", "live"], env=env) == 2
    err = capsys.readouterr().err
    assert "ACCEPTANCE_APP_URL='func-example': must be an http(s) URL" in err
    assert "ACCEPTANCE_POLL_SECONDS='soon'" in err


def test_an_unknown_scenario_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--only", "rolback"], env={}) == 2
    err = capsys.readouterr().err
    assert "unknown scenario(s) rolback" in err and "blue-green" in err and "rollback" in err


def test_live_without_yes_and_without_a_terminal_creates_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's stdin is not a terminal, so nobody can answer the question.
    code = main(["--target", "live", "--only", "canary"], env=LIVE_ENV)
    out = capsys.readouterr().out
    assert code == 1
    assert "acc-" in out and "canary" in out and "Standard_DS2_v2" in out
    assert "Expected time: about 45 minutes; expected cost: at most about $0.23." in out
    assert "refusing to create billable resources" in out and "Nothing was created." in out


def test_the_live_plan_lists_what_each_scenario_creates_and_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", "live"], env=LIVE_ENV) == 1
    out = capsys.readouterr().out
    [dup] = [line for line in out.splitlines() if line.strip().startswith("duplicate-delivery")]
    assert "(version 1)" in dup and "1 deployment(s) x 1 instance" in dup
    [guard] = [line for line in out.splitlines() if line.strip().startswith("guardrails")]
    assert "no endpoint, no deployment" in guard and "<= $0.00" in guard
    assert "Expected time: about 417 minutes; expected cost: at most about $2.92." in out


def test_an_instance_type_without_a_known_price_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**LIVE_ENV, "ACCEPTANCE_INSTANCE_TYPE": "Standard_NC6s_v3"}
    assert main(["--target", "live", "--only", "canary"], env=env) == 1
    out = capsys.readouterr().out
    assert "no price known for Standard_NC6s_v3; set ACCEPTANCE_PRICE_PER_HOUR" in out
    assert "expected cost: unknown" in out
    env["ACCEPTANCE_PRICE_PER_HOUR"] = "3.06"
    assert main(["--target", "live", "--only", "canary"], env=env) == 1
    assert "expected cost: at most about $3.57." in capsys.readouterr().out


PRODUCTION_ENV = {
    "ACCEPTANCE_REGISTRY": "reg-promo",
    "ACCEPTANCE_PROD_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000002",
    "ACCEPTANCE_PROD_RESOURCE_GROUP": "rg-prod",
    "ACCEPTANCE_PROD_WORKSPACE": "mlw-prod",
    "ACCEPTANCE_PROD_APP_URL": "https://func-prod.azurewebsites.net",
    "ACCEPTANCE_PROD_FUNCTION_KEY": "not-a-real-key",
}


def test_the_promotion_scenario_is_priced_only_with_a_production_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", "live", "--only", "promotion"], env=LIVE_ENV) == 1
    out = capsys.readouterr().out
    assert "promotion" in out and "skipped" in out and "ACCEPTANCE_PROD_" in out
    assert "Expected time: about 10 minutes; expected cost: at most about $0.00." in out

    assert main(["--target", "live", "--only", "promotion"], env={**LIVE_ENV, **PRODUCTION_ENV}) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.strip().startswith("promotion")]
    assert "2 deployment(s)" in line and "production" in line and "registry version" in line
    assert "Expected time: about 60 minutes; expected cost: at most about $0.33." in out


def test_a_production_side_needs_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    partial = {key: value for key, value in PRODUCTION_ENV.items() if key != "ACCEPTANCE_PROD_APP_URL"}
    assert main(["--target", "live"], env={**LIVE_ENV, **partial}) == 2
    assert "ACCEPTANCE_PROD_APP_URL" in capsys.readouterr().err
