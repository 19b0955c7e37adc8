"""The reconciler's heartbeat: one ``reconcile:`` line per tick, which the 'reconciler not running' alert counts."""

from __future__ import annotations

import logging

import pytest

from devkit.harness import OfflineApp


def test_every_tick_logs_one_reconcile_line_even_with_nothing_in_flight(
    app: OfflineApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.rollout.run.reconcile")
    for _ in range(3):
        app.tick()
    lines = [r.getMessage() for r in caplog.records if r.name == "app.rollout.run.reconcile"]
    # infra/app/alerts.bicep's heartbeat query matches exactly this prefix.
    assert lines == ["reconcile: 0 endpoint(s), nothing to do"] * 3
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "app.rollout.run.reconcile")
