"""pytest fixtures for the offline dev kit: ``dev_stack`` (session), ``stack`` and ``ml_client`` (per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devkit.stack import CONFLICTING_ENV, RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack

if TYPE_CHECKING:
    from azure.ai.ml import MLClient


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs real Azure SDKs against the devkit's local stand-ins (DevStack)"
    )


@pytest.fixture(scope="session")
def dev_stack() -> Iterator[DevStack]:
    """One DevStack for the whole session. Fails (never skips) if any part, Azurite included, can't start."""
    with DevStack(operation_duration_s=0.3) as stack:
        yield stack


@pytest.fixture
def stack(dev_stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> DevStack:
    """The session stack with fresh state, and its app settings applied to ``os.environ`` for this test."""
    dev_stack.reset()
    for key in CONFLICTING_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in dev_stack.env.items():
        monkeypatch.setenv(key, value)
    return dev_stack


@pytest.fixture
def ml_client(stack: DevStack) -> MLClient:
    """A real ``MLClient(DefaultAzureCredential(), ...)`` for the emulated workspace."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)
