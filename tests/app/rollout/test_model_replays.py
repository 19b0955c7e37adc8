"""Counterexamples the model-based test printed once, replayed rule by rule on every run: each was a check of the
model asking too much, corrected, and must stay a run that holds (the rules as hypothesis printed them; ``Draw n``
values in the order the rules drew them)."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from tests.app.rollout.model.machine import RolloutMachine

pytestmark = pytest.mark.fast


class Drawn:
    """What a rule's ``data.draw`` returns, scripted: the values hypothesis printed, in order."""

    def __init__(self, *values: Any) -> None:
        self.values = deque(values)

    def draw(self, strategy: Any, label: Any = None) -> Any:
        return self.values.popleft()


CREDIT_BG: dict[str, Any] = {"foreign": False, "model": "credit", "quiet": False, "shape": {}, "smoke": False}

REPLAYS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # An expired rollout's deployment (given traffic by hand) deleted by cleanup is garbage, as a rejected one's is.
    "expired-is-garbage": [
        ("register", {**CREDIT_BG, "shape": {"traffic": "20", "approval": "required"}}),
        ("follow_up", {}),
        ("follow_up", {}),
        ("hand_traffic", {"data": Drawn(["credit-v1"]), "split": (100,)}),
        ("nobody_decides", {}),
        ("register", {**CREDIT_BG, "shape": {"traffic": "20"}}),
        ("follow_up", {}),
        ("follow_up", {}),
        ("register", CREDIT_BG),
        ("follow_up", {}),
        ("follow_up", {}),
    ],
    # A rollout awaiting approval that someone gave traffic by hand, kept (scaled) by another rollout's canary, and
    # then expired, ended serving what it was given: no write of its own sent it traffic.
    "expired-serving-what-it-was-given": [
        ("register", {**CREDIT_BG, "shape": {"traffic_steps": "10,50,100", "bake": "10m", "approval": "required"}}),
        ("follow_up", {}),
        ("kill_switch", {"mode": "apply"}),
        ("fault", {"data": Drawn("create_endpoint", 400), "kind": "arm"}),
        ("tick", {"rounds": 1, "seconds": 300}),
        ("hand_traffic", {"data": Drawn(["credit-v1"]), "split": (100,)}),
        ("follow_up", {}),
        ("follow_up", {}),
        ("register", {**CREDIT_BG, "shape": {"traffic": "20"}}),
        ("follow_up", {}),
        ("nobody_decides", {}),
    ],
    # A canary in progress brought back to its planned 20% after a hand-made 30% is no downgrade of it.
    "canary-back-to-its-share": [
        ("tick", {"rounds": 1, "seconds": 30}),
        ("fault", {"data": Drawn("create_deployment", 403), "kind": "arm"}),
        ("register", {**CREDIT_BG, "quiet": True}),
        ("register", CREDIT_BG),
        *[("follow_up", {})] * 4,
        ("kill_switch", {"mode": "hold"}),
        ("hand_traffic", {"data": Drawn(["credit-v2"]), "split": (100,)}),
        ("kill_switch", {"mode": "apply"}),
        ("register", {**CREDIT_BG, "shape": {"traffic": "20"}}),
        ("operator", {"action": "promote", "data": Drawn(("credit", "credit-v2"))}),
        ("fault", {"data": Drawn("observe", 403), "kind": "arm"}),
        ("fault", {"data": Drawn(), "kind": "stall"}),
        ("tick", {"rounds": 3, "seconds": 300}),
        ("hand_traffic", {"data": Drawn(["credit-v2", "credit-v3"]), "split": (70, 30)}),
        ("tick", {"rounds": 1, "seconds": 30}),
        ("hand_traffic", {"data": Drawn(["credit-v2", "credit-v3"]), "split": (70, 30)}),
        ("fault", {"data": Drawn("observe", 400), "kind": "arm"}),
        ("follow_up", {}),
        ("register", CREDIT_BG),
        ("tick", {"rounds": 2, "seconds": 30}),
    ],
}


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_a_counterexample_once_printed_holds_now(name: str) -> None:
    machine = RolloutMachine()
    machine.configure(inconclusive="hold", approval=0)
    machine.holds()
    for rule, arguments in REPLAYS[name]:
        if rule == "follow_up" and machine.h.world.queue.next_due() is None:
            continue  # its precondition: as hypothesis would skip it
        getattr(machine, rule)(**arguments)
        machine.holds()
    machine.teardown()
