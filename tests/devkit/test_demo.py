"""``make demo``: its scenes as a user reads them, its options, --keep with a replay attached, and Ctrl-C."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from devkit import demo
from devkit.azurite import ACCOUNT_KEY
from devkit.stack import DevStack

ROOT = Path(__file__).parents[2]


class RecordingStack(DevStack):
    """The demo's own DevStack, remembering its settings and processes so a test can check they were stopped."""

    started: ClassVar[list[RecordingStack]] = []

    def start(self) -> RecordingStack:
        super().start()
        self.seen_env = dict(self.env)
        self.seen_ports = [urlsplit(self.aml.url).port, urlsplit(self.sink.endpoint).port]
        self.seen_azurite_pid = self.azurite._process.pid  # type: ignore[union-attr]
        RecordingStack.started.append(self)
        return self


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[RecordingStack]:
    RecordingStack.started = []
    monkeypatch.setattr(demo, "DevStack", RecordingStack)
    return RecordingStack.started


def _listening(port: int | None) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return port is not None and probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0)
        with open(f"/proc/{pid}/stat") as proc:
            return proc.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _assert_stopped(stack: RecordingStack) -> None:
    assert not _alive(stack.seen_azurite_pid), "Azurite outlived the demo"
    assert not any(_listening(port) for port in stack.seen_ports), "an emulator still listens"


def _assert_environ_restored(stack: RecordingStack, before: dict[str, str]) -> None:
    # (importing azure.ai.ml sets AZUREML_CURRENT_CLOUD itself; only what the demo applied must be undone)
    for name in [*stack.seen_env, *demo.APP_SETTINGS]:
        assert os.environ.get(name) == before.get(name), name


def _secrets(stack: RecordingStack) -> list[str]:
    return [stack.seen_env["IDENTITY_HEADER"], stack.seen_env["NOTIFY_TOPIC_KEY"], ACCOUNT_KEY]


def test_help_exits_0_and_lists_every_scene_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for scene in demo.SCENES:
        assert re.search(rf"^  {scene.__name__} +\S", out, re.MULTILINE), scene.__name__
    for option in ("--only SCENE", "--verbose", "--keep"):
        assert option in out


def test_only_adds_what_a_scene_needs_and_keeps_the_demo_order() -> None:
    assert [s.__name__ for s in demo.chosen(["status", "retry_failed_rollout"])] == [
        "failed_deployment",
        "retry_failed_rollout",
        "status",
    ]
    assert demo.chosen(None) == demo.SCENES


def test_an_unknown_scene_is_refused_with_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--only", "rolback"])
    assert exit_.value.code == 2
    assert "invalid choice: 'rolback'" in capsys.readouterr().err


def test_masked_hides_secrets_and_connection_string_keys_but_keeps_where_they_point() -> None:
    assert demo.masked("NOTIFY_TOPIC_KEY", "s3cret") == "***"
    assert demo.masked("IDENTITY_HEADER", "abc") == "***"
    assert demo.masked("DEPLOY_MODE", "apply") == "apply"
    connection = f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={ACCOUNT_KEY};TableEndpoint=http://h:1/dev;"
    shown = demo.masked("AzureWebJobsStorage", connection)
    assert ACCOUNT_KEY not in shown
    assert "AccountKey=***" in shown and "TableEndpoint=http://h:1/dev" in shown
    assert "sig=abc" not in demo.masked("X", "BlobEndpoint=https://a;SharedAccessSignature=sv=1&sig=abc")


@pytest.mark.integration
@pytest.mark.xdist_group("real-time")  # long: on one pytest-xdist worker with the other long real-time tests
def test_the_whole_demo_shows_failure_recovery_plan_mode_and_progressive_delivery(
    recording: list[RecordingStack], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # the terminal's width, as the status table reads it
    environ_before = dict(os.environ)

    assert demo.main(["--verbose"]) == 0

    out = capsys.readouterr().out
    [stack] = recording
    # the settings it runs with, secrets masked
    assert re.search(r"^  DEPLOY_MODE +apply$", out, re.MULTILINE)
    assert re.search(r"^  NOTIFY_TOPIC_KEY +\*\*\*$", out, re.MULTILINE)
    assert "AccountKey=***" in out
    assert not [secret for secret in _secrets(stack) if secret in out]
    # Azure's times beside the compressed ones
    assert "once a minute" in out and "up to about 15" in out and "takes 0.3 s" in out
    # the failed deployment: the reconciler finds it, the container logs are shown from the ledger row
    failed = out[out.index("churn v1's deployment fails") : out.index("The operator retries churn v1")]
    assert "churn/churn-v1: failed - deployment churn-v1 ended Failed" in failed
    assert re.search(r"^ +\| ModuleNotFoundError: No module named 'sklearn'$", failed, re.MULTILINE)
    assert "published AmlEvents.Rollout.Failed" in failed
    # the recovery: the documented retry brings it live
    retry = out[out.index("The operator retries churn v1") : out.index("DEPLOY_MODE=plan (the azd default)")]
    assert "aml-rollouts retry churn churn-v1" in retry and "POST /api/rollouts/churn/churn-v1/retry" in retry
    assert "POST retry -> 202: restart" in retry  # the operator API restarted it from its plan
    assert "churn/churn-v1: live - serving 100% of traffic" in retry
    assert "endpoint churn traffic: churn-v1=100%" in retry
    # plan mode: what would be deployed, nothing written
    plan = out[out.index("DEPLOY_MODE=plan (the azd default)") : out.index("[plan_mode:")]
    assert "planned: DEPLOY_MODE=plan: would deploy 1 x Standard_DS3_v2 to pricing/pricing-v1" in plan
    assert "ARM writes in plan mode: 0 " in plan and "endpoint pricing exists: False" in plan
    assert "[plan_mode: 1 ARM reads, 0 ARM writes]" in out
    # progressive delivery, time compressed and saying so: a good canary promoted 10 -> 50 -> 100 on evidence ...
    assert "Emulated time: the emulator's clock is frozen" in out and "no bake takes wall\ntime here" in out
    good = out[out.index("loans v2 with traffic_steps=10,50,100") : out.index("[canary_promoted:")]
    shares = re.findall(r"^ +endpoint loans traffic: (.+)$", good, re.MULTILINE)
    assert shares == [
        "loans-v1=100%",
        "loans-v1=90%, loans-v2=10%",
        "loans-v1=50%, loans-v2=50%",
        "loans-v2=100%",
        "loans-v2=100%",
    ]
    assert "published AmlEvents.Rollout.SmokeTestPassed" in good
    assert len(re.findall(r"^ +gate pass: within thresholds", good, re.MULTILINE)) == 3
    evidence = re.findall(r"requests loans-v2 (\d+), loans-v1 (\d+)$", good, re.MULTILINE)
    assert len(evidence) == 2 and all(int(new) >= 100 for new, _ in evidence), evidence  # GATE_MIN_REQUESTS
    assert re.search(r"5xx share 0\.00% \(max 1%\); P99 loans-v2 [\d.]+ ms vs loans-v1 [\d.]+ ms = [\d.]+x", good)
    assert re.search(r"window \d\d:\d\d-\d\d:\d\d emulated, complete minutes until \d\d:\d\d", good)
    assert "loans/loans-v2: live - serving 100% of traffic; final bake passed" in good
    # ... and a bad one rolled back automatically on its 5xx share and P99, traffic exactly as before
    bad = out[out.index("claims v2, same tags") : out.index("[canary_rolled_back:")]
    assert bad.index("endpoint claims traffic: claims-v1=90%, claims-v2=10%") < bad.index("gate fail:")
    breach = re.search(r"5xx share ([\d.]+)% \(max 1%\); P99 claims-v2 ([\d.]+) ms vs claims-v1 ([\d.]+) ms", bad)
    assert breach and float(breach[1]) > 1 and float(breach[2]) > 1.5 * float(breach[3]), bad
    assert "published AmlEvents.Rollout.RolledBack" in bad
    assert "traffic after the automatic rollback: claims-v1=100%, exactly as before the canary" in bad
    assert "StepPromoted" not in bad
    assert re.search(r"^claims +claims-v2 +claims:2 +rolled_back +0% +rolled back: gate fail", out, re.MULTILINE)
    # promotion: proven in staging, shared into the registry with its evidence, rolled out by production's own app
    promoted = out[out.index("== Promotion: ranking proven in staging") : out.index("[promotion:")]
    assert "ranking/ranking-v2: live - serving 100% of traffic; final bake passed" in promoted
    assert "published AmlEvents.Model.Promoted: ranking:2" in promoted
    assert re.search(r"^ +promotion\.gate\.gate2 = pass; ", promoted, re.MULTILINE)
    assert "promotion.rollout = ranking/ranking-v2" in promoted
    production = promoted[promoted.index("event  Promoted") :]
    assert "of azureml://registries/reg-promo/models/ranking/versions/2: deploying" in production
    assert "baking step 1/1 at 100% for 1800 s" in production  # production's own BAKE_DEFAULT, not staging's tag
    assert "production ranking traffic: {'ranking-v2': 100}" in production
    assert re.search(r"^ +source workspace /subscriptions/.+/workspaces/mlw-devkit$", production, re.MULTILINE)
    # ... after production's operator approved it (REQUIRE_APPROVAL), and v3 rejected there, its deployment deleted
    approved = production[: production.index("POST approve -> 202")]
    assert (
        "ranking/ranking-v2: awaiting_approval" in approved
        and "published AmlEvents.Rollout.AwaitingApproval" in approved
    )
    rejected = production[production.index("Promotion, again: ranking v3") :]
    assert "POST reject -> 202" in rejected and "published AmlEvents.Rollout.Rejected" in rejected
    assert "production ranking-v3: rejected, its deployment deleted by cleanup; traffic {'ranking-v2': 100}" in rejected
    # --verbose: each scene's ARM requests, paths shortened
    assert re.search(r"^ +PUT +201  \{workspace\}/onlineEndpoints/churn/deployments/churn-v1$", out, re.MULTILINE)
    assert re.search(r"^ +POST +200  \{workspace\}/onlineEndpoints/churn/deployments/churn-v1/getLogs$", out, re.M)
    # the ledger at the end holds both new rollouts
    assert re.search(r"^churn +churn-v1 +churn:1 +live +100%", out, re.MULTILINE)
    assert re.search(r"^pricing +pricing-v1 +pricing:1 +planned +0%", out, re.MULTILINE)
    # the status table: the state beside the traffic it has now, reasons whole, lines within the terminal's width
    table = out[out.index("== GET /api/rollouts") : out.index("[status:")].splitlines()[1:]
    assert table and all(len(line) <= 100 for line in table)
    assert re.search(r"^loans +loans-v1 +loans:1 +live +0% +ended live at 100%; now 0%: loans-v2 100%", out, re.M)
    # each gate verdict is printed once, with its evidence; the other lines point at it
    assert len(re.findall(r"gate fail: server-error share", bad)) == 1
    assert "rolled back: gate fail (evidence below)" in bad
    assert out.rstrip().endswith("Stopped everything the demo started.")
    _assert_stopped(stack)
    _assert_environ_restored(stack, environ_before)


@pytest.mark.integration
def test_ctrl_c_mid_scene_prints_one_line_and_stops_everything(
    recording: list[RecordingStack], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ_before = dict(os.environ)

    def interrupted(past_due: bool = False) -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread, here in the reconciler's first tick

    monkeypatch.setattr(demo.runner, "tick", interrupted)

    assert demo.main(["--only", "failed_deployment"]) == 130

    out, err = capsys.readouterr()
    assert "event  ModelRegistered       models/churn:1" in out  # the scene had started
    assert out.rstrip().splitlines()[-1] == "Interrupted (Ctrl-C): stopped everything the demo started."
    assert "Traceback" not in out + err
    _assert_stopped(recording[0])
    _assert_environ_restored(recording[0], environ_before)


@pytest.mark.integration
def test_keep_serves_the_app_as_make_up_does_and_a_replay_from_another_process_attaches_to_it(
    recording: list[RecordingStack],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    user_environ = dict(os.environ)  # what a second terminal would have: none of the demo's settings
    monkeypatch.setenv("AML_ROLLOUTS_DEVKIT", str(tmp_path / "up.json"))
    printed: list[str] = []
    seen: dict[str, Any] = {}
    # The host's timer moves the rollout: the row says live first, its notification is published a moment later.
    awaited = ("credit-risk/credit-risk-v2-v1: live", "published AmlEvents.Rollout.Live: Rollout of credit_risk.v2:1")
    deadline = time.monotonic() + 120

    def pause(seconds: float) -> None:
        printed.append(capsys.readouterr().out)
        text = "".join(printed)
        if "replay" not in seen:
            attach = Path(re.search(r"--attach (\S+) ", text).group(1))  # type: ignore[union-attr]
            seen["attach"], seen["mode"] = attach, stat.S_IMODE(attach.stat().st_mode)
            seen["url"] = re.search(r"^  URL +(\S+)", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
            seen["replay"] = subprocess.run(
                [sys.executable, "-m", "tools.replay", "--attach", str(attach), demo.REPLAY_EXAMPLE],
                cwd=ROOT,
                env=user_environ,
                capture_output=True,
                text=True,
                timeout=120,
            )
            return
        if all(line in text for line in awaited) or time.monotonic() > deadline:
            raise KeyboardInterrupt  # Ctrl-C once both are printed; at the deadline the asserts say what is missing
        time.sleep(0.2)  # the demo's pause between two looks at the rollouts, shortened

    monkeypatch.setattr(demo, "_pause", pause)

    assert demo.main(["--keep", "--only", "plan_mode"]) == 130

    out = "".join(printed) + capsys.readouterr().out
    [stack] = recording
    replay = seen["replay"]
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"attach: delivering to the app at {seen['url']}" in replay.stdout
    assert "model-registered-camel-0001-eg Microsoft.MachineLearningServices.ModelRegistered -> HTTP 202" in (
        replay.stdout
    )
    # the kept stack's URLs, and the host's timer carried the replayed rollout to live
    assert f"ARM (AML emulator)  {stack.seen_env['AZUREML_DEV_URL_MFE']}" in out
    assert f"Event Grid sink     {stack.seen_env['NOTIFY_TOPIC_ENDPOINT']}" in out
    assert "credit-risk/credit-risk-v2-v1: live - serving 100% of traffic" in out
    assert "published AmlEvents.Rollout.Live: Rollout of credit_risk.v2:1" in out
    assert not [secret for secret in _secrets(stack) if secret in out]
    assert seen["mode"] == 0o600
    assert not seen["attach"].exists(), "the attach file outlived the demo"
    assert out.rstrip().splitlines()[-1] == "Interrupted (Ctrl-C): stopped everything the demo started."
    _assert_stopped(stack)
