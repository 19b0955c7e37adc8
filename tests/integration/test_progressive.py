"""Progressive delivery end to end: smoke test, steps and bakes, metric gates, rollback, operator controls.

The real SDKs against the emulator; the emulator's clock is frozen and shared with the app, so a 10-minute bake
takes no wall time, and synthetic load makes the metrics the gate reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.harness import OfflineApp, app_environment, model_registered
from devkit.stack import DevStack
from tests.conftest import Telemetry

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}
SAMPLE = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}})
STEPS = {"traffic_steps": "10,50,100", "bake": "10m", "smoke_request": SAMPLE}
BAKE_S = 600
GATE_SETTINGS = {"GATE_METRIC_LAG": "0s", "GATE_MIN_REQUESTS": "100", "GATE_MAX_EXTENSIONS": "1"}
FINAL = ("live", "canary", "dark", "failed", "rolled_back", "aborted", "superseded", "rejected")


@pytest.fixture
def app(stack: DevStack) -> Iterator[OfflineApp]:
    with app_environment(stack, **GATE_SETTINGS):
        yield OfflineApp(stack)


def _live_v1(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags=CREDIT)
    app.deliver(model_registered("credit", 1))
    app.run_until_settled()
    assert app.traffic("credit") == {"credit-v1": 100}


def _register_v2(app: OfflineApp, **tags: str) -> None:
    app.stack.aml.seed_model("credit", 2, tags={**CREDIT, **STEPS, **tags})
    [delivery] = app.deliver(model_registered("credit", 2))
    assert delivery.acknowledged, delivery.attempts


def _drive(app: OfflineApp, *, max_ticks: int = 20, on_bake: Any = None) -> tuple[dict[str, Any], int]:
    """Tick; whenever a bake has started, let emulated time run past it. Returns the final rollout and the bakes."""
    bakes = 0
    for _ in range(max_ticks):
        app.tick()
        rollout = app.rollout("credit-v2")
        if rollout["state"] in FINAL:
            return rollout, bakes
        if rollout["state"] == "baking" and rollout["progress"]["bakeStartedAt"] and not rollout["progress"]["paused"]:
            if on_bake is not None:
                on_bake(bakes)
            app.advance(BAKE_S + 61)
            bakes += 1
    raise AssertionError(f"rollout not finished after {max_ticks} ticks: {app.rollout('credit-v2')}")


def test_a_good_canary_is_promoted_through_every_step_on_evidence(app: OfflineApp, telemetry: Telemetry) -> None:
    passed = (("endpoint", "credit"), ("gate", "metrics"), ("outcome", "passed"))
    before = telemetry.points("rollouts.gate_evaluations").get(passed)
    _live_v1(app)
    with app.emulated_time():
        app.stack.aml.start_load("credit", rpm=1200, seed=1)
        _register_v2(app)
        rollout, bakes = _drive(app)
    assert rollout["state"] == "live", rollout
    assert bakes == 3  # the final step bakes too
    assert app.traffic("credit") == {"credit-v2": 100}
    steps = [a for a in rollout["actions"] if a.startswith("PUT endpoint credit traffic")]
    assert [s.split(" (")[0] for s in steps] == [
        "PUT endpoint credit traffic credit-v1=90%, credit-v2=10%",
        "PUT endpoint credit traffic credit-v1=50%, credit-v2=50%",
        "PUT endpoint credit traffic credit-v2=100%",
    ]
    smoke = rollout["progress"]["smoke"]
    assert smoke["passed"] and smoke["status"] == 200 and smoke["sample"] == "tag smoke_request"
    gate = rollout["progress"]["gate"]
    assert gate["outcome"] == "pass" and gate["evidence"]["requests"]["new"] >= 100
    types = app.published_types()
    assert types.count("AmlEvents.Rollout.StepPromoted") == 2
    assert types[-1] == "AmlEvents.Rollout.Live"
    assert "AmlEvents.Rollout.SmokeTestPassed" in types and "AmlEvents.Rollout.Baking" in types
    promoted = [e for e in app.published() if e["type"] == "AmlEvents.Rollout.StepPromoted"]
    assert promoted[0]["data"]["facts"]["gate"]["evidence"]["newDeployment"] == "credit-v2"
    # Each bake's verdict is counted for the operator's dashboards (the gate-evaluations metric).
    counted = telemetry.points("rollouts.gate_evaluations")[passed].value
    assert counted == (before.value if before else 0) + 3


@pytest.mark.parametrize(
    ("health", "measure", "threshold"),
    [
        ({"error_rate": 20}, "errorSharePct", "maxErrorRatePct"),
        ({"p50_ms": 300, "p99_ms": 900}, "latencyRatio", "maxLatencyRatio"),
    ],
    ids=["5xx-via-424", "latency"],
)
def test_a_bad_canary_is_rolled_back_within_one_bake_with_traffic_exactly_as_before(
    app: OfflineApp, health: dict[str, Any], measure: str, threshold: str
) -> None:
    _live_v1(app)
    with app.emulated_time():
        app.stack.aml.start_load("credit", rpm=1200, seed=2)
        _register_v2(app)

        def breach(bakes: int) -> None:
            if bakes == 0:  # after the smoke test passed and the first step is live
                app.stack.aml.set_health("credit", "credit-v2", **health)

        rollout, bakes = _drive(app, on_bake=breach)
        for _ in range(3):  # cleanup, in the same (emulated) time as the leases
            app.tick()
    assert rollout["state"] == "rolled_back", rollout
    assert bakes == 1
    assert app.traffic("credit") == {"credit-v1": 100}
    gate = rollout["progress"]["gate"]
    # The verdict's evidence: the breached measure is above its threshold.
    evidence = gate["evidence"]
    assert gate["outcome"] == "fail" and evidence[measure] > evidence["thresholds"][threshold], gate
    rolled = [e for e in app.published() if e["type"] == "AmlEvents.Rollout.RolledBack"]
    assert rolled and rolled[0]["data"]["facts"]["gate"]["outcome"] == "fail"
    # Removed by cleanup (KEEP_FAILED_DEPLOYMENTS=false), and not retried automatically.
    assert "credit-v2" not in app.stack.aml.snapshot()["endpoints"]["credit"]["deployments"]
    assert app.rollout("credit-v2")["state"] == "rolled_back"


def test_a_failing_smoke_test_fails_the_rollout_and_no_live_traffic_ever_reaches_it(app: OfflineApp) -> None:
    _live_v1(app)
    _register_v2(app, **{"emulator.smoke": "fail"})
    rollout, _ = _drive(app)
    assert rollout["state"] == "failed", rollout
    smoke = rollout["progress"]["smoke"]
    assert smoke["passed"] is False and smoke["status"] == 424
    assert rollout["logs"], "container logs are attached"
    assert not [a for a in rollout["actions"] if "traffic" in a and "credit-v2=" in a]
    assert app.traffic("credit") == {"credit-v1": 100}
    answered = {s.deployment for s in app.stack.aml.samples("credit") if not s.synthetic}
    assert answered == {"credit-v2"}  # the one smoke request, by header; never a routed one
    assert "AmlEvents.Rollout.SmokeTestFailed" in app.published_types()


def test_low_traffic_extends_the_bake_then_holds_and_says_so(app: OfflineApp) -> None:
    _live_v1(app)
    with app.emulated_time():
        app.stack.aml.start_load("credit", rpm=20, seed=3)  # 2 a minute on the 10% step: too few
        _register_v2(app)
        for _ in range(8):
            app.tick()
            rollout = app.rollout("credit-v2")
            if rollout["state"] == "baking" and rollout["progress"]["bakeStartedAt"]:
                app.advance(BAKE_S + 61)
            if "AmlEvents.Rollout.GateInconclusive" in app.published_types():  # held
                break
    assert rollout["state"] == "baking" and rollout["progress"]["extensions"] == 1, rollout
    assert "GATE_INCONCLUSIVE=hold" in rollout["reason"]
    assert rollout["progress"]["gate"]["outcome"] == "inconclusive"
    assert app.published_types().count("AmlEvents.Rollout.GateInconclusive") == 1
    assert app.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}


def test_operator_actions_pause_resume_promote_and_refuse_what_does_not_apply(app: OfflineApp) -> None:
    _live_v1(app)
    assert app.control("credit-v9", "promote")[0] == 404
    assert app.control("credit-v1", "pause")[0] == 409  # live: nothing to pause
    assert app.control("credit-v1", "launch")[0] == 400
    with app.emulated_time():
        app.stack.aml.start_load("credit", rpm=1200, seed=4)
        _register_v2(app)
        for _ in range(4):
            app.tick()
            if app.rollout("credit-v2")["progress"]["bakeStartedAt"]:
                break
        code, body = app.control("credit-v2", "pause", reason="investigating")
        assert code == 202 and body["rollout"]["progress"]["paused"], body
        assert app.control("credit-v2", "pause")[1]["effect"] == "none"  # idempotent
        app.advance(3 * BAKE_S)
        app.tick()
        paused = app.rollout("credit-v2")
        assert paused["state"] == "baking" and paused["progress"]["gate"] is None  # no bake advances while paused
        assert app.control("credit-v2", "resume")[0] == 202
        code, body = app.control("credit-v2", "promote", reason="looks good")
        assert code == 202, body
        app.run_until_settled()
        for _ in range(3):
            if app.rollout("credit-v2")["state"] == "live":
                break
            app.tick()
        rollout = app.rollout("credit-v2")
        assert rollout["state"] == "live", rollout
        assert app.traffic("credit") == {"credit-v2": 100}
        history = rollout["progress"]["history"]
        assert [h["action"] for h in history] == ["pause", "pause", "resume", "promote"]
        assert history[0]["reason"] == "investigating" and history[0]["caller"] == "function key"
        assert app.control("credit-v2", "promote")[1]["effect"] == "none"
        assert app.control("credit-v2", "retry")[0] == 409
        # Rollback after it ended live: the replaced deployment still exists, so traffic goes back to it.
        code, body = app.control("credit-v2", "rollback", reason="customer complaints")
        assert code == 202, body
        app.tick()
        assert app.rollout("credit-v2")["state"] == "rolled_back"
        assert app.traffic("credit") == {"credit-v1": 100}
        assert app.control("credit-v2", "rollback")[1]["effect"] == "none"
    types = app.published_types()
    assert {"AmlEvents.Rollout.Paused", "AmlEvents.Rollout.Resumed", "AmlEvents.Rollout.OperatorAction"} <= set(types)


def test_abort_stops_where_it_is_and_retry_starts_again(app: OfflineApp) -> None:
    _live_v1(app)
    with app.emulated_time():
        app.stack.aml.start_load("credit", rpm=1200, seed=5)
        _register_v2(app)
        for _ in range(4):
            app.tick()
            if app.rollout("credit-v2")["state"] == "baking":
                break
        code, body = app.control("credit-v2", "abort", reason="stop")
        assert code == 202 and body["rollout"]["state"] == "aborted", body
        writes = len([r for r in app.stack.aml.requests() if r.is_write])
        app.advance(2 * BAKE_S)
        app.tick()
        assert len([r for r in app.stack.aml.requests() if r.is_write]) == writes  # no further writes
        assert app.traffic("credit") == {"credit-v1": 90, "credit-v2": 10}  # as it was
        assert app.control("credit-v2", "pause")[0] == 409
        assert app.control("credit-v2", "retry")[0] == 202
        assert app.rollout("credit-v2")["state"] in ("pending", "deploying", "baking")


def test_the_kill_switch_records_and_reads_but_writes_nothing_then_resumes(stack: DevStack) -> None:
    with app_environment(stack, **GATE_SETTINGS):
        app = OfflineApp(stack)
        _live_v1(app)
    with app_environment(stack, **GATE_SETTINGS, DEPLOY_MODE="hold"):
        writes = len([r for r in stack.aml.requests() if r.is_write])
        _register_v2(app, traffic_steps="", bake="0s")
        for _ in range(3):
            app.tick()
        assert len([r for r in stack.aml.requests() if r.is_write]) == writes
        held = app.rollout("credit-v2")
        assert held["state"] == "pending" and "DEPLOY_MODE=hold" in held["reason"], held
    with app_environment(stack, **GATE_SETTINGS):
        app.run_until_settled()
        assert app.rollout("credit-v2")["state"] == "live"
        assert app.traffic("credit") == {"credit-v2": 100}
