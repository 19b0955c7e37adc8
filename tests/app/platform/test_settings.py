"""Settings: defaults, parsing, and every problem reported together, naming its variable."""

from __future__ import annotations

import logging

import pytest

from app.platform.errors import RetryableError, SettingsError
from app.platform.settings_reader import settings_from_env
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE, WORKSPACE_ID

pytestmark = pytest.mark.fast


def test_defaults_are_safe() -> None:
    settings = settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID})
    assert settings.deploy_mode == "plan"
    assert not settings.applies_changes
    assert settings.default_instance_type == "Standard_DS3_v2"
    assert (settings.max_instance_count, settings.keep_deployments, settings.rollout_timeout_minutes) == (3, 2, 60)
    assert settings.rollout_table == "rollouts"
    assert settings.drift_threshold == 0.5
    assert settings.retrain_cooldown_minutes == 360


def test_allowlist_is_case_insensitive_and_comma_separated() -> None:
    settings = settings_from_env({"AML_ALLOWED_WORKSPACES": f" {WORKSPACE_ID.upper()} , {OTHER_WORKSPACE_ID}"})
    assert settings.allows(WORKSPACE)
    assert len(settings.allowed_workspaces) == 2


def test_empty_allowlist_fails_closed_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        settings = settings_from_env({})
    assert not settings.allows(WORKSPACE)
    assert any(r.levelno == logging.ERROR and "AML_ALLOWED_WORKSPACES" in r.getMessage() for r in caplog.records)


def test_all_problems_are_reported_together() -> None:
    env = {
        "AML_ALLOWED_WORKSPACES": "not-a-workspace",
        "DEPLOY_MODE": "yolo",
        "MAX_INSTANCE_COUNT": "many",
        "KEEP_DEPLOYMENTS": "0",
        "KEEP_FAILED_DEPLOYMENTS": "maybe",
        "DRIFT_THRESHOLD": "2",
        "NOTIFY_WEBHOOK_URL": "ftp://secret-token@example",
        "ROLLOUT_TABLE": "bad-name",
        "RETRAIN_PIPELINE_COMPONENT": "justaname",
    }
    with pytest.raises(SettingsError) as caught:
        settings_from_env(env)
    message = str(caught.value)
    for name in env:
        assert name in message, name
    assert "secret-token" not in message  # a URL may carry a secret; never echo it
    assert isinstance(caught.value, RetryableError)


def test_secrets_are_not_in_repr() -> None:
    settings = settings_from_env(
        {
            "AML_ALLOWED_WORKSPACES": WORKSPACE_ID,
            "NOTIFY_TOPIC_KEY": "k3y",
            "NOTIFY_WEBHOOK_URL": "https://h/s3cret",
            "AzureWebJobsStorage": "AccountKey=c0nn",
        }
    )
    text = repr(settings)
    assert "k3y" not in text and "s3cret" not in text and "c0nn" not in text


def test_typed_values_are_parsed() -> None:
    settings = settings_from_env(
        {
            "AML_ALLOWED_WORKSPACES": WORKSPACE_ID,
            "DEPLOY_MODE": "APPLY",
            "DEPLOY_STAGE": "Prod",
            "ALLOWED_INSTANCE_TYPES": "Standard_DS3_v2, Standard_F4s_v2",
            "MAX_INSTANCE_COUNT": "5",
            "KEEP_FAILED_DEPLOYMENTS": "true",
            "DRIFT_THRESHOLD": "0.3",
            "RETRAIN_PIPELINE_COMPONENT": "retrain@latest",
        }
    )
    assert settings.applies_changes
    assert settings.deploy_stage == "prod"
    assert settings.allowed_instance_types == frozenset({"standard_ds3_v2", "standard_f4s_v2"})
    assert settings.max_instance_count == 5
    assert settings.keep_failed_deployments is True
    assert settings.drift_threshold == 0.3
    assert settings.retrain_pipeline_component == "retrain@latest"


def test_the_status_host_is_the_platforms_website_hostname() -> None:
    assert settings_from_env({}).status_host == ""
    settings = settings_from_env({"WEBSITE_HOSTNAME": " fn-aml.azurewebsites.net "})
    assert settings.status_host == "fn-aml.azurewebsites.net"


def test_a_plain_http_webhook_is_refused_outside_the_dev_kit() -> None:
    env = {"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "NOTIFY_WEBHOOK_URL": "http://hooks.example/T0/s3cret"}
    with pytest.raises(SettingsError) as caught:
        settings_from_env(env)
    assert "NOTIFY_WEBHOOK_URL" in str(caught.value) and "https://" in str(caught.value)  # the setting, the fix
    assert "ALLOW_HTTP_WEBHOOK" in str(caught.value) and "s3cret" not in str(caught.value)
    assert settings_from_env({**env, "NOTIFY_WEBHOOK_URL": "https://hooks.example/T0/s3cret"}).notify_webhook_url
    devkit = settings_from_env({**env, "ALLOW_HTTP_WEBHOOK": "true"})
    assert devkit.notify_webhook_url == "http://hooks.example/T0/s3cret"


def test_adopt_endpoints_takes_names_or_a_star_and_names_a_bad_one() -> None:
    base = {"AML_ALLOWED_WORKSPACES": WORKSPACE_ID}
    assert settings_from_env(base).adopt_endpoints == frozenset()
    assert settings_from_env({**base, "ADOPT_ENDPOINTS": " Credit, fraud "}).adopt_endpoints == {"credit", "fraud"}
    assert settings_from_env({**base, "ADOPT_ENDPOINTS": "*"}).adopt_endpoints == {"*"}
    with pytest.raises(SettingsError, match="ADOPT_ENDPOINTS: 'credit_risk' is not an online endpoint name"):
        settings_from_env({**base, "ADOPT_ENDPOINTS": "credit_risk"})
