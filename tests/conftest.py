"""Shared pytest configuration: the dev kit's fixtures and paths to event fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["devkit.pytest_plugin"]

EVENTS = Path(__file__).parent / "events"


@pytest.fixture
def events_dir() -> Path:
    return EVENTS
