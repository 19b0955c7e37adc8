"""The rollout engine explored as a state machine (``model/machine.py``): operator actions, faults and timers in any
order keep traffic safe. ``make test-fast`` runs 200 examples of 30 steps, the full run 1,000, ``make soak`` 100,000
and prints what they explored (docs/development.md)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.app.rollout.model.machine import RolloutMachine
from tests.app.rollout.model.stats import EXPLORED

pytestmark = pytest.mark.fast

#: Examples per profile: the fast layer's, the full run's, and the soak's (``make soak``).
EXAMPLES = {"fast": 200, "full": 1_000, "soak": 100_000}
STEPS = 30


def profile(config: pytest.Config) -> str:
    """``make soak`` names its profile; ``make test-fast`` selects the fast marker; anything else is the full run."""
    named = os.environ.get("ROLLOUT_MODEL_PROFILE", "")
    if named:
        return named
    return "fast" if "fast" in str(config.getoption("markexpr") or "") else "full"


@pytest.mark.timeout(3600)  # the full run's 1,000 examples take minutes on a busy machine; make soak sets none
def test_operator_actions_faults_and_timers_in_any_order_keep_traffic_safe(request: pytest.FixtureRequest) -> None:
    chosen = profile(request.config)
    run_state_machine_as_test(
        RolloutMachine,
        settings=settings(
            max_examples=EXAMPLES[chosen],
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            # The fast and full runs test the same examples every time, so a red CI is about the change, never a draw;
            # make soak explores new ones on each run.
            derandomize=chosen != "soak",
            database=None,
        ),
    )
    print(f"\nrollout model, profile {chosen}:\n{EXPLORED.report()}")
