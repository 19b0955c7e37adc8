"""The offline app over the dev stack, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.harness import OfflineApp, app_environment
from devkit.stack import DevStack


@pytest.fixture
def app(stack: DevStack) -> Iterator[OfflineApp]:
    with app_environment(stack):
        yield OfflineApp(stack)
