"""Many rollouts in one tick, end to end: the gates that fall due together in a region are read in one batch
(``metrics:getBatch``) and promote on that evidence; a lone gate keeps its per-endpoint reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from app.rollout.run.tick import FANNED_OUT
from devkit import runner
from devkit.harness import OfflineApp, app_environment, model_registered
from devkit.stack import WORKSPACE_ID, DevStack

pytestmark = pytest.mark.integration

STEPS = {"deploy": "true", "traffic_steps": "10,100", "bake": "5m"}
BAKE_S = 300
SETTINGS = {"GATE_METRIC_LAG": "0s", "GATE_MIN_REQUESTS": "50", "FOLLOWUP_DELAYS": "off"}


@pytest.fixture
def app(stack: DevStack) -> Iterator[OfflineApp]:
    with app_environment(stack, **SETTINGS):
        yield OfflineApp(stack)


@pytest.fixture
def queued(stack: DevStack) -> Iterator[OfflineApp]:
    """The app with its follow-ups on (each bake notes when its gate falls due); the test delivers them by hand."""
    with app_environment(stack, **{**SETTINGS, "FOLLOWUP_DELAYS": ""}):
        yield OfflineApp(stack)


def _canaries(app: OfflineApp, names: list[str]) -> None:
    """Each endpoint serves v1; v2 is registered as a 10% -> 100% canary and driven to its first bake."""
    aml = app.stack.aml
    for name in names:
        aml.seed_model(name, 1, tags={"deploy": "true", "endpoint": name})
        app.deliver(model_registered(name, 1))
    app.run_until_settled()
    for name in names:
        aml.start_load(name, rpm=1200, seed=len(name))
        aml.seed_model(name, 2, tags={**STEPS, "endpoint": name})
        app.deliver(model_registered(name, 2))
    for _ in range(10):
        app.tick()
        if all(app.rollout(f"{n}-v2")["progress"]["bakeStartedAt"] for n in names):
            return
    raise AssertionError([app.rollout(f"{n}-v2") for n in names])


def _bake_end(app: OfflineApp, name: str) -> dict[str, str]:
    """The follow-up the engine scheduled at the end of ``name``'s bake."""
    started = dt.datetime.fromisoformat(app.rollout(f"{name}-v2")["progress"]["bakeStartedAt"])
    ends = started + dt.timedelta(seconds=BAKE_S)
    return {"workspaceId": WORKSPACE_ID, "endpoint": name, "reason": f"bake end {ends.isoformat()}"}


def _one_batch_promotes(app: OfflineApp, names: list[str]) -> None:
    """The tick reads the gates left to it in one batch (two calls), and each canary is promoted on it."""
    app.tick()
    assert _metric_calls(app) == (2, 0)
    assert all(app.traffic(name) == {f"{name}-v2": 100} for name in names)


def _metric_calls(app: OfflineApp) -> tuple[int, int]:
    """(batch calls, per-endpoint metric reads through ARM) since the log was cleared."""
    batch = app.stack.aml.requests(path_contains="metrics:getBatch")
    single = app.stack.aml.requests(path_contains="/providers/Microsoft.Insights/metrics")
    return len(batch), len(single)


def test_gates_due_together_in_a_region_are_read_in_one_batch_and_promote(app: OfflineApp) -> None:
    names = ["fraud", "churn", "upsell"]
    with app.emulated_time():
        _canaries(app, names)
        app.advance(BAKE_S + 61)
        app.stack.aml.clear_requests()
        app.tick()
        assert _metric_calls(app) == (2, 0)  # RequestsPerMinute and P99, for the three endpoints at once
        for name in names:
            assert app.traffic(name) == {f"{name}-v2": 100}  # promoted on the batch's evidence
            gate = app.rollout(f"{name}-v2")["progress"]["gate"]
            assert gate["outcome"] == "pass" and gate["evidence"]["requests"]["new"] > 0, gate


def test_a_lone_gate_keeps_its_per_endpoint_reads(app: OfflineApp) -> None:
    with app.emulated_time():
        _canaries(app, ["fraud"])
        app.advance(BAKE_S + 61)
        app.stack.aml.clear_requests()
        app.tick()
        assert _metric_calls(app) == (0, 2)
        assert app.traffic("fraud") == {"fraud-v2": 100}


def test_a_bake_s_follow_up_leaves_the_gate_to_the_tick_s_batch_when_another_gate_falls_due_with_it(
    queued: OfflineApp,
) -> None:
    app, names = queued, ["fraud", "churn"]
    with app.emulated_time():
        _canaries(app, names)
        app.advance(BAKE_S + 61)
        app.stack.aml.clear_requests()
        for name in names:  # the follow-up each bake scheduled for its end, as the queue delivers it
            runner.follow_up(f"bake-{name}", json.dumps(_bake_end(app, name)), 1)
        assert _metric_calls(app) == (0, 0)  # left to the tick: nothing read alone
        _one_batch_promotes(app, names)


def test_a_late_follow_up_that_finds_a_bake_over_in_a_busy_region_leaves_the_gate_to_the_tick(
    queued: OfflineApp,
) -> None:
    app, names = queued, ["fraud", "churn"]
    with app.emulated_time():
        _canaries(app, names)
        app.advance(BAKE_S + 30)  # both bakes over half a minute ago
        app.stack.aml.clear_requests()
        # A traffic write's follow-up and a tick's hand-on, delivered late (a backlogged queue): the bakes are over.
        late = {"workspaceId": WORKSPACE_ID, "endpoint": "fraud", "reason": "traffic"}
        handed = {"workspaceId": WORKSPACE_ID, "endpoint": "churn", "reason": FANNED_OUT}
        runner.follow_up("late-fraud", json.dumps(late), 1)
        runner.follow_up("handed-churn", json.dumps(handed), 1)
        assert _metric_calls(app) == (0, 0)  # nothing read alone
        assert all(app.traffic(name) == {f"{name}-v1": 90, f"{name}-v2": 10} for name in names)  # not judged yet
        _one_batch_promotes(app, names)


def test_a_late_follow_up_reads_a_lone_gate_at_once(queued: OfflineApp) -> None:
    app = queued
    with app.emulated_time():
        _canaries(app, ["fraud"])
        app.advance(BAKE_S + 61)
        app.stack.aml.clear_requests()
        late = {"workspaceId": WORKSPACE_ID, "endpoint": "fraud", "reason": "traffic"}
        runner.follow_up("late-fraud", json.dumps(late), 1)
        assert _metric_calls(app) == (0, 2)  # alone in its region: nothing to batch with, judged now
        assert app.traffic("fraud") == {"fraud-v2": 100}


def test_a_bake_s_follow_up_reads_its_gate_at_once_when_no_other_gate_of_its_region_falls_due_with_it(
    queued: OfflineApp,
) -> None:
    app = queued
    with app.emulated_time():
        _canaries(app, ["fraud"])
        app.stack.aml.seed_model("churn", 1, tags={"deploy": "true", "endpoint": "churn"})
        app.deliver(model_registered("churn", 1))  # another endpoint of the region, active, with no bake
        app.advance(BAKE_S + 61)
        app.stack.aml.clear_requests()
        runner.follow_up("bake-fraud", json.dumps(_bake_end(app, "fraud")), 1)
        assert _metric_calls(app) == (0, 2)  # judged now, alone: no batch would have formed
        assert app.traffic("fraud") == {"fraud-v2": 100}
        assert app.rollout("churn-v1")["state"] != "live"  # still in progress: it was active all along
