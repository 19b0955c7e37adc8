"""The offline scoring load is heavy enough that a healthy canary is not rolled back by chance.

A minute's P99 over few requests is close to that minute's slowest request: at 600 requests a minute, the 10%
step of ``canary-with-gates`` saw about 60 a minute, and a model exactly as fast as the stable one failed the
1.5x latency ratio in about 1.6% of its 2-minute windows (CI run of 2026-11-26). This test draws the gate's
inputs as the emulator makes them, many times, and requires the false rollbacks to be (practically) none.
"""

from __future__ import annotations

import math
import random

import pytest

from acceptance.offline import LOAD_RPM
from acceptance.target import Target
from app.platform.durations import parse_duration
from app.rollout.decide.gate import GatePolicy
from devkit.aml_emulator.health import Health, lognormal_ms

pytestmark = pytest.mark.fast

TRIALS = 50_000
FIRST_STEP_PERCENT = 10  # the progressive scenarios' traffic_steps start at 10%


def _minute_p99(rng: random.Random, health: Health, requests: int) -> float:
    """The emulator's nearest-rank P99 of ``requests`` latencies: the k-th smallest of ``requests`` uniform
    draws is Beta(k, n + 1 - k), mapped through the same lognormal the emulator samples latencies from."""
    k = max(1, math.ceil(0.99 * requests))
    return lognormal_ms(health, rng.betavariate(k, requests + 1 - k))


def test_a_healthy_first_step_fails_the_latency_ratio_less_than_once_in_ten_thousand() -> None:
    policy, health, rng = GatePolicy(), Health(), random.Random(20261126)
    new_per_minute = LOAD_RPM * FIRST_STEP_PERCENT // 100
    stable_per_minute = LOAD_RPM - new_per_minute
    # The whole minutes the gate may judge: the bake less the metric lag, less the partial first minute.
    bake_s = parse_duration(Target.bake).total_seconds()
    minutes = int(bake_s - policy.metric_lag.total_seconds()) // 60 - 1
    assert minutes >= 1
    assert new_per_minute * minutes >= policy.min_requests, "the first step would never be judged"

    false_rollbacks = 0
    for _ in range(TRIALS):
        new = sum(_minute_p99(rng, health, new_per_minute) for _ in range(minutes)) / minutes
        stable = sum(_minute_p99(rng, health, stable_per_minute) for _ in range(minutes)) / minutes
        false_rollbacks += new > policy.max_latency_ratio * stable
    assert false_rollbacks / TRIALS < 1e-4, (
        f"{false_rollbacks} of {TRIALS} healthy first steps ({new_per_minute} requests a minute for {minutes} "
        f"minutes) failed the {policy.max_latency_ratio}x P99 ratio: raise LOAD_RPM"
    )
