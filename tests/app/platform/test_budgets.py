"""The call budgets: every Azure client's longest call fits the endpoint lease, and settings that don't are refused."""

from __future__ import annotations

import pytest

from app.platform import budgets
from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from tests.fakes import WORKSPACE_ID

pytestmark = pytest.mark.fast


def test_the_default_budgets_fit_the_default_lease_with_the_margin() -> None:
    arm = budgets.arm()
    assert arm.longest_seconds == 3 * (5 + 20) + 2 * 8  # 91 s: what docs/rollout.md and configuration.md say
    assert budgets.TABLES.longest_seconds == 53
    needed = budgets.TABLES.longest_seconds + arm.longest_seconds + budgets.LEASE_MARGIN_SECONDS
    assert needed < budgets.DEFAULT_LEASE_SECONDS
    assert budgets.budget_problems(budgets.DEFAULT_LEASE_SECONDS, budgets.DEFAULT_ARM_READ_TIMEOUT_SECONDS) == []


def test_azure_cores_defaults_would_not_fit_the_lease() -> None:
    # 10 retries, pauses up to 120 s, 300 s reads: why every client gets explicit caps.
    default = budgets.CallBudget("azure-core default", 10, 0.8, 120, 300, 300)
    assert default.longest_seconds > 20 * budgets.DEFAULT_LEASE_SECONDS


def test_settings_refuse_a_lease_shorter_than_the_longest_call() -> None:
    env = {"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "ENDPOINT_LEASE_SECONDS": "120", "ARM_READ_TIMEOUT_SECONDS": "60"}
    with pytest.raises(SettingsError) as raised:
        settings_from_env(env)
    message = str(raised.value)
    assert "ENDPOINT_LEASE_SECONDS=120" in message and "ARM_READ_TIMEOUT_SECONDS=60" in message
    settings = settings_from_env({**env, "ARM_READ_TIMEOUT_SECONDS": "2"})
    assert (settings.endpoint_lease_seconds, settings.arm_read_timeout_seconds) == (120, 2)


def test_the_webhook_sink_uses_the_webhook_budget() -> None:
    from app.azure.sinks import WebhookSink

    assert WebhookSink.retry_delays == budgets.WEBHOOK_RETRY_DELAYS
    assert budgets.WEBHOOK.attempts == len(budgets.WEBHOOK_RETRY_DELAYS) + 1
