"""Retention never purges the row of a version that serves traffic: a bake is not finished, and the deployments the
endpoint's last observation shows with traffic keep their rows, whatever finished after them."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.decide.model import State
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.retention import purge_history
from tests.fakes import WORKSPACE_ID, FakeTableStore, FakeWorld, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CUTOFF = NOW - 90 * DAY


def _rollouts(store: FakeTableStore) -> list[str]:
    return sorted(key for (partition, key) in store.rows if not partition.startswith("~") and key != "~lease")


def _observed(ledger: RolloutLedger, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
    """A reconciler pass cached what it saw of the endpoint's traffic on its row."""
    lease = ledger.acquire_lease(WORKSPACE_ID, "credit", "tick", NOW, 60)
    assert lease is not None
    ledger.release_lease(lease, NOW, observed_traffic=traffic, observed_mirror=mirror or {}, observed_at=NOW)


def test_the_live_version_keeps_its_row_while_a_failed_one_came_after_it(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 200 * DAY)  # serves 90%
    ledger.record(make_plan(2), State.FAILED, "c2", NOW - 150 * DAY)  # the newest finished one: no traffic
    ledger.record(make_plan(3), State.BAKING, "c3", NOW - DAY)  # 10%, baking
    _observed(ledger, {"credit-v1": 90, "credit-v3": 10})

    ledger.history.purge(CUTOFF, budget=100)

    assert _rollouts(store) == ["credit-v1", "credit-v2", "credit-v3"]


def test_a_mirrored_deployment_keeps_its_row_and_one_without_traffic_goes(
    ledger: RolloutLedger, store: FakeTableStore
) -> None:
    ledger.record(make_plan(1), State.LIVE, "c1", NOW - 300 * DAY)  # replaced: no traffic any more
    ledger.record(make_plan(2), State.DARK, "c2", NOW - 250 * DAY)  # mirrored
    ledger.record(make_plan(3), State.LIVE, "c3", NOW - 200 * DAY)  # the newest finished one, 100%
    _observed(ledger, {"credit-v3": 100}, {"credit-v2": 10})

    ledger.history.purge(CUTOFF, budget=100)

    assert _rollouts(store) == ["credit-v2", "credit-v3"]


def test_a_bake_on_the_fakes_keeps_the_live_versions_row_through_the_retention_timer() -> None:
    world = FakeWorld()
    world.register("credit", 1, {"deploy": "true", "endpoint": "credit"})
    world.settle()
    world.clock.advance(minutes=100 * 24 * 60)  # v1 went live 100 days ago
    world.register("credit", 2, {"deploy": "true", "endpoint": "credit", "traffic_steps": "10,100", "bake": "1h"})
    for _ in range(6):
        world.wait_for_aml()
        world.tick()
    assert world.rollout("credit-v2").state is State.BAKING

    purge_history(world.deps)

    assert world.rollout("credit-v1").state is State.LIVE
