"""``make bench ARGS=--scale`` against the dev kit, in miniature: one rollout of each kind on a small fleet, the app in
its Functions host processes, time-lapsed. No rollout may end sooner than its floor: Azure ML's operation times run
on the emulated clock, so a figure below 1x the floor means the run did not emulate the Azure it claims to."""

from __future__ import annotations

import pytest

from bench import scale
from devkit.stack import DevStack

pytestmark = pytest.mark.integration


def test_no_rollout_of_a_lapsed_run_ends_before_its_floor(stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "WORKSPACES", 2)
    monkeypatch.setattr(scale, "ENDPOINTS_PER_WORKSPACE", 2)
    targets = scale.fleet(stack, lambda _line: None)
    assert {t.kind for t in targets[:3]} == set(scale.KINDS)  # one of each kind in the burst
    figures = scale.run(stack, targets, 3, 1, 80.0, lambda _line: None)
    assert len(figures.rollouts) == 3
    for rollout in figures.rollouts:
        assert rollout.seconds is not None, f"{rollout.deployment} did not end"
        assert rollout.final in ("Live", "Dark")
        assert rollout.seconds >= rollout.floor_s, (rollout.kind, rollout.seconds, rollout.floor_s)
