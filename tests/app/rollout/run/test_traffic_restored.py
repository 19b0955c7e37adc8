"""Every late write the app undoes is reported: one ``TrafficRestored`` per restored intent, not one per endpoint."""

from __future__ import annotations

import pytest

from app.rollout.run.notifications import endpoint_notification
from tests.fakes import WORKSPACE_ID, FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}
RESTORED = "AmlEvents.Rollout.TrafficRestored"


def _intent(seq: int, at: str, traffic: dict[str, int]) -> dict[str, object]:
    return {"seq": seq, "token": 1, "by": "", "traffic": traffic, "mirror": {}, "at": at, "status": "landed"}


def test_each_restored_intent_has_its_own_notification_id() -> None:
    def restored(late: int, current: int) -> str:
        facts = {
            "late": _intent(late, f"2026-11-22T12:0{late}:00+00:00", {"credit-v2": 100}),
            "restored": _intent(current, f"2026-11-22T12:0{current}:00+00:00", {"credit-v3": 100}),
        }
        return endpoint_notification(WORKSPACE_ID, "credit", RESTORED, "warning", "restored", facts).id

    assert restored(1, 2) != restored(3, 4)
    assert restored(1, 2) == restored(1, 2)  # the same restore seen again is the same notification


def _late_write_undone(world: FakeWorld, late: int, newer: int) -> None:
    """``late``'s traffic PUT stalls; the lease expires; ``newer`` takes the traffic; the stalled PUT lands last."""
    world.register("credit", late, CREDIT)
    world.wait_for_aml()
    world.aml.hold_next("set_traffic")
    world.tick()
    record = world.ledger.leases.read(WORKSPACE_ID, "credit")
    assert record.until is not None
    world.clock.now = max(world.clock.now, record.until)
    world.clock.advance(1)
    world.register("credit", newer, CREDIT)
    world.wait_for_aml()
    world.tick()
    world.wait_for_aml()
    [held] = world.aml.land_held()
    assert held.landed and world.aml.traffic("credit") == {f"credit-v{late}": 100}
    world.settle()
    assert world.aml.traffic("credit") == {f"credit-v{newer}": 100}


def test_a_second_late_write_on_the_same_endpoint_is_reported_too(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)
    world.settle()
    _late_write_undone(world, 2, 3)
    assert world.notified.count(RESTORED) == 1

    _late_write_undone(world, 4, 5)

    assert world.notified.count(RESTORED) == 2
