"""Helpers for the dev kit's own tests: a raw ARM session and the management-plane SDK client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from devkit.stack import SUBSCRIPTION_ID, DevStack

if TYPE_CHECKING:
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient


def pytest_configure(config: pytest.Config) -> None:
    # tests/conftest.py normally loads the plugin; this keeps `pytest tests/devkit` self-sufficient.
    if not config.pluginmanager.has_plugin("devkit.pytest_plugin"):
        config.pluginmanager.import_plugin("devkit.pytest_plugin")


@pytest.fixture
def mgmt_client(stack: DevStack) -> MachineLearningServicesMgmtClient:
    """The management-plane SDK the app uses for writes, pointed at the emulator, with no client retries."""
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    return MachineLearningServicesMgmtClient(
        DefaultAzureCredential(), SUBSCRIPTION_ID, base_url=stack.aml.url, retry_total=0
    )
