"""Fixtures for the acceptance suite's tests: an offline target over the session's dev stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acceptance.offline import OfflineTarget
from devkit.stack import DevStack


@pytest.fixture
def offline(stack: DevStack) -> Iterator[OfflineTarget]:
    target = OfflineTarget(stack=stack)
    with target:
        yield target
