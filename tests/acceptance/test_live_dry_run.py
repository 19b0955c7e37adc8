"""``make acceptance-live``, dry-run: the live target's code path, unchanged, against the dev kit.

The Live target gets ACCEPTANCE_* settings pointing at the emulated workspace and at ``HostedApp`` (the unchanged
app behind the Functions host's HTTP routes, fed by an Event Grid forwarder and a timer). It registers models
through azure-ai-ml, waits for Event Grid's delivery, follows ``GET /api/rollouts`` and reads ARM, exactly as live.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acceptance.__main__ import main
from acceptance.dryrun import APP_LOCK, EMULATED_S_PER_TICK, LOAD_RPS, HostedApp
from acceptance.scenarios import SCENARIOS
from devkit import runner
from devkit.harness import app_environment
from devkit.promotion import (
    PRODUCTION_RESOURCE_GROUP,
    PRODUCTION_SETTINGS,
    PRODUCTION_SUBSCRIPTION,
    PRODUCTION_WORKSPACE,
    REGISTRY,
    STAGING_SETTINGS,
    set_up,
)
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack

# Runs in real time with a timeout of its own: on one pytest-xdist worker with the other long real-time tests.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("real-time")]

FUNCTION_KEY = "dry-run-function-key"
EVENTGRID_KEY = "dry-run-eventgrid-key"


@pytest.fixture
def hosted(stack: DevStack) -> Iterator[HostedApp]:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    # Time lapse for the bakes: 30 s of emulated time at each 0.3 s timer tick; the suite's own scoring load
    # (ACCEPTANCE_LOAD_RPS below) then puts a few dozen requests into each bake, so the gate asks for fewer, and
    # the shipped models answer with a narrow latency tail (dryrun.STEADY_LATENCY) so that so few do not mislead it.
    # The app is a promotion's staging app too: a production workspace and a registry stand beside it.
    set_up(stack)
    with app_environment(stack, GATE_METRIC_LAG="0s", GATE_MIN_REQUESTS="2", **STAGING_SETTINGS):
        ml = MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)
        with HostedApp(
            stack, ml, function_key=FUNCTION_KEY, eventgrid_key=EVENTGRID_KEY, emulated_s_per_tick=EMULATED_S_PER_TICK
        ) as app:
            yield app


@pytest.fixture
def production(stack: DevStack, hosted: HostedApp) -> Iterator[HostedApp]:
    """The production app beside it: the same code with production's settings, fed the staging app's promotions."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    promotion = set_up(stack)
    ml = MLClient(DefaultAzureCredential(), PRODUCTION_SUBSCRIPTION, PRODUCTION_RESOURCE_GROUP, PRODUCTION_WORKSPACE)
    settings = {**PRODUCTION_SETTINGS, "GATE_METRIC_LAG": "0s", "GATE_MIN_REQUESTS": "2", "REQUIRE_APPROVAL": "true"}
    with HostedApp(
        stack, ml, function_key=FUNCTION_KEY, eventgrid_key=EVENTGRID_KEY, settings=settings, events=promotion.forward
    ) as app:
        yield app


def _production_env(app: HostedApp) -> dict[str, str]:
    return {
        "ACCEPTANCE_REGISTRY": REGISTRY,
        "ACCEPTANCE_PROD_SUBSCRIPTION_ID": PRODUCTION_SUBSCRIPTION,
        "ACCEPTANCE_PROD_RESOURCE_GROUP": PRODUCTION_RESOURCE_GROUP,
        "ACCEPTANCE_PROD_WORKSPACE": PRODUCTION_WORKSPACE,
        "ACCEPTANCE_PROD_APP_URL": app.url,
        "ACCEPTANCE_PROD_FUNCTION_KEY": FUNCTION_KEY,
    }


def _live_env(app: HostedApp, **extra: str) -> dict[str, str]:
    return {
        "ACCEPTANCE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
        "ACCEPTANCE_RESOURCE_GROUP": RESOURCE_GROUP,
        "ACCEPTANCE_WORKSPACE": WORKSPACE_NAME,
        "ACCEPTANCE_APP_URL": app.url,
        "ACCEPTANCE_FUNCTION_KEY": FUNCTION_KEY,
        "ACCEPTANCE_EVENTGRID_KEY": EVENTGRID_KEY,
        # The emulator stores model paths and uploads nothing: the one live step a dry run can't exercise.
        "ACCEPTANCE_MODEL_URI": "azureml://datastores/workspaceblobstore/paths/acceptance-models",
        "ACCEPTANCE_POLL_SECONDS": "0.1",
        "ACCEPTANCE_TIMEOUT_MINUTES": "1",
        "ACCEPTANCE_LOAD_RPS": f"{LOAD_RPS:g}",
        **extra,
    }


def test_the_live_target_passes_every_scenario_through_the_app_s_http_surface(
    hosted: HostedApp, production: HostedApp, stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--target", "live", "--yes"], env=_live_env(hosted, **_production_env(production)))
    out = capsys.readouterr().out
    assert code == 0, out
    # Live, a scenario that scripts Azure's faults is skipped before it creates anything; one waiting for a fix fails.
    expected = {s.name: "SKIP" if s.scripts_faults else "XFAIL" if s.xfail else "PASS" for s in SCENARIOS}
    seen = {line.split()[1]: line.split()[0] for line in out.splitlines() if line.split()[:1] and line.split()[0] in
            ("PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "XPASS")}  # fmt: skip
    assert seen == expected, out
    assert f"{list(expected.values()).count('PASS')}/{len(SCENARIOS)} passed" in out
    assert "Expected time: about" in out and "expected cost: at most about $" in out
    assert not hosted.errors, hosted.errors
    assert not production.errors, production.errors
    # The promotion reached production through its Event Grid webhook, from the staging app's topic.
    assert [d.event_type for d in production.deliveries] == ["AmlEvents.Model.Promoted"]
    # Events reached the app through the Event Grid webhook only: one per registration, plus the re-deliveries.
    registered = [d for d in hosted.deliveries if d.event_type.endswith("ModelRegistered")]
    assert len(registered) >= 10
    assert stack.aml.snapshot()["endpoints"] == {}
    assert stack.aml.snapshot()["models"] == []
    # The progressive scenarios were judged on the suite's own scoring requests (the dry run has no synthetic
    # load), and the operator's rollback went through the control route with the function key.
    with APP_LOCK:  # the production app, hosted beside it, applies its own settings while it runs
        code, body = runner.get_status({})
    rows = {r["deployment"]: r for r in body["rollouts"]}
    [gated] = [r for name, r in rows.items() if "-gates-" in name and r["version"] == "2"]
    assert gated["state"] == "live" and gated["progress"]["gate"]["evidence"]["requests"]["new"] >= 2, gated
    [slow] = [r for name, r in rows.items() if "-rb-" in name and r["version"] == "2"]
    evidence = slow["progress"]["gate"]["evidence"]
    assert slow["state"] == "rolled_back" and evidence["latencyRatio"] > evidence["thresholds"]["maxLatencyRatio"], slow
    [steered] = [r for name, r in rows.items() if "-rb-" in name and r["version"] == "3"]
    assert [(h["action"], h["caller"]) for h in steered["progress"]["history"]] == [("rollback", "function key")]


def test_without_the_event_grid_key_the_duplicate_scenario_is_skipped_and_says_why(
    hosted: HostedApp, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _live_env(hosted, ACCEPTANCE_EVENTGRID_KEY="")
    code = main(["--target", "live", "--yes", "--only", "duplicate-delivery,guardrails"], env=env)
    out = capsys.readouterr().out
    assert code == 0, out
    [skipped] = [line for line in out.splitlines() if line.startswith("SKIP")]
    assert "duplicate-delivery" in skipped and "ACCEPTANCE_EVENTGRID_KEY" in skipped
    assert any(line.startswith("PASS  guardrails") for line in out.splitlines()), out


def test_a_wrong_function_key_is_a_clear_error_before_anything_is_created(
    hosted: HostedApp, stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--target", "live", "--yes"], env=_live_env(hosted, ACCEPTANCE_FUNCTION_KEY="wrong"))
    err = capsys.readouterr().err
    assert code == 2
    assert "refused ACCEPTANCE_FUNCTION_KEY (401)" in err
    assert stack.aml.snapshot()["models"] == []


def test_an_app_with_a_deploy_stage_is_served_with_acceptance_stage(
    hosted: HostedApp, stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with app_environment(stack, DEPLOY_STAGE="prod"):
        code = main(
            ["--target", "live", "--yes", "--only", "out-of-order"], env=_live_env(hosted, ACCEPTANCE_STAGE="prod")
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  out-of-order" in out
