"""The status API on fakes: pages newest first, filters, continuations, and the traffic Azure ML shows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.api.status import rollout_status
from tests.fakes import FakeWorld

pytestmark = pytest.mark.fast

CREDIT = {"deploy": "true", "endpoint": "credit"}


def _get(world: FakeWorld, **params: str) -> tuple[int, Any]:
    status, text = rollout_status(params, world.deps)
    return status, json.loads(text)


@pytest.fixture
def history(world: FakeWorld) -> FakeWorld:
    """credit v1 live then v2 a 20% canary; fraud v1 live; a rejected churn v1."""
    for model, version, tags in (
        ("credit", 1, CREDIT),
        ("fraud", 1, {"deploy": "true", "endpoint": "fraud"}),
        ("credit", 2, {**CREDIT, "traffic": "20"}),
        ("churn", 1, {"deploy": "true", "instance_count": "99"}),
    ):
        world.register(model, version, tags)
        world.settle()
        world.clock.advance(60)
    return world


def test_rollouts_are_listed_newest_first_with_their_endpoints_traffic(history: FakeWorld) -> None:
    status, body = _get(history)

    assert status == 200 and body["count"] == 4 and body["continuation"] is None
    assert [(r["model"], r["version"], r["state"]) for r in body["rollouts"]] == [
        ("churn", "1", "rejected"),
        ("credit", "2", "canary"),
        ("fraud", "1", "live"),
        ("credit", "1", "live"),
    ]
    credit = next(e for e in body["endpoints"] if e["endpoint"] == "credit")
    assert credit["observedTraffic"] == {"credit-v1": 80, "credit-v2": 20} and credit["observedBy"] == "last tick"
    assert credit["drift"] is False
    v2 = body["rollouts"][1]
    assert v2["observed"]["traffic"] == 20 and v2["drift"] is False


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"endpoint": "credit"}, [("credit", "2"), ("credit", "1")]),
        ({"model": "FRAUD"}, [("fraud", "1")]),
        ({"state": "live"}, [("fraud", "1"), ("credit", "1")]),
        ({"endpoint": "credit", "state": "canary"}, [("credit", "2")]),
    ],
)
def test_filters_narrow_the_list(history: FakeWorld, params: dict[str, str], expected: list[tuple[str, str]]) -> None:
    status, body = _get(history, **params)
    assert status == 200
    assert [(r["model"], r["version"]) for r in body["rollouts"]] == expected


def test_following_the_continuations_lists_every_rollout_once(history: FakeWorld) -> None:
    seen, params = [], {"limit": "1"}
    while True:
        status, body = _get(history, **params)
        assert status == 200 and body["count"] <= 1
        seen += [(r["model"], r["version"]) for r in body["rollouts"]]
        if not body["continuation"]:
            break
        params["continuation"] = body["continuation"]

    assert seen == [("churn", "1"), ("credit", "2"), ("fraud", "1"), ("credit", "1")]


@pytest.mark.parametrize(
    "params",
    [
        {"colour": "red"},
        {"state": "sleeping"},
        {"limit": "0"},
        {"limit": "many"},
        {"observe": "maybe"},
        {"continuation": "not-a-token"},
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(history: FakeWorld, params: dict[str, str]) -> None:
    status, body = _get(history, **params)
    assert status == 400 and next(iter(params)) in body["error"]


def test_a_continuation_works_only_with_the_filters_it_was_issued_for(history: FakeWorld) -> None:
    _, first = _get(history, limit="1")
    status, body = _get(history, limit="1", endpoint="credit", continuation=first["continuation"])
    assert status == 400 and "continuation" in body["error"]


def test_observe_reads_azure_ml_now_and_flags_a_hand_made_change(history: FakeWorld) -> None:
    history.aml.set_traffic_by_hand("credit", {"credit-v1": 100})
    history.wait_for_aml()
    reads = len(history.aml.calls_to("observe"))
    _, cached = _get(history, endpoint="credit")
    status, body = _get(history, endpoint="credit", observe="true")

    assert len(history.aml.calls_to("observe")) == reads + 1  # only the observing request read Azure ML
    assert cached["endpoints"][0]["observedTraffic"] == {"credit-v1": 80, "credit-v2": 20}
    [credit] = body["endpoints"]
    assert status == 200 and credit["observedBy"] == "aml" and credit["drift"] is True
    assert credit["observedTraffic"] == {"credit-v1": 100}
    assert credit["intendedTraffic"] == {"credit-v1": 80, "credit-v2": 20}


def test_an_observation_that_fails_is_reported_in_the_answer_not_as_an_error(history: FakeWorld) -> None:
    history.aml.fail_next("observe", 503)
    status, body = _get(history, endpoint="credit", observe="true")

    assert status == 200 and body["count"] == 2
    [credit] = body["endpoints"]
    assert "observeError" in credit and credit["observedBy"] == "last tick"


def test_a_rollout_that_ended_is_never_shown_beside_the_split_from_before_its_traffic_write(world: FakeWorld) -> None:
    world.register("credit", 1, CREDIT)
    world.settle()
    splits_beside_canary: list[Any] = []

    def read_the_status(store: Any, partition: str, key: str) -> None:
        """A status request served between two of the app's ledger writes (a watcher polling mid-pass)."""
        world.store.before_write = None  # the status request itself may write; those writes are not watched
        try:
            _, body = _get(world, endpoint="credit")
        finally:
            world.store.before_write = read_the_status
        v2 = next((r for r in body["rollouts"] if r["deployment"] == "credit-v2"), None)
        if v2 is not None and v2["state"] == "canary":
            splits_beside_canary.append(body["endpoints"][0]["observedTraffic"])

    world.store.before_write = read_the_status
    world.register("credit", 2, {**CREDIT, "traffic": "20"})
    world.settle()
    world.store.before_write = None

    assert splits_beside_canary, "no status was read after the rollout ended"
    assert all(split == {"credit-v1": 80, "credit-v2": 20} for split in splits_beside_canary), splits_beside_canary
