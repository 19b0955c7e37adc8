"""aml-rollouts against the unchanged app's real routes, served by the dev kit's local host: list, get, status and
watch with their exit codes, and every operator action with its documented answer."""

from __future__ import annotations

import json
import time

import pytest

from aml_rollouts.errors import Exit
from devkit import runner
from devkit.harness import app_environment, model_registered
from devkit.host import LocalHost
from devkit.stack import DevStack
from tests.tools.conftest import env_for, run_cli

pytestmark = pytest.mark.integration

CREDIT = {"deploy": "true", "endpoint": "credit"}


def register(stack: DevStack, version: int, **tags: str) -> None:
    stack.aml.seed_model("credit", version, tags={**CREDIT, **tags})
    runner.deliver([model_registered("credit", version, {**CREDIT, **tags})])


def test_list_and_get_on_an_empty_ledger(host: LocalHost) -> None:
    env = env_for(host)
    listed = run_cli(["list"], env)
    assert (listed.code, listed.out.strip()) == (Exit.OK, "no rollouts yet")
    missing = run_cli(["get", "credit"], env)
    assert missing.code == Exit.NOT_FOUND and "aml-rollouts list" in missing.err
    assert run_cli(["list", "--state", "nonsense"], env).code == Exit.USAGE  # the app's 400 names the parameter


def test_a_wrong_key_is_exit_5_with_the_fix(host: LocalHost) -> None:
    ran = run_cli(["list"], env_for(host, AML_ROLLOUTS_KEY="not-the-key"))
    assert ran.code == Exit.AUTH and "AML_ROLLOUTS_KEY" in ran.err


def test_a_held_rollout_is_steered_by_every_action_with_its_documented_answer(host: LocalHost, stack: DevStack) -> None:
    env = env_for(host)
    with app_environment(stack, DEPLOY_MODE="hold"):
        register(stack, 7)
        deployment = "credit-v7"

        pending = run_cli(["status", "credit", "--no-wait"], env)
        assert pending.code == Exit.IN_PROGRESS and "credit/credit-v7 pending" in pending.out

        waited = run_cli(
            ["status", "credit", deployment, "--timeout", "1s", "--interval", "0.2"], env, sleep=time.sleep
        )
        assert waited.code == Exit.IN_PROGRESS and "still in progress after" in waited.out

        paused = run_cli(["pause", "credit", deployment, "--reason", "incident 42"], env)
        assert paused.code == Exit.OK and "effect pause" in paused.out
        again = run_cli(["pause", "credit", deployment, "-o", "json"], env)
        assert again.code == Exit.OK and json.loads(again.out)["effect"] == "none"  # idempotent
        shown = run_cli(["get", "credit", deployment, "-o", "json"], env)
        history = json.loads(shown.out)["rollout"]["progress"]["history"]
        assert [(h["action"], h["reason"], h["caller"], h["effect"]) for h in history] == [
            ("pause", "incident 42", "function key", "pause"),
            ("pause", "", "function key", "none"),  # every action is recorded, the idempotent one too
        ]
        assert run_cli(["resume", "credit", deployment], env).code == Exit.OK

        aborted = run_cli(["abort", "credit", deployment, "--reason", "stop here"], env)
        assert aborted.code == Exit.OK and "now aborted" in aborted.out
        assert run_cli(["status", "credit", deployment], env).code == Exit.ENDED_BADLY
        refused = run_cli(["pause", "credit", deployment], env)
        assert refused.code == Exit.CONFLICT and "(state aborted)" in refused.err
        assert run_cli(["promote", "credit", "credit-v9"], env).code == Exit.NOT_FOUND
        retried = run_cli(["retry", "credit", deployment, "--reason", "quota raised"], env)
        assert retried.code == Exit.OK and "now pending" in retried.out


def test_status_waits_for_live_and_a_rollback_of_a_canary_ends_it_with_exit_1(host: LocalHost, stack: DevStack) -> None:
    env = env_for(host)
    register(stack, 1)
    live = run_cli(["status", "credit", "--interval", "0.2", "--timeout", "60s"], env, sleep=time.sleep)
    assert live.code == Exit.OK and "credit/credit-v1 live" in live.out, live.out + live.err

    register(stack, 2, traffic="20")
    canary = run_cli(["status", "credit", "credit-v2", "--interval", "0.2", "--timeout", "60s", "-o", "json"], env,
                     sleep=time.sleep)  # fmt: skip
    body = json.loads(canary.out)
    assert canary.code == Exit.OK and (body["phase"], body["rollout"]["state"]) == ("serving", "canary")

    listed = run_cli(["list", "--endpoint", "credit"], env)
    rows = {line.split()[1]: line.split() for line in listed.out.splitlines()[1:]}
    assert list(rows) == ["credit-v2", "credit-v1"]  # newest first
    assert {"canary", "20%"} <= set(rows["credit-v2"]) and {"live", "80%"} <= set(rows["credit-v1"])

    rolled = run_cli(["rollback", "credit", "credit-v2", "--reason", "p99 doubled"], env)
    assert rolled.code == Exit.OK, rolled.err
    ended = run_cli(["status", "credit", "credit-v2", "--interval", "0.2", "--timeout", "60s"], env, sleep=time.sleep)
    assert ended.code == Exit.ENDED_BADLY and "rolled_back" in ended.out


def test_watch_prints_each_change_and_exits_when_the_rollout_ends(host: LocalHost, stack: DevStack) -> None:
    env = env_for(host)
    register(stack, 1)
    watched = run_cli(["watch", "credit", "-o", "json", "--interval", "0.2"], env, sleep=time.sleep)
    states = [json.loads(line)["rollout"]["state"] for line in watched.out.splitlines()]
    assert watched.code == Exit.OK and states[-1] == "live"
    assert len(states) == len({json.dumps(s) for s in watched.out.splitlines()})  # one line per change, no repeats

    live = run_cli(["watch", "credit", "credit-v1"], env, sleep=time.sleep, terminal=True)  # redrawn in place
    assert live.code == Exit.OK and "credit/credit-v1" in live.out and "ended" in live.out

    register(stack, 2, traffic="20")
    table = run_cli(["watch", "credit", "credit-v2", "--interval", "0.2"], env, sleep=time.sleep)
    assert table.code == Exit.OK
    last = table.out.rsplit("credit/credit-v2 updated", 1)[1]
    assert "canary" in last and "credit-v1 80%, credit-v2 20%" in last and "none: the rollout has ended" in last
