"""Worlds the engine tests start from: a live endpoint, a canary baking at a step, an operator's hand."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app.api.controls import operator_action
from tests.fakes import FakeWorld

CREDIT = {"deploy": "true", "endpoint": "credit"}
SAMPLE = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}})
STEPS = {"traffic_steps": "10,50,100", "bake": "10m", "smoke_request": SAMPLE}
BAKE = dt.timedelta(minutes=10)
#: Gates that judge on what the fakes serve at once: no metric lag, one extension.
GATES: dict[str, Any] = {"gate_metric_lag": dt.timedelta(0), "gate_min_requests": 100, "gate_max_extensions": 1}


def live_v1(**settings: Any) -> FakeWorld:
    """``credit`` v1 live alone on the endpoint ``credit``."""
    world = FakeWorld(**{**GATES, **settings})
    world.register("credit", 1, CREDIT)
    world.settle()
    return world


def bake_started(world: FakeWorld, deployment: str, *, step: int | None = None) -> None:
    """Tick until ``deployment``'s rollout bakes (at ``step``, 0-based, when given)."""
    for _ in range(30):
        rollout = world.rollout(deployment)
        if rollout.progress.bake_started_at is not None and step in (None, rollout.progress.step):
            return
        world.tick()
        world.clock.advance(60)
        world.wait_for_aml()
        if step is not None and rollout.progress.bake_started_at is not None:
            world.clock.now = max(world.clock(), rollout.progress.bake_started_at + BAKE)
    raise AssertionError(f"{deployment} never baked at step {step}: {world.rollout(deployment)}")


def canary_baking(tags: dict[str, str] | None = None, **settings: Any) -> FakeWorld:
    """v1 live; v2 (``STEPS`` unless ``tags``) at its first step, its bake under way."""
    world = live_v1(**settings)
    world.register("credit", 2, {**CREDIT, **(tags if tags is not None else STEPS)})
    bake_started(world, "credit-v2")
    return world


def act(world: FakeWorld, deployment: str, action: str, reason: str = "") -> tuple[int, Any]:
    """An operator's ``POST /api/rollouts/credit/{deployment}/{action}``: (status, JSON body)."""
    body = json.dumps({"reason": reason}).encode() if reason else b""
    status, text = operator_action("credit", deployment, action, body, {}, world.deps)
    return status, json.loads(text)


def ticks(world: FakeWorld, count: int, every_s: float = 60.0) -> None:
    """The timer fires ``count`` times, ``every_s`` apart; a rollout backing off is waited for."""
    for _ in range(count):
        world.tick()
        world.clock.advance(every_s)
        waiting = [r.next_attempt_at for r in world.rollouts() if r.next_attempt_at]
        if waiting:
            world.clock.now = max(world.clock(), min(waiting))
        world.wait_for_aml()


def splits(world: FakeWorld) -> list[dict[str, int]]:
    """Every live split written to the endpoint (by the app or by hand), in order."""
    return [{k: v for k, v in live.items() if v} for _, name, live, _ in world.aml.traffic_log if name == "credit"]
