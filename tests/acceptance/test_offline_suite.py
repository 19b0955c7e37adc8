"""``make acceptance``: every scenario passes offline, each result is one line, and nothing is left behind."""

from __future__ import annotations

import functools
import os
import signal
import time

import pytest

import acceptance.offline
from acceptance.__main__ import main
from acceptance.offline import OfflineTarget
from acceptance.scenarios import SCENARIOS
from acceptance.suite import run_scenario, run_suite, sigterm_as_interrupt
from devkit.stack import DevStack

pytestmark = pytest.mark.integration


@pytest.mark.xdist_group("real-time")  # a long real-time run: not beside another one
def test_make_acceptance_runs_every_scenario_offline_and_passes(
    capsys: pytest.CaptureFixture[str], stack: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``make acceptance`` starts a stack of its own; here it runs on the session's, as every other test does.
    monkeypatch.setattr(acceptance.offline, "OfflineTarget", functools.partial(OfflineTarget, stack=stack))
    code = main([])
    out = capsys.readouterr().out
    outcomes = ("PASS", "FAIL", "ERROR", "XFAIL", "XPASS")
    lines = {line.split()[1]: line for line in out.splitlines() if line.split()[:1] and line.split()[0] in outcomes}
    assert code == 0, out
    assert sorted(lines) == sorted(s.name for s in SCENARIOS), out
    # A scenario waiting for a fix must fail (XFAIL); every other one must pass.
    expected = {s.name: "XFAIL" if s.xfail else "PASS" for s in SCENARIOS}
    assert {name: line.split()[0] for name, line in lines.items()} == expected, out
    assert all(line.split()[2].endswith("s") for line in lines.values()), out
    assert "cleanup: removed every endpoint and model version this run created" in out
    passing = sum(1 for s in SCENARIOS if not s.xfail)
    assert f"{passing}/{len(SCENARIOS)} passed" in out


class _InterruptedTarget(OfflineTarget):
    """Sends itself SIGTERM at the reconciler's ``after``-th tick: an operator stopping a run mid-rollout."""

    def __init__(self, stack: DevStack, after: int) -> None:
        super().__init__(stack=stack)
        self.after = after
        self.ticks = 0

    def pass_time(self) -> None:
        self.ticks += 1
        if self.ticks == self.after:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises KeyboardInterrupt here
        super().pass_time()


def test_sigterm_mid_rollout_stops_the_run_and_removes_everything(stack: DevStack) -> None:
    lines: list[str] = []
    with _InterruptedTarget(stack, after=2) as target, sigterm_as_interrupt():
        report = run_suite(target, SCENARIOS, run_id="t0term", out=lines.append)
        snapshot = stack.aml.snapshot()
    assert report.interrupted and report.exit_code == 130
    assert len(report.results) < len(SCENARIOS), "the run went on after the signal"
    assert any(line.startswith("interrupted") for line in lines), lines
    assert snapshot["endpoints"] == {}, "an endpoint created before the signal was left behind"
    assert snapshot["models"] == [], "a model version registered before the signal was left behind"


def test_keep_leaves_everything_and_prints_the_commands_to_delete_it(offline: OfflineTarget) -> None:
    [blue_green] = [s for s in SCENARIOS if s.name == "blue-green"]
    lines: list[str] = []
    report = run_suite(offline, [blue_green], run_id="t0keep", keep=True, out=lines.append)
    assert report.exit_code == 0
    # scenario by scenario: which one starts, then how it ended
    assert lines[0] == f"[1/1] blue-green: {blue_green.summary} ..."
    assert lines[1].startswith("PASS  blue-green")
    assert "acc-t0keep-bg" in offline.stack.aml.snapshot()["endpoints"]
    assert any("az ml online-endpoint delete -n acc-t0keep-bg" in line for line in lines), lines


def test_a_scenario_fails_when_the_app_does_not_deploy(stack: DevStack) -> None:
    [blue_green] = [s for s in SCENARIOS if s.name == "blue-green"]
    with OfflineTarget(stack=stack, DEPLOY_MODE="plan") as target:
        result = run_scenario(target, blue_green, "t0plan")
        target.cleanup()
    assert result.outcome == "FAIL"
    assert "'planned'" in result.detail and "'live'" in result.detail  # the state seen, and the one expected


def test_a_broken_model_fails_its_deployment_offline_as_it_would_live(offline: OfflineTarget) -> None:
    [failed] = [s for s in SCENARIOS if s.name == "failed-deployment"]
    result = run_scenario(offline, failed, "t0fail")
    assert result.outcome == "PASS", result.detail
    rows = {r["version"]: r for r in offline.rollouts("acc-t0fail-failed")}
    assert rows["2"]["state"] == "failed" and "Failed" in rows["2"]["reason"]
    assert rows["1"]["state"] == "live"
