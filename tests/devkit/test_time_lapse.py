"""A time-lapsed emulated clock that other processes follow, and endpoints seeded as they would be in a busy
workspace: what ``make bench ARGS=--scale`` runs on."""

from __future__ import annotations

import pytest

from devkit.aml_emulator import traffic
from devkit.aml_emulator.state import ArmError
from devkit.aml_emulator.traffic import EmulatedClock, follow_reading
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession


class FakeWall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_running_clock_at_a_rate_moves_that_many_seconds_per_wall_second(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = FakeWall(1_000.0)
    monkeypatch.setattr(traffic.time, "time", wall)
    clock = EmulatedClock()
    clock.set(5_000.0, frozen=False, rate=20)
    wall.now += 3
    assert clock.now() == pytest.approx(5_060.0)
    clock.advance(40)
    assert clock.now() == pytest.approx(5_100.0)
    reading = clock.reading()
    wall.now += 1
    assert follow_reading(reading) == pytest.approx(clock.now()) == pytest.approx(5_120.0)
    clock.set(frozen=True)
    frozen = clock.reading()
    wall.now += 100
    assert follow_reading(frozen) == clock.now() == pytest.approx(5_120.0)
    with pytest.raises(ValueError, match="rate=0"):  # names the value refused
        clock.set(rate=0)


def test_the_clock_control_route_sets_and_reports_the_rate(stack: DevStack) -> None:
    import requests

    assert stack.ca is not None
    answer = requests.put(
        f"{stack.aml.url}/_emulator/clock", json={"rate": 30, "frozen": False}, verify=str(stack.ca.ca_path), timeout=5
    ).json()
    assert answer["rate"] == 30 and answer["frozen"] is False
    assert follow_reading(answer) == pytest.approx(stack.aml.clock_now(), abs=1.0)


def test_a_seeded_endpoint_is_served_as_if_it_had_been_created(stack: DevStack, arm: ArmSession) -> None:
    deployment = {"properties": {"model": "azureml:m:1", "instanceType": "Standard_DS3_v2"}, "tags": {"v": "1"}}
    stack.aml.seed_endpoint("ep-seeded", {"blue": deployment}, {"blue": 100}, tags={"owner": "bench"})
    answer = arm.call("GET", "/onlineEndpoints/ep-seeded")
    assert answer.status_code == 200
    body = answer.json()
    assert body["properties"]["traffic"] == {"blue": 100}
    assert body["properties"]["provisioningState"] == "Succeeded" and body["tags"] == {"owner": "bench"}
    [listed] = arm.call("GET", "/onlineEndpoints/ep-seeded/deployments").json()["value"]
    assert listed["properties"]["provisioningState"] == "Succeeded" and listed["tags"] == {"v": "1"}
    # The region's name rule holds: another workspace of the region cannot take the name.
    other = stack.aml.add_workspace("mlw-other")
    with pytest.raises(ArmError) as taken:
        other.seed_endpoint("ep-seeded", {}, {})
    assert taken.value.status == 400 and other.endpoint_state("ep-seeded") is None
    with pytest.raises(ArmError) as refused:
        stack.aml.seed_endpoint("ep-bad", {}, {"ghost": 100})  # traffic to a deployment that does not exist
    assert refused.value.status == 400 and stack.aml.endpoint_state("ep-bad") is None
