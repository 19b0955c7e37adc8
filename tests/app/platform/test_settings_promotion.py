"""Settings of promotion and approval: registries, sources, the target workspace, the approval timeout."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from app.platform.workspace import WorkspaceRef
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE, WORKSPACE_ID

pytestmark = pytest.mark.fast

STAGING_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-staging")


def test_promotion_and_approval_are_off_by_default() -> None:
    settings = settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID})

    assert settings.promote_to_registry == "" and not settings.promote_all
    assert not settings.promotes_from(WorkspaceRef.from_arm_id(STAGING_ID))
    assert not settings.reads_registry("reg-prod")
    assert not settings.require_approval
    assert settings.approval_timeout == dt.timedelta(days=7)


def test_sources_and_registries_are_parsed_case_insensitively() -> None:
    settings = settings_from_env(
        {
            "AML_ALLOWED_WORKSPACES": WORKSPACE_ID,
            "PROMOTION_SOURCES": f" {STAGING_ID.upper()} ",
            "PROMOTION_REGISTRIES": "Reg-Prod, reg_2",
            "PROMOTE_TO_REGISTRY": "reg-next",
            "PROMOTE_ALL": "true",
            "REQUIRE_APPROVAL": "true",
            "APPROVAL_TIMEOUT": "2h",
        }
    )

    assert settings.promotes_from(WorkspaceRef.from_arm_id(STAGING_ID))
    assert not settings.promotes_from(WORKSPACE)
    assert settings.reads_registry("REG-PROD") and settings.reads_registry("reg_2")
    assert settings.promote_to_registry == "reg-next" and settings.promote_all
    assert settings.require_approval and settings.approval_timeout == dt.timedelta(hours=2)


def test_the_promotion_workspace_defaults_to_the_only_allowed_one() -> None:
    settings = settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "PROMOTION_REGISTRIES": "reg-prod"})

    assert settings.promotion_workspace == WORKSPACE.key


def test_several_allowed_workspaces_need_a_promotion_workspace() -> None:
    both = f"{WORKSPACE_ID},{OTHER_WORKSPACE_ID}"
    with pytest.raises(SettingsError) as caught:
        settings_from_env({"AML_ALLOWED_WORKSPACES": both, "PROMOTION_REGISTRIES": "reg-prod"})
    assert "PROMOTION_WORKSPACE" in str(caught.value)

    chosen = settings_from_env(
        {"AML_ALLOWED_WORKSPACES": both, "PROMOTION_REGISTRIES": "reg-prod", "PROMOTION_WORKSPACE": OTHER_WORKSPACE_ID}
    )
    assert chosen.promotion_workspace == WorkspaceRef.from_arm_id(OTHER_WORKSPACE_ID).key


def test_a_promotion_workspace_must_be_an_allowed_one() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "PROMOTION_WORKSPACE": OTHER_WORKSPACE_ID})
    assert "PROMOTION_WORKSPACE" in str(caught.value)


def test_bad_values_are_reported_together_naming_each_variable() -> None:
    env = {
        "AML_ALLOWED_WORKSPACES": WORKSPACE_ID,
        "PROMOTE_TO_REGISTRY": "r",
        "PROMOTION_REGISTRIES": "good-one,no spaces allowed",
        "PROMOTION_SOURCES": "not-a-workspace",
        "PROMOTE_ALL": "sometimes",
        "REQUIRE_APPROVAL": "maybe",
        "APPROVAL_TIMEOUT": "0s",
    }
    with pytest.raises(SettingsError) as caught:
        settings_from_env(env)
    for name in env.keys() - {"AML_ALLOWED_WORKSPACES"}:
        assert name in str(caught.value), name


@pytest.mark.parametrize("timeout", ["30s", "2161h"])
def test_the_approval_timeout_is_bounded(timeout: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "APPROVAL_TIMEOUT": timeout})
    assert "APPROVAL_TIMEOUT" in str(caught.value)


def test_sources_without_registries_fail_closed_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        settings = settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "PROMOTION_SOURCES": STAGING_ID})

    assert not settings.reads_registry("anything")
    assert "PROMOTION_REGISTRIES" in caplog.text
