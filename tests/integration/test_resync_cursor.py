"""The resync reaches every model over runs when a workspace has more than RESYNC_MAX_MODELS of them."""

from __future__ import annotations

import pytest

from devkit.harness import OfflineApp, app_environment
from devkit.stack import DevStack

pytestmark = pytest.mark.integration


def test_models_past_the_bound_are_reached_by_the_next_runs(stack: DevStack) -> None:
    for index in range(5):
        stack.aml.seed_model(f"m{index}", 1, tags={"deploy": "true", "endpoint": f"ep-m{index}"})
    with app_environment(stack, RESYNC_MAX_MODELS="2"):
        app = OfflineApp(stack)
        recorded = []
        for _ in range(3):  # ceil(5 models / 2 a run)
            app.resync()
            recorded.append(sorted(r["model"] for r in app.rollouts()))
    assert recorded == [["m0", "m1"], ["m0", "m1", "m2", "m3"], ["m0", "m1", "m2", "m3", "m4"]]


def test_a_throttled_read_ends_the_run_and_the_next_one_starts_again_at_that_model(stack: DevStack) -> None:
    for index in range(4):
        stack.aml.seed_model(f"m{index}", 1, tags={"deploy": "true", "endpoint": f"ep-m{index}"})
    with app_environment(stack, RESYNC_MAX_MODELS="2"):
        app = OfflineApp(stack)
        # m1's version read answers 503 to the client's first try and both of its retries.
        stack.aml.fail_requests(503, methods=["GET"], path_pattern="/models/m1/versions", count=3)
        app.resync()
        first = sorted(r["model"] for r in app.rollouts())
        app.resync()
        second = sorted(r["model"] for r in app.rollouts())
    assert first == ["m0"]
    assert second == ["m0", "m1", "m2"]
