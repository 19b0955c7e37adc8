"""The emulator's one clock: operations, fault windows and jobs run on it; waiting jumps it; stalls end early."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from devkit.stack import DevStack
from tests.conditions import wait_until
from tests.devkit.arm_session import ArmSession

pytestmark = pytest.mark.integration

ENDPOINT = {"location": "eastus", "properties": {"authMode": "Key"}}


def test_a_long_operation_costs_no_real_time_when_it_is_waited_for(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_operation_durations({"endpoint:create": 90})  # Azure's usual minute and a half
    assert arm.call("PUT", "/onlineEndpoints/ep-clock", ENDPOINT).status_code == 201
    before = stack.aml.clock_now()
    started = time.monotonic()
    stack.aml.wait_idle(timeout_s=120)

    assert time.monotonic() - started < 1.0
    assert stack.aml.clock_now() - before == pytest.approx(90, abs=1)
    assert arm.call("GET", "/onlineEndpoints/ep-clock").json()["properties"]["provisioningState"] == "Succeeded"


def test_waiting_longer_than_allowed_moves_nothing_and_names_what_still_runs(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_operation_durations({"endpoint:create": 90})
    assert arm.call("PUT", "/onlineEndpoints/ep-slow", ENDPOINT).status_code == 201
    before = stack.aml.clock_now()

    with pytest.raises(TimeoutError, match="operations still in progress"):
        stack.aml.wait_idle(timeout_s=30)
    assert stack.aml.clock_now() - before < 5  # only wall time passed
    assert arm.call("GET", "/onlineEndpoints/ep-slow").json()["properties"]["provisioningState"] == "Creating"


def test_a_frozen_clock_holds_operations_until_it_is_moved(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_operation_duration(0.05)
    stack.aml.set_clock(frozen=True)
    frozen_at = stack.aml.clock_now()
    assert arm.call("PUT", "/onlineEndpoints/ep-frozen", ENDPOINT).status_code == 201
    wait_until(lambda: time.time() > frozen_at + 0.1, what="wall time to pass the operation's end")
    assert arm.call("GET", "/onlineEndpoints/ep-frozen").json()["properties"]["provisioningState"] == "Creating"
    assert stack.aml.clock_now() == frozen_at

    stack.aml.advance_clock(0.05)
    assert arm.call("GET", "/onlineEndpoints/ep-frozen").json()["properties"]["provisioningState"] == "Succeeded"


def test_a_fault_window_ends_when_the_emulated_clock_passes_it(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.deny_requests(403, seconds=600, path_pattern="/onlineEndpoints")
    assert arm.call("GET", "/onlineEndpoints").status_code == 403

    stack.aml.advance_clock(601)
    assert arm.call("GET", "/onlineEndpoints").status_code == 200


def test_a_released_stall_lands_at_once(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.stall_requests(60, methods=["PUT"])
    answered: dict[str, int] = {}

    def put() -> None:
        url = f"{arm.workspace}/onlineEndpoints/ep-stalled"
        answered["status"] = arm.session.put(url, json=ENDPOINT, params={"api-version": "2023-04-01"}).status_code

    writer = threading.Thread(target=put)
    writer.start()
    wait_until(lambda: stack.aml.request_rules()[0]["hits"] == 1, what="the PUT to be stalled")
    started = time.monotonic()
    stack.aml.release_stalls()
    writer.join(timeout=10)

    assert time.monotonic() - started < 5 and answered == {"status": 201}
    assert stack.aml.endpoint_state("ep-stalled") is not None


def test_a_reset_lets_a_stalled_request_go(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.stall_requests(60, methods=["GET"])
    with pytest.raises(requests.Timeout):
        arm.session.get(f"{arm.workspace}/onlineEndpoints", params={"api-version": "2023-04-01"}, timeout=0.3)
    stack.aml.reset()  # the next test's: the stalled thread is released, not left holding a server thread

    assert stack.aml.request_rules() == []
